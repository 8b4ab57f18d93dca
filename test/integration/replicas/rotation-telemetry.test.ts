import { Argon2Hasher, createKeyring, type Keyring } from '@keyrot/core'
import { RedisStore } from '@keyrot/redis'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createServer, listen, type RunningServer } from '../../../packages/cli/src/index.js'
import { ensureBuilt } from '../../support/build.js'
import { ControlledRedis } from '../../support/redis-process.js'
import { closeAgents, request, sleep, startReplicas, type IssuedKeyBody, type Replica } from '../../support/replicas.js'

/**
 * The rotation view counts what EVERY replica served, not only the server
 * that draws it: three app replicas (separate processes, built packages)
 * serve an old key during its grace period, and the admin API, a fourth
 * process's worth of keyring on the same redis-server, reports those uses
 * and the client within one usage flush interval.
 */

const FLUSH_INTERVAL_MS = 1_000
/** Scheduling slack on a loaded 2-core machine, on top of the flush interval. */
const SLACK_MS = 1_000
const OLD_KEY_REQUESTS = 20
const NEW_KEY_REQUESTS = 5
const USER_AGENT = 'legacy-billing/0.9'

let redis: ControlledRedis
let replicas: Replica[]
let adminKeyring: Keyring
let server: RunningServer
let adminToken: string

async function adminApi(method: 'GET' | 'POST', path: string, body?: unknown) {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  const text = await response.text()
  return { status: response.status, text, body: JSON.parse(text) }
}

beforeAll(async () => {
  await ensureBuilt()
  redis = await ControlledRedis.start()
  replicas = await startReplicas(3, { redisUrl: redis.url, flushIntervalMs: FLUSH_INTERVAL_MS })
  const store = new RedisStore({ client: new Redis(redis.url, { lazyConnect: true }), usage: { flushInterval: FLUSH_INTERVAL_MS } })
  await store.waitUntilReady(10_000)
  adminKeyring = createKeyring({ store, hasher: new Argon2Hasher({ memoryCost: 1024, timeCost: 1, parallelism: 1 }), rateLimit: false })
  const issued = await adminKeyring.create({ tenantId: 'ops', name: 'admin', scopes: ['admin', 'admin:*'] })
  adminToken = issued.token
  server = await listen(createServer({ keyring: adminKeyring, dashboard: false }), {
    port: 0,
    host: '127.0.0.1',
    shutdownTimeoutMs: 2_000,
    onClose: () => adminKeyring.close(),
  })
}, 120_000)

afterAll(async () => {
  closeAgents()
  await server?.close()
  await Promise.all((replicas ?? []).map((replica) => replica.stop()))
  await redis?.stop()
})

describe('rotation telemetry shared by every replica', () => {
  it('the admin API reports the old-key uses of all three replicas and their client within one flush interval, and warns before ending the grace', async () => {
    // Created and rotated through the admin API: no replica has the key cached as active.
    const created = await adminApi('POST', '/v1/keys', { tenantId: 'acme', name: 'billing' })
    expect(created.status).toBe(201)
    const issued = created.body as IssuedKeyBody
    const rotated = await adminApi('POST', `/v1/keys/${issued.key.id}/rotate`, { gracePeriod: '1h' })
    expect(rotated.status).toBe(201)
    const newToken = rotated.body.token as string
    const newKeyId = rotated.body.key.id as string

    // Round-robin over the replicas, as a load balancer would: every one serves the old key.
    // Sent at once, so that they end well inside one flush interval and the wait below is the flush's.
    const served = new Map<string, number>()
    const oldAnswers = await Promise.all(
      Array.from({ length: OLD_KEY_REQUESTS }, (_, i) => {
        const replica = replicas[i % replicas.length] as Replica
        served.set(replica.name, (served.get(replica.name) ?? 0) + 1)
        return request(replica, { path: '/v1/whoami', headers: { authorization: `Bearer ${issued.token}`, 'user-agent': USER_AGENT } })
      }),
    )
    const newAnswers = await Promise.all(
      Array.from({ length: NEW_KEY_REQUESTS }, (_, i) =>
        request(replicas[i % replicas.length] as Replica, { path: '/v1/whoami', headers: { authorization: `Bearer ${newToken}` } }),
      ),
    )
    const lastServedAt = Date.now()
    for (const answer of oldAnswers) {
      expect({ status: answer.status, state: answer.status === 200 ? JSON.parse(answer.body).state : answer.body }).toEqual({ status: 200, state: 'grace' })
    }
    for (const answer of newAnswers) expect(answer.status).toBe(200)
    const sendingMs = lastServedAt - Math.min(...oldAnswers.map((answer) => answer.sentAt))

    // The admin API (which served none of them) sees them once each replica flushed.
    const sum = (counts: number[]) => counts.reduce((total, count) => total + count, 0)
    let figures = (await adminApi('GET', `/v1/keys/${issued.key.id}/rotation-usage?minutes=5`)).body
    const firstSeen = sum(figures.oldKey.counts)
    while (sum(figures.oldKey.counts) < OLD_KEY_REQUESTS && Date.now() - lastServedAt < FLUSH_INTERVAL_MS + SLACK_MS) {
      await sleep(50)
      figures = (await adminApi('GET', `/v1/keys/${issued.key.id}/rotation-usage?minutes=5`)).body
    }
    const seenAfterMs = Date.now() - lastServedAt
    await sleep(FLUSH_INTERVAL_MS)
    const settled = await adminApi('GET', `/v1/keys/${issued.key.id}/rotation-usage?minutes=5`)
    const oldCount = sum(settled.body.oldKey.counts)
    const newCount = sum(settled.body.newKey.counts)
    const client = settled.body.oldKey.clients[0]
    console.log(
      `[rotation-telemetry] old key served ${OLD_KEY_REQUESTS}x by replicas ${[...served].map(([name, n]) => `${name}=${n}`).join(' ')} ` +
        `(plus ${NEW_KEY_REQUESTS}x the new key) in ${sendingMs} ms; ` +
        `admin API right after the last request: ${firstSeen}; all ${sum(figures.oldKey.counts)} seen ${seenAfterMs} ms after it ` +
        `(flush interval ${FLUSH_INTERVAL_MS} ms); settled: old key ${oldCount}, new key ${newCount}, ` +
        `clients ${settled.body.oldKey.clients.length} (${client?.clientIp} "${client?.userAgent}" x${client?.requests})`,
    )
    expect(served.size).toBe(3)
    // Within one flush interval (plus scheduling slack) every use is in; none counted twice, none lost.
    expect(sum(figures.oldKey.counts)).toBe(OLD_KEY_REQUESTS)
    expect(seenAfterMs).toBeLessThanOrEqual(FLUSH_INTERVAL_MS + SLACK_MS)
    expect(oldCount).toBe(OLD_KEY_REQUESTS)
    expect(newCount).toBe(NEW_KEY_REQUESTS)
    expect(settled.body).toMatchObject({ keyId: issued.key.id, scope: 'store', oldKeyUsedRecently: true, newKey: { keyId: newKeyId } })
    expect(settled.body.oldKey.clients).toEqual([{ clientIp: '127.0.0.1', userAgent: USER_AGENT, requests: OLD_KEY_REQUESTS, lastSeenAt: expect.any(Number) }])
    expect(settled.body.endGraceWarning).toBe(
      `Key ${issued.key.id} was served ${OLD_KEY_REQUESTS} times in the last 15 minutes, by the replicas sharing this store, to 1 client: ending the grace now breaks them.`,
    )
    expect(settled.body.caveat).toMatch(/flush interval/)
    // Asked about the successor, the same rotation is described.
    const fromNew = await adminApi('GET', `/v1/keys/${newKeyId}/rotation-usage?minutes=5`)
    expect(fromNew.body.oldKey.keyId).toBe(issued.key.id)
    expect(sum(fromNew.body.oldKey.counts)).toBe(OLD_KEY_REQUESTS)

    // Ending the grace answers with the warning (the dashboard asks before, with the same text).
    const ended = await adminApi('POST', `/v1/keys/${issued.key.id}/expiry`, { endNow: true })
    expect(ended.status).toBe(200)
    expect(ended.body.warning).toBe(settled.body.endGraceWarning)

    // No token in any of it, nor in Redis's telemetry keys.
    for (const text of [settled.text, fromNew.text, ended.text]) {
      expect(text).not.toContain(issued.token)
      expect(text).not.toContain(newToken)
    }
    const probe = new Redis(redis.url)
    try {
      const keys = await probe.keys('keyrot:*:rot*')
      expect(keys.length).toBeGreaterThanOrEqual(3)
      for (const key of keys) {
        const ttl = await probe.pttl(key)
        expect(ttl).toBeGreaterThan(0)
        expect(ttl).toBeLessThanOrEqual(24 * 3_600_000)
        const content = JSON.stringify(await probe.hgetall(key))
        expect(content).not.toContain(issued.token.split('_').pop() as string)
      }
    } finally {
      probe.disconnect()
    }
  }, 60_000)
})
