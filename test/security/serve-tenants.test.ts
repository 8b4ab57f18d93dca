import { randomBytes } from 'node:crypto'
import { createKeyring, FastTestHasher, type Keyring } from '@keyrot/core'
import { RedisStore } from '@keyrot/redis'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createServer, listen, type RunningServer } from '../../packages/cli/src/index.js'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'
import { call, type Answer } from './serve-support.js'

/**
 * Issue 14, finding 7: a key with the `admin` scope in any tenant managed
 * every tenant. Now an `admin` key manages its own tenant; `admin:*` (with
 * `admin`) manages every tenant; a key of another tenant answers exactly as
 * an unknown key id. The matrix runs over every admin operation of the
 * server's own OpenAPI document (built from admin-routes.ts and the
 * dashboard's routes), so a new admin route without a case fails here.
 */

interface Case {
  method: 'GET' | 'POST'
  path: string
  body?: unknown
}

/** One request per admin operation: `id` is the target key, `tenant` the tenant a collection route names. */
const CASES: Record<string, (id: string, tenant: string) => Case> = {
  createKey: (_id, tenant) => ({ method: 'POST', path: '/v1/keys', body: { tenantId: tenant, name: 'new' } }),
  createSigningSecret: (_id, tenant) => ({ method: 'POST', path: '/v1/signing-secrets', body: { tenantId: tenant, name: 'hooks' } }),
  listKeys: (_id, tenant) => ({ method: 'GET', path: `/v1/keys?tenant=${tenant}` }),
  listExpiringKeys: (_id, tenant) => ({ method: 'GET', path: `/v1/keys/expiring?within=30d&tenant=${tenant}` }),
  listUnusedKeys: (_id, tenant) => ({ method: 'GET', path: `/v1/keys/unused?since=1d&tenant=${tenant}` }),
  getKey: (id) => ({ method: 'GET', path: `/v1/keys/${id}` }),
  rotateKey: (id) => ({ method: 'POST', path: `/v1/keys/${id}/rotate`, body: { gracePeriod: '1h' } }),
  revokeKey: (id) => ({ method: 'POST', path: `/v1/keys/${id}/revoke`, body: { reason: 'test' } }),
  emergencyRotateKey: (id) => ({ method: 'POST', path: `/v1/keys/${id}/emergency-rotate`, body: { incidentId: 'INC-7' } }),
  setKeyExpiry: (id) => ({ method: 'POST', path: `/v1/keys/${id}/expiry`, body: { extendBy: '1h' } }),
  getRotationUsage: (id) => ({ method: 'GET', path: `/v1/keys/${id}/rotation-usage` }),
  getKeyUsage: (id) => ({ method: 'GET', path: `/v1/keys/${id}/usage?minutes=5` }),
  getGraceClients: (id) => ({ method: 'GET', path: `/v1/keys/${id}/grace-clients` }),
  getKeyCredits: (id) => ({ method: 'GET', path: `/v1/keys/${id}/credits` }),
  changeKeyCredits: (id) => ({ method: 'POST', path: `/v1/keys/${id}/credits`, body: { add: 5 } }),
  setKeyAllowedIps: (id) => ({ method: 'POST', path: `/v1/keys/${id}/allowed-ips`, body: { allowedIps: ['203.0.113.0/24'] } }),
  getTenantPolicy: (_id, tenant) => ({ method: 'GET', path: `/v1/tenants/${tenant}/policy` }),
  setTenantPolicy: (_id, tenant) => ({ method: 'POST', path: `/v1/tenants/${tenant}/policy`, body: { maxAge: '90d' } }),
  listKeysDueForRotation: (_id, tenant) => ({ method: 'GET', path: `/v1/keys/due?tenant=${tenant}` }),
  evidenceReport: (_id, tenant) => ({ method: 'GET', path: `/v1/report?tenant=${tenant}` }),
  importKey: (_id, tenant) => ({ method: 'POST', path: '/v1/keys/import', body: { tenantId: tenant, name: 'imported', token: `old_${randomBytes(12).toString('hex')}` } }),
}

let redis: RedisServer
let client: Redis
let keyring: Keyring
let running: RunningServer
let acmeAdmin: string
let globalAdmin: string
let adminOperations: { operationId: string; path: string; method: string }[]

async function newKey(tenantId: string): Promise<string> {
  // With credits, so that the credits routes have a balance to read and change.
  const issued = await keyring.create({ tenantId, name: 'target', expiresAt: Date.now() + 7 * 86_400_000, credits: { remaining: 10 } })
  return issued.key.id
}

function send(token: string, request: Case): Promise<Answer> {
  return call(running.url, request.method, request.path, { token, ...(request.body === undefined ? {} : { body: request.body }) })
}

beforeAll(async () => {
  redis = await startRedisServer()
  client = new Redis(redis.url, { lazyConnect: true })
  await client.connect()
  keyring = createKeyring({
    store: new RedisStore({ client }),
    hasher: new FastTestHasher(),
    rateLimit: false,
    importKey: randomBytes(32),
    importedPrefixes: ['old_'],
    signing: { masterKeys: [{ id: 'mk1', key: Buffer.alloc(32, 9) }] },
  })
  acmeAdmin = (await keyring.create({ tenantId: 'acme', name: 'acme-admin', scopes: ['admin'] })).token
  globalAdmin = (await keyring.create({ tenantId: 'ops', name: 'ops-admin', scopes: ['admin', 'admin:*'] })).token
  running = await listen(createServer({ keyring }), { port: 0 })
  const document = (await call(running.url, 'GET', '/openapi.json')).body as { paths: Record<string, Record<string, { operationId: string; tags: string[] }>> }
  adminOperations = Object.entries(document.paths).flatMap(([path, operations]) =>
    Object.entries(operations)
      .filter(([, operation]) => operation.tags.includes('admin'))
      .map(([method, operation]) => ({ operationId: operation.operationId, path, method })),
  )
}, 60_000)

afterAll(async () => {
  await running?.close()
  await keyring?.close()
  client?.disconnect()
  await redis?.stop()
})

describe('finding 7: an admin key manages only its own tenant', () => {
  it('every admin operation of the server has a case here', () => {
    expect(adminOperations.length).toBeGreaterThanOrEqual(12)
    expect(adminOperations.map((operation) => operation.operationId).filter((id) => !(id in CASES))).toEqual([])
  })

  it('no admin route reaches another tenant: 404 like an unknown id, or 403 for a named tenant; the old all-tenant behaviour reached every one', async () => {
    let reachedBefore = 0
    let reachedAfter = 0
    let sameAsUnknown = 0
    let forbidden = 0
    let ownWorks = 0
    for (const operation of adminOperations) {
      const build = CASES[operation.operationId] as (id: string, tenant: string) => Case
      const byId = operation.path.includes('{id}')

      // Before: what every admin key could do (now only admin:* keys may).
      const before = await send(globalAdmin, build(await newKey('globex'), 'globex'))
      if (before.status < 400) reachedBefore++

      // After: an acme admin on a globex key (or naming globex).
      const victim = byId ? await newKey('globex') : ''
      const snapshot = victim ? await keyring.get(victim) : null
      const cross = await send(acmeAdmin, build(victim, 'globex'))
      if (cross.status < 400) reachedAfter++
      if (byId) {
        const unknownId = victim.slice(0, 10) + 'zzzzzz'
        const unknown = await send(acmeAdmin, build(unknownId, 'globex'))
        expect(cross.status, operation.operationId).toBe(404)
        expect(unknown.status, operation.operationId).toBe(404)
        // Same body once the id (which the caller sent) is set aside; same headers that matter.
        expect(cross.text.replaceAll(victim, '<id>'), operation.operationId).toBe(unknown.text.replaceAll(unknownId, '<id>'))
        expect(cross.headers.get('content-length') === null ? null : Number(cross.headers.get('content-length')) - victim.length).toBe(
          unknown.headers.get('content-length') === null ? null : Number(unknown.headers.get('content-length')) - unknownId.length,
        )
        expect(cross.headers.get('cache-control')).toBe(unknown.headers.get('cache-control'))
        // And the victim is untouched.
        expect(await keyring.get(victim), operation.operationId).toEqual(snapshot)
        sameAsUnknown++
      } else {
        expect(cross.status, `${operation.operationId} ${cross.text}`).toBe(403)
        expect(cross.body.error.code).toBe('KEYROT_ADMIN_TENANT_FORBIDDEN')
        forbidden++
      }

      // Its own tenant still works, so the refusal above is about the tenant.
      const own = await send(acmeAdmin, build(byId ? await newKey('acme') : '', 'acme'))
      expect(own.status, `${operation.operationId} on its own tenant: ${own.text}`).toBeLessThan(300)
      ownWorks++
    }
    console.log(
      `[security] finding 7 admin routes=${adminOperations.length}: another tenant reached before=${reachedBefore}/${adminOperations.length}, after=${reachedAfter}/${adminOperations.length} (${sameAsUnknown} answer 404 exactly like an unknown id, ${forbidden} answer 403 for a named tenant); own tenant works on ${ownWorks}`,
    )
    expect(reachedBefore).toBe(adminOperations.length)
    expect(reachedAfter).toBe(0)
    expect(ownWorks).toBe(adminOperations.length)
  }, 120_000)

  it('listings without ?tenant= show only what the caller may manage (what the dashboard draws)', async () => {
    await newKey('globex')
    await newKey('acme')
    const tenantsIn = (answer: Answer) => [...new Set((answer.body.keys as { tenantId: string }[]).map((key) => key.tenantId))].sort()
    // Unused since an hour from now: every working key counts.
    for (const path of ['/v1/keys', '/v1/keys/expiring?within=30d', `/v1/keys/unused?since=${new Date(Date.now() + 3_600_000).toISOString()}`]) {
      const mine = await call(running.url, 'GET', path, { token: acmeAdmin })
      const all = await call(running.url, 'GET', path, { token: globalAdmin })
      expect(mine.status).toBe(200)
      expect(tenantsIn(mine)).toEqual(['acme'])
      expect(tenantsIn(all)).toEqual(expect.arrayContaining(['acme', 'globex']))
    }
  })

  it('a key without the admin scope gets 403 insufficient_scope; admin:* alone is no admin grant', async () => {
    const starOnly = (await keyring.create({ tenantId: 'ops', name: 'star', scopes: ['admin:*'] })).token
    const reader = (await keyring.create({ tenantId: 'acme', name: 'reader', scopes: ['read'] })).token
    for (const token of [starOnly, reader]) {
      const answer = await call(running.url, 'GET', '/v1/keys', { token })
      expect(answer.status).toBe(403)
      expect(answer.body.error.code).toBe('KEYROT_INSUFFICIENT_SCOPE')
    }
  })
})
