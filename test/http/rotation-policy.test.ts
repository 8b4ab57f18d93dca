import { createKeyring, FastTestHasher, ManualClock, type KeyringEvents, type Keyring } from '@keyrot/core'
import { RedisStore } from '@keyrot/redis'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'
import { frameworks, type RunningApp } from './apps.js'
import { get, jsonOf } from './client.js'

// Rotation policies over real HTTP, on every adapter, with two replicas
// sharing a real redis-server: time is a ManualClock shared by both (the
// policy is evaluated at verify, never by a timer, so no waiting is needed).

const DAY = 86_400_000
const HTTP_DATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/

let redis: RedisServer
const clients: Redis[] = []
const keyrings: Keyring[] = []

beforeAll(async () => {
  redis = await startRedisServer()
})

afterAll(async () => {
  for (const keyring of keyrings) await keyring.close()
  for (const client of clients) client.disconnect()
  await redis?.stop()
})

/** One replica: its own Redis connection and keyring on the shared prefix. */
function replica(clock: ManualClock, keyPrefix: string): Keyring {
  const client = new Redis(redis.port, '127.0.0.1', { lazyConnect: true })
  clients.push(client)
  const keyring = createKeyring({
    store: new RedisStore({ client, keyPrefix }),
    hasher: new FastTestHasher(),
    clock,
    prefix: 'sk_test',
    rateLimit: false,
    policy: { maxAge: '90d', rotationWarning: '14d' },
  })
  keyrings.push(keyring)
  return keyring
}

async function serve(start: (typeof frameworks)[number]['start'], keyring: Keyring): Promise<RunningApp> {
  return start({ keyring, flaky: keyring, guarded: keyring })
}

describe.each(frameworks)('rotation policy over HTTP on Redis: $framework', ({ framework, start }) => {
  it('warns with Deprecation from maxAge - rotationWarning, Sunset once enforced, then answers 401 expired; one event for the fleet', async () => {
    const clock = new ManualClock(Date.now())
    const prefix = `pol${framework}`
    const a = replica(clock, prefix)
    const b = replica(clock, prefix)
    const due: KeyringEvents['key.rotation-due'][] = []
    a.on('key.rotation-due', (event) => due.push(event))
    b.on('key.rotation-due', (event) => due.push(event))
    const appA = await serve(start, a)
    const appB = await serve(start, b)
    try {
      const { token, key } = await a.create({ tenantId: 'acme', name: 'billing' })
      const auth = { authorization: `Bearer ${token}` }
      const dueAt = key.createdAt + 90 * DAY

      const young = await get(appA.port, '/whoami', auth)
      expect(young.status).toBe(200)
      expect(young.headers['deprecation']).toBeUndefined()

      clock.advance(77 * DAY)
      for (const app of [appA, appB, appA, appB]) {
        const warned = await get(app.port, '/whoami', auth)
        expect(warned.status).toBe(200)
        // RFC 9745: a structured-field Date, epoch seconds.
        expect(warned.headers['deprecation']).toBe(`@${Math.floor(dueAt / 1000)}`)
        expect(warned.headers['sunset']).toBeUndefined()
      }
      await expect.poll(() => due.length).toBe(1)
      expect(due[0]).toMatchObject({ keyId: key.id, tenantId: 'acme', dueAt, overdue: false, enforced: false })

      // A wrong secret for the same key id learns nothing about the policy.
      const wrong = await get(appA.port, '/whoami', { authorization: `Bearer ${token.slice(0, -6)}AAAAAA` })
      expect(wrong.status).toBe(401)
      expect(wrong.headers['deprecation']).toBeUndefined()

      // The tenant's override, set on replica a, reaches b after its refresh (30 s by default).
      await a.setTenantPolicy('acme', { enforce: true })
      const enforced = await get(appA.port, '/whoami', auth)
      expect(enforced.headers['sunset']).toMatch(HTTP_DATE)
      expect(Date.parse(enforced.headers['sunset'] as string)).toBe(Math.floor(dueAt / 1000) * 1000)
      clock.advance(30_000)
      await get(appB.port, '/whoami', auth)
      await expect.poll(async () => (await get(appB.port, '/whoami', auth)).headers['sunset']).toMatch(HTTP_DATE)

      clock.advance(13 * DAY)
      for (const app of [appA, appB]) {
        const expired = await get(app.port, '/whoami', auth)
        expect(expired.status).toBe(401)
        expect(jsonOf(expired)).toMatchObject({ error: { code: 'KEYROT_KEY_EXPIRED' } })
        expect(expired.headers['www-authenticate']).toContain('error="invalid_token"')
      }
      // Rotating fixes it: the successor is a new key with its own age.
      const next = await a.rotate(key.id, { gracePeriod: 0 })
      const fresh = await get(appB.port, '/whoami', { authorization: `Bearer ${next.token}` })
      expect(fresh.status).toBe(200)
      expect(fresh.headers['deprecation']).toBeUndefined()
      expect(due).toHaveLength(1)
    } finally {
      await appA.close()
      await appB.close()
    }
  })
})
