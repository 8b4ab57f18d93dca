import { createKeyring, FastTestHasher, generateToken, ManualClock, MemoryStore, type Keyring, type KeyStore } from '@keyrot/core'
import { RedisStore } from '@keyrot/redis'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'
import { frameworks, type RunningApp } from './apps.js'
import { get, jsonOf, type TestResponse } from './client.js'

// Credits over real HTTP, through every adapter: each rule once on a
// MemoryStore and once on a real redis-server (the balance in Redis, spent
// by its Lua script). Time is a ManualClock: refills are due when it says.

const DAY = 86_400_000
const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

let server: RedisServer
const closers: Array<() => Promise<void>> = []

beforeAll(async () => {
  server = await startRedisServer()
}, 60_000)

afterAll(async () => {
  for (const close of closers.reverse()) await close()
  await server?.stop()
})

function codeOf(response: TestResponse): string | undefined {
  return (jsonOf(response) as { error?: { code?: string } } | undefined)?.error?.code
}

async function world(storeKind: 'memory' | 'redis', framework: string): Promise<{ clock: ManualClock; keyring: Keyring; app: RunningApp }> {
  const clock = new ManualClock(Date.now())
  let store: KeyStore
  if (storeKind === 'redis') {
    const redisStore = new RedisStore({ client: new Redis(server.port, '127.0.0.1', { lazyConnect: true }), keyPrefix: `credits-${framework}-${Math.random().toString(36).slice(2)}` })
    await redisStore.waitUntilReady(10_000)
    store = redisStore
  } else {
    store = new MemoryStore()
  }
  const common = { hasher: new FastTestHasher(), clock, prefix: 'sk_test', rateLimit: false as const }
  const keyring = createKeyring({ ...common, store, gracePeriod: '1h' })
  // The other routes of the shared apps are not used here.
  const other = createKeyring({ ...common, store: new MemoryStore() })
  const start = frameworks.find((entry) => entry.framework === framework)?.start
  if (!start) throw new Error(`no app for ${framework}`)
  const app = await start({ keyring, flaky: other, guarded: other })
  closers.push(async () => {
    await app.close()
    await keyring.close()
    await other.close()
  })
  return { clock, keyring, app }
}

describe.each(['memory', 'redis'] as const)('credits over HTTP on the %s store', (storeKind) => {
  describe.each(frameworks.map((entry) => entry.framework))('%s', (framework) => {
    it('spends 1 per request (5 with the middleware cost), says what is left, and answers 429 KEYROT_CREDITS_EXHAUSTED with the next refill', async () => {
      const { clock, keyring, app } = await world(storeKind, framework)
      const createdAt = clock.now()
      const { token } = await keyring.create({ tenantId: 'acme', name: 'metered', credits: { remaining: 7, refill: { amount: 7, interval: '1d' } } })
      const first = await get(app.port, '/whoami', bearer(token))
      expect(first.status).toBe(200)
      expect(first.headers['x-credits-remaining']).toBe('6')
      expect(first.headers['x-credits-reset']).toBe(String(DAY / 1000))
      const metered = await get(app.port, '/metered', bearer(token))
      expect({ status: metered.status, remaining: metered.headers['x-credits-remaining'] }).toEqual({ status: 200, remaining: '1' })
      // 5 credits asked, 1 left: refused, nothing spent.
      const refused = await get(app.port, '/metered', bearer(token))
      expect({ status: refused.status, code: codeOf(refused) }).toEqual({ status: 429, code: 'KEYROT_CREDITS_EXHAUSTED' })
      expect(refused.headers['x-credits-remaining']).toBe('1')
      expect(refused.headers['retry-after']).toBe(String(DAY / 1000))
      expect(refused.headers['cache-control']).toBe('no-store')
      expect((await get(app.port, '/whoami', bearer(token))).headers['x-credits-remaining']).toBe('0')
      clock.advance(DAY / 2)
      const empty = await get(app.port, '/whoami', bearer(token))
      expect({ status: empty.status, code: codeOf(empty), retryAfter: empty.headers['retry-after'], reset: empty.headers['x-credits-reset'] }).toEqual({
        status: 429,
        code: 'KEYROT_CREDITS_EXHAUSTED',
        retryAfter: String(DAY / 2000),
        reset: String(DAY / 2000),
      })
      clock.set(createdAt + DAY)
      const refilled = await get(app.port, '/whoami', bearer(token))
      expect({ status: refilled.status, remaining: refilled.headers['x-credits-remaining'] }).toEqual({ status: 200, remaining: '6' })
    })

    it('spends nothing on a request refused for a missing scope, and tells a wrong secret nothing about credits', async () => {
      const { keyring, app } = await world(storeKind, framework)
      const { token, key } = await keyring.create({ tenantId: 'acme', name: 'metered', credits: { remaining: 0 } })
      const wrong = await get(app.port, '/whoami', bearer(generateToken('sk_test', key.id)))
      expect({ status: wrong.status, code: codeOf(wrong) }).toEqual({ status: 401, code: 'KEYROT_INVALID_KEY' })
      expect(Object.keys(wrong.headers).filter((name) => name.startsWith('x-credits') || name === 'retry-after')).toEqual([])
      const scoped = await get(app.port, '/admin', bearer(token))
      expect(scoped.status).toBe(403)
      await keyring.setCredits(key.id, 2)
      expect((await get(app.port, '/admin', bearer(token))).status).toBe(403)
      expect((await keyring.credits(key.id))?.remaining).toBe(2)
      // remaining: 0 was no uses (not unlimited); without refill a refusal has no Retry-After.
      expect((await get(app.port, '/whoami', bearer(token))).status).toBe(200)
      expect((await get(app.port, '/whoami', bearer(token))).status).toBe(200)
      const spent = await get(app.port, '/whoami', bearer(token))
      expect({ status: spent.status, retryAfter: spent.headers['retry-after'], remaining: spent.headers['x-credits-remaining'] }).toEqual({
        status: 429,
        retryAfter: undefined,
        remaining: '0',
      })
    })

    it('lets the old and the new key of a rotation draw from one balance during grace; a key without credits gets no credit headers', async () => {
      const { keyring, app } = await world(storeKind, framework)
      const old = await keyring.create({ tenantId: 'acme', name: 'metered', credits: { remaining: 4 } })
      expect((await get(app.port, '/whoami', bearer(old.token))).status).toBe(200)
      const next = await keyring.rotate(old.key.id)
      const answers: Array<[number, string | undefined]> = []
      for (const token of [next.token, old.token, next.token, old.token]) {
        const response = await get(app.port, '/whoami', bearer(token))
        answers.push([response.status, response.headers['x-credits-remaining']])
      }
      expect(answers).toEqual([
        [200, '2'],
        [200, '1'],
        [200, '0'],
        [429, '0'],
      ])
      const plain = await keyring.create({ tenantId: 'acme', name: 'plain' })
      const response = await get(app.port, '/metered', bearer(plain.token))
      expect(response.status).toBe(200)
      expect(response.headers['x-credits-remaining']).toBeUndefined()
    })
  })
})
