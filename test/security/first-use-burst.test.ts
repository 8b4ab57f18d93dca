import { randomBytes } from 'node:crypto'
import { createKeyring, MemoryRateLimiter, MemoryStore, type KeyStore, type RateLimiter } from '@keyrot/core'
import { RedisRateLimiter, RedisStore } from '@keyrot/redis'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'
import { CountingArgon2, describeTally, send, serve, type Server } from './support.js'

/**
 * Issue 14, finding 8: on a fresh replica using the documented
 * `RedisRateLimiter.forStore(store)`, 50 parallel first requests with one
 * valid key gave 20 OK and 30 `KEYROT_RATE_LIMITED`: each attempt was
 * charged to the key's failure budget while the limiter answered, before the
 * one Argon2 run they all shared. Now the first attempt's admission is
 * shared from the moment it is asked for, so the burst costs one admission,
 * one charge (refunded on success) and one Argon2 run, with every limiter.
 *
 * The figure as it was comes from the issue (the code that produced it is
 * gone); what this suite measures is the burst now and the admissions it
 * asked the limiter for (one per request before the fix).
 */

let redis: RedisServer
const cleanup: (() => Promise<void> | void)[] = []

beforeAll(async () => {
  redis = await startRedisServer()
}, 60_000)

afterAll(async () => {
  for (const close of cleanup.reverse()) await close()
  await redis?.stop()
})

interface Counted {
  /** Admissions asked of the limiter. */
  admissions: number
  /** Those that charged a failure (an unproven token): the rest only checked the IP of a token proven by then. */
  charges: number
  /** Charges refunded. */
  refunds: number
}

/** Counts what a burst asks of a limiter. */
function counted(inner: RateLimiter): RateLimiter & Counted {
  const limiter = {
    admissions: 0,
    charges: 0,
    refunds: 0,
    admit: (...args: Parameters<RateLimiter['admit']>) => {
      limiter.admissions++
      if (args[0].chargeIp || args[0].chargeKey) limiter.charges++
      return inner.admit(...args)
    },
    release: (...args: Parameters<RateLimiter['release']>) => {
      limiter.refunds++
      return inner.release(...args)
    },
    consume: (...args: Parameters<RateLimiter['consume']>) => inner.consume(...args),
    close: () => inner.close?.() ?? Promise.resolve(),
  }
  return limiter
}

function redisStore(keyPrefix: string): RedisStore {
  const client = new Redis(redis.port, '127.0.0.1', { lazyConnect: true })
  cleanup.push(() => client.disconnect())
  return new RedisStore({ client, keyPrefix })
}

const setups: [string, () => { adminStore: KeyStore; store: KeyStore; limiter: RateLimiter & Counted }][] = [
  [
    'RedisRateLimiter.forStore(store)',
    () => {
      const keyPrefix = `burst${randomBytes(4).toString('hex')}`
      const store = redisStore(keyPrefix)
      return { adminStore: redisStore(keyPrefix), store, limiter: counted(RedisRateLimiter.forStore(store)) }
    },
  ],
  [
    'MemoryRateLimiter',
    () => {
      const store = new MemoryStore()
      return { adminStore: store, store, limiter: counted(new MemoryRateLimiter()) }
    },
  ],
]

describe.each(setups)('finding 8: parallel first uses of one valid key on a fresh replica (%s)', (name, setup) => {
  it.each([50, 200])('answers %i parallel first requests with 200 each, charged once and refunded', { timeout: 120_000 }, async (burst) => {
    const { adminStore, store, limiter } = setup()
    // The key is created elsewhere (another replica): the serving replica has never proven it. Its own quota covers the burst.
    const hasher = new CountingArgon2()
    const admin = createKeyring({ store: adminStore, hasher })
    cleanup.push(() => admin.close())
    const issued = await admin.create({ tenantId: 'acme', name: 'ci', rateLimit: { limit: 10_000, window: '1m' } })
    const server: Server = await serve({ store, hasher, rateLimit: { limiter } })
    cleanup.push(() => server.close())
    hasher.runs = 0
    limiter.admissions = 0
    limiter.charges = 0
    limiter.refunds = 0
    const tally = await send(
      `${server.url}/v1/ping`,
      Array.from({ length: burst }, () => ({ token: issued.token, ip: '203.0.113.50' })),
      burst,
    )
    console.log(
      `[security] finding 8 (${name}): ${tally.attempts} parallel first requests: ${describeTally(tally)}, ` +
        `${tally.statuses.get(429) ?? 0} x 429, limiter admissions: ${limiter.admissions}, charged: ${limiter.charges}, refunded: ${limiter.refunds}, Argon2 runs: ${hasher.runs}, 5xx: ${tally.serverErrors} ` +
        `(as it was, per the issue: 50 requests gave 20 OK and 30 KEYROT_RATE_LIMITED with the Redis limiter)`,
    )
    expect(tally.statuses.get(200)).toBe(burst)
    expect(tally.serverErrors).toBe(0)
    expect(limiter.charges).toBe(1)
    expect(limiter.refunds).toBe(1)
    expect(hasher.runs).toBe(1)
  })
})
