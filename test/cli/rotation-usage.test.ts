import { createKeyring, FastTestHasher, MemoryStore } from '@keyrot/core'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createServer, listen } from '../../packages/cli/src/index.js'
import { startDashboardServer, type DashboardServer } from '../dashboard/server.js'

/**
 * `GET /v1/keys/:id/rotation-usage` on one process and a MemoryStore: the
 * shape, the window, the "End grace now" warning and the errors. That every
 * replica's uses arrive through Redis is proven with three replica processes
 * in test/integration/replicas/rotation-telemetry.test.ts.
 */

async function call(url: string, token?: string, init: { method?: string; body?: unknown; userAgent?: string } = {}) {
  const response = await fetch(url, {
    method: init.method ?? 'GET',
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(init.userAgent ? { 'user-agent': init.userAgent } : {}),
      ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  })
  const text = await response.text()
  return { status: response.status, text, body: JSON.parse(text) }
}

const sum = (counts: number[]) => counts.reduce((total, count) => total + count, 0)

describe('GET /v1/keys/:id/rotation-usage', () => {
  let server: DashboardServer
  beforeEach(async () => {
    server = await startDashboardServer()
  })
  afterEach(async () => {
    await server?.close()
  })

  it('reports old-key and new-key uses per minute and the clients still on the old key; warns before the grace is ended', async () => {
    const { keyring, base, adminToken } = server
    const issued = await keyring.create({ tenantId: 'acme', name: 'billing' })
    // Uses before the rotation belong to no rotation: not counted.
    for (let i = 0; i < 2; i++) expect((await call(`${base}/v1/whoami`, issued.token)).status).toBe(200)
    const rotated = await keyring.rotate(issued.key.id, { gracePeriod: '1h' })
    for (let i = 0; i < 3; i++) expect((await call(`${base}/v1/whoami`, issued.token, { userAgent: 'legacy/0.9' })).status).toBe(200)
    expect((await call(`${base}/v1/whoami`, rotated.token, { userAgent: 'billing/2.0' })).status).toBe(200)

    const answer = await call(`${base}/v1/keys/${issued.key.id}/rotation-usage?minutes=5`, adminToken)
    expect(answer.status).toBe(200)
    const body = answer.body
    expect(body).toMatchObject({ keyId: issued.key.id, bucketMs: 60_000, scope: 'store', oldKeyUsedRecently: true })
    expect(body.from % 60_000).toBe(0)
    expect(body.oldKey.counts).toHaveLength(5)
    expect(sum(body.oldKey.counts)).toBe(3)
    expect(body.newKey).toMatchObject({ keyId: rotated.key.id })
    expect(sum(body.newKey.counts)).toBe(1)
    expect(body.oldKey.clients).toEqual([{ clientIp: '127.0.0.1', userAgent: 'legacy/0.9', requests: 3, lastSeenAt: expect.any(Number) }])
    expect(body.endGraceWarning).toBe(
      `Key ${issued.key.id} was served 3 times in the last 15 minutes, by the replicas sharing this store, to 1 client: ending the grace now breaks them.`,
    )
    expect(body.caveat).toMatch(/flush interval/)
    expect(answer.text).not.toContain(issued.token)
    expect(answer.text).not.toContain(rotated.token)
    // The default window is 60 minutes; asked about the successor, the same rotation is described.
    const fromNew = await call(`${base}/v1/keys/${rotated.key.id}/rotation-usage`, adminToken)
    expect(fromNew.body.oldKey.counts).toHaveLength(60)
    expect(fromNew.body.oldKey.keyId).toBe(issued.key.id)
    expect(fromNew.body.endGraceWarning).toBe(body.endGraceWarning)

    const ended = await call(`${base}/v1/keys/${issued.key.id}/expiry`, adminToken, { method: 'POST', body: { endNow: true } })
    expect(ended.status).toBe(200)
    expect(ended.body.warning).toBe(body.endGraceWarning)
  })

  it('gives no warning for a key nobody used in grace, and describes a key in no rotation alone', async () => {
    const { keyring, base, adminToken } = server
    const quiet = await keyring.create({ tenantId: 'acme', name: 'quiet' })
    expect((await call(`${base}/v1/whoami`, quiet.token)).status).toBe(200)
    const alone = await call(`${base}/v1/keys/${quiet.key.id}/rotation-usage?minutes=2`, adminToken)
    expect(alone.body).toMatchObject({ newKey: null, oldKeyUsedRecently: false, endGraceWarning: null, oldKey: { counts: [0, 0], clients: [] } })
    await keyring.rotate(quiet.key.id, { gracePeriod: '1h' })
    const ended = await call(`${base}/v1/keys/${quiet.key.id}/expiry`, adminToken, { method: 'POST', body: { endNow: true } })
    expect(ended.status).toBe(200)
    expect(ended.body).not.toHaveProperty('warning')
  })

  it('needs an admin key, refuses bad input with a 400 naming the field, an unknown key with a 404, and is in the OpenAPI document', async () => {
    const { keyring, base, adminToken, adminKeyId } = server
    const reader = await keyring.create({ tenantId: 'acme', name: 'reader', scopes: ['read'] })
    expect((await call(`${base}/v1/keys/${reader.key.id}/rotation-usage`)).status).toBe(401)
    expect((await call(`${base}/v1/keys/${reader.key.id}/rotation-usage`, reader.token)).body.error.code).toBe('KEYROT_INSUFFICIENT_SCOPE')
    for (const minutes of ['abc', '0', '1441', '1.5']) {
      const answer = await call(`${base}/v1/keys/${adminKeyId}/rotation-usage?minutes=${minutes}`, adminToken)
      expect(answer.status, minutes).toBe(400)
      expect(answer.body.error.field).toBe('minutes')
    }
    expect((await call(`${base}/v1/keys/${adminKeyId}/rotation-usage?since=1h`, adminToken)).body.error.field).toBe('since')
    const missing = await call(`${base}/v1/keys/0000000000000000/rotation-usage`, adminToken)
    expect(missing.status).toBe(404)
    expect(missing.body.error.code).toBe('KEYROT_KEY_NOT_FOUND')
    const document = (await call(`${base}/openapi.json`)).body
    expect(document.paths['/v1/keys/{id}/rotation-usage'].get.operationId).toBe('getRotationUsage')
    expect(document.components.schemas.RotationUsage.properties.endGraceWarning).toBeDefined()
  })
})

it('says so when the store keeps no rotation telemetry', async () => {
  const store = new MemoryStore()
  Object.defineProperty(store, 'rotationUsage', { value: undefined })
  const keyring = createKeyring({ store, hasher: new FastTestHasher(), rateLimit: false })
  const admin = await keyring.create({ tenantId: 'ops', name: 'admin', scopes: ['admin'] })
  const running = await listen(createServer({ keyring, dashboard: false }), { port: 0, host: '127.0.0.1', shutdownTimeoutMs: 2_000, onClose: () => keyring.close() })
  try {
    const answer = await call(`${running.url}/v1/keys/${admin.key.id}/rotation-usage`, admin.token)
    expect(answer.status).toBe(200)
    expect(answer.body).toMatchObject({ scope: 'unavailable', oldKeyUsedRecently: false, endGraceWarning: null })
  } finally {
    await running.close()
  }
})
