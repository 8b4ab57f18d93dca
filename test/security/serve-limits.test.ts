import { createKeyring, FastTestHasher, MemoryStore, type Keyring } from '@keyrot/core'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createServer, listen } from '../../packages/cli/src/index.js'
import { adminErrorResponse } from '../../packages/cli/src/server/errors.js'
import { ensureBuilt, killChildren, runKeyrot, startServe, type ServeProcess } from '../cli/keyrot-bin.js'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'
import { call, masterKeysValue, tally, wrongSecretFor } from './serve-support.js'

/**
 * Issue 14, finding 1: `keyrot serve` ran with every abuse limit off
 * (`rateLimit: false`) and without signing. Each case shows the old
 * configuration's figure, then the spawned binary's.
 */

let redis: RedisServer
let serve: ServeProcess | undefined

async function adminToken(url: string, scopes = 'admin,admin:*', env: Record<string, string> = {}): Promise<string> {
  const created = await runKeyrot(['create', '--redis', url, '--tenant', 'ops', '--name', 'admin', '--scopes', scopes, '--json'], { env })
  expect(created.code, created.stderr).toBe(0)
  return JSON.parse(created.stdout).token as string
}

/** The keyring `keyrot serve` used to build: the same defaults, limits off, no signing. */
function oldServeKeyring(): Keyring {
  return createKeyring({ store: new MemoryStore(), hasher: new FastTestHasher(), rateLimit: false })
}

beforeAll(() => ensureBuilt(), 240_000)

afterEach(async () => {
  serve?.child.kill('SIGKILL')
  serve = undefined
  await redis?.stop()
})

afterAll(() => killChildren())

describe('finding 1: keyrot serve applies the documented abuse limits', () => {
  it('60 wrong admin secrets from one IP: 401 x60 before; at most 5 x 401 then 429 after', async () => {
    const keyring = oldServeKeyring()
    const oldAdmin = (await keyring.create({ tenantId: 'ops', name: 'admin', scopes: ['admin'] })).token
    const old = await listen(createServer({ keyring }), { port: 0, onClose: () => keyring.close() })
    const before: number[] = []
    try {
      for (let i = 0; i < 60; i++) before.push((await call(old.url, 'GET', '/v1/keys', { token: wrongSecretFor(oldAdmin) })).status)
    } finally {
      await old.close()
    }

    redis = await startRedisServer()
    const admin = await adminToken(redis.url)
    serve = await startServe(['--redis', redis.url])
    const after: number[] = []
    let firstRetryAfter: string | null = null
    for (let i = 0; i < 60; i++) {
      const answer = await call(serve.url, 'GET', '/v1/keys', { token: wrongSecretFor(admin) })
      after.push(answer.status)
      if (answer.status === 429 && firstRetryAfter === null) firstRetryAfter = answer.headers.get('retry-after')
    }
    const fivexx = [...before, ...after].filter((status) => status >= 500).length
    console.log(`[security] finding 1 wrong admin secrets from one IP: attempts=60 before=${JSON.stringify(tally(before))} after=${JSON.stringify(tally(after))} 5xx=${fivexx}`)
    expect(tally(before)).toEqual({ 401: 60 })
    // The per-IP budget allows 5 failures; Argon2 runs paced per key id (1/s) may refuse earlier.
    const refusedFrom = after.indexOf(429)
    expect(after[0]).toBe(401)
    expect(refusedFrom).toBeGreaterThan(0)
    expect(refusedFrom).toBeLessThanOrEqual(5)
    expect(after.slice(refusedFrom).every((status) => status === 429)).toBe(true)
    expect(Number(firstRetryAfter)).toBeGreaterThan(0)
    expect(fivexx).toBe(0)
  }, 120_000)

  it('150 requests with one key: 200 x150 and no RateLimit-Policy before; 100 x200 then 429 with RateLimit-Policy after', async () => {
    const keyring = oldServeKeyring()
    const oldClient = (await keyring.create({ tenantId: 'acme', name: 'client' })).token
    const old = await listen(createServer({ keyring }), { port: 0, onClose: () => keyring.close() })
    const before: number[] = []
    let beforePolicy = 0
    try {
      for (let i = 0; i < 150; i++) {
        const answer = await call(old.url, 'GET', '/v1/whoami', { token: oldClient })
        before.push(answer.status)
        if (answer.headers.get('ratelimit-policy')) beforePolicy++
      }
    } finally {
      await old.close()
    }

    redis = await startRedisServer()
    const admin = await adminToken(redis.url)
    serve = await startServe(['--redis', redis.url])
    const created = await call(serve.url, 'POST', '/v1/keys', { token: admin, body: { tenantId: 'acme', name: 'client' } })
    expect(created.status).toBe(201)
    const after: number[] = []
    let afterPolicy = 0
    let policy: string | null = null
    const started = Date.now()
    for (let i = 0; i < 150; i++) {
      const answer = await call(serve.url, 'GET', '/v1/whoami', { token: created.body.token })
      after.push(answer.status)
      if (answer.headers.get('ratelimit-policy')) {
        afterPolicy++
        policy = answer.headers.get('ratelimit-policy')
      }
    }
    const elapsedMs = Date.now() - started
    // GCRA: a burst of 100, then one more request every 60 s / 100 = 600 ms.
    const allowed = 100 + Math.ceil(elapsedMs / 600) + 1
    console.log(
      `[security] finding 1 one key, 150 requests in ${elapsedMs} ms (GCRA allows at most ${allowed}): before=${JSON.stringify(tally(before))} with RateLimit-Policy=${beforePolicy}; after=${JSON.stringify(tally(after))} with RateLimit-Policy=${afterPolicy} (${policy})`,
    )
    expect(tally(before)).toEqual({ 200: 150 })
    expect(beforePolicy).toBe(0)
    // The documented default quota: 100 per minute per key, counted in Redis.
    expect(tally(after)[200]).toBeGreaterThanOrEqual(100)
    expect(tally(after)[200]).toBeLessThanOrEqual(allowed)
    expect(tally(after)[429]).toBeGreaterThan(0)
    expect((tally(after)[429] ?? 0) + (tally(after)[200] ?? 0)).toBe(150)
    expect(after.slice(0, 100).every((status) => status === 200)).toBe(true)
    expect(afterPolicy).toBe(150)
    expect(policy).toMatch(/per-key/)
  }, 120_000)

  it('signing secrets through the admin API: 503 KEYROT_STORE_UNAVAILABLE before; 201 with master keys, 501 KEYROT_SIGNING_NOT_CONFIGURED without', async () => {
    // Before: the keyring serve built had no master keys; rotating a signing secret failed
    // inside the keyring, and the admin API mapped that failure to a store outage.
    const sealing = createKeyring({ store: new MemoryStore(), hasher: new FastTestHasher(), rateLimit: false, signing: { masterKeys: [{ id: 'mk1', key: Buffer.alloc(32, 7) }] } })
    const secret = await sealing.createSigningSecret({ tenantId: 'acme', name: 'webhooks' })
    const unsealed = createKeyring({ store: sealing.store, hasher: new FastTestHasher(), rateLimit: false })
    const before = adminErrorResponse(await unsealed.rotate(secret.key.id).catch((error: unknown) => error))
    await sealing.close()
    await unsealed.close()

    redis = await startRedisServer()
    const masterKeys = masterKeysValue()
    const admin = await adminToken(redis.url)
    serve = await startServe(['--redis', redis.url], { env: { KEYROT_MASTER_KEYS: masterKeys } })
    const created = await call(serve.url, 'POST', '/v1/signing-secrets', { token: admin, body: { tenantId: 'acme', name: 'webhooks' } })
    expect(created.status, created.text).toBe(201)
    expect(created.body.secret).toMatch(/^whsec_/)
    const rotated = await call(serve.url, 'POST', `/v1/keys/${created.body.key.id}/rotate`, { token: admin, body: { gracePeriod: '1h' } })
    expect(rotated.status, rotated.text).toBe(201)
    expect(serve.output()).not.toContain(created.body.secret)
    serve.child.kill('SIGTERM')
    expect(await serve.exited).toBe(0)

    serve = await startServe(['--redis', redis.url])
    const noCreate = await call(serve.url, 'POST', '/v1/signing-secrets', { token: admin, body: { tenantId: 'acme', name: 'webhooks' } })
    const noRotate = await call(serve.url, 'POST', `/v1/keys/${rotated.body.key.id}/rotate`, { token: admin, body: {} })
    const noEmergency = await call(serve.url, 'POST', `/v1/keys/${rotated.body.key.id}/emergency-rotate`, { token: admin, body: { incidentId: 'INC-1' } })
    const inspect = await call(serve.url, 'GET', `/v1/keys/${rotated.body.key.id}`, { token: admin })
    console.log(
      `[security] finding 1 signing secrets: before rotate=${before.status} ${before.body.error.code}; after with master keys create=${created.status} rotate=${rotated.status}; without create=${noCreate.status} rotate=${noRotate.status} emergency=${noEmergency.status} ${noRotate.body.error?.code}`,
    )
    expect(before).toMatchObject({ status: 503, body: { error: { code: 'KEYROT_STORE_UNAVAILABLE' } } })
    for (const answer of [noCreate, noRotate, noEmergency]) {
      expect(answer.status).toBe(501)
      expect(answer.body.error.code).toBe('KEYROT_SIGNING_NOT_CONFIGURED')
      expect(answer.body.error.message).toContain('KEYROT_MASTER_KEYS')
    }
    // Nothing changed, and the log names the missing configuration, not a store failure.
    expect(inspect.body.key.rotatedTo).toBeNull()
    const errors = serve.output().split('\n').filter((line) => line.includes('"event":"http.error"'))
    expect(errors).toHaveLength(3)
    for (const line of errors) expect(line).toContain('SigningNotConfiguredError')
    expect(serve.output()).not.toMatch(/store is unavailable|STORE_UNAVAILABLE/i)
  }, 120_000)
})
