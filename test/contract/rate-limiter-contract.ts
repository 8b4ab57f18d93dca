import type { Attempt, FailureLimits, RateLimiter } from '@keyrot/core'
import { describe, expect, it } from 'vitest'

/**
 * What every `RateLimiter` does, at each boundary, on explicit (fake) time.
 * `limiter` and `peer` share their counters: the same object for the memory
 * limiter, two connections (two replicas) for Redis. Calls alternate between
 * them, so a shared limit is shown to be shared.
 */
export interface LimiterPair {
  limiter: RateLimiter
  peer: RateLimiter
}

const LIMITS: FailureLimits = {
  failuresPerIp: { limit: 5, windowMs: 60_000 },
  ipBlock: { threshold: 20, windowMs: 3_600_000, durationMs: 3_600_000 },
  failuresPerKey: { limit: 20, windowMs: 60_000 },
}
const T0 = Date.UTC(2030, 0, 1)

let unique = 0
/** A fresh IP and key id per test, so tests sharing a Redis never meet. */
function names(): { ip: string; keyId: string } {
  unique++
  return { ip: `127.9.${Math.floor(unique / 250)}.${unique % 250}`, keyId: `Rl${String(unique).padStart(14, '0')}` }
}

export function describeRateLimiterContract(name: string, open: () => Promise<LimiterPair>): void {
  describe(`RateLimiter contract: ${name}`, () => {
    async function setup() {
      const pair = await open()
      const { ip, keyId } = names()
      let turn = 0
      const pick = () => (turn++ % 2 === 0 ? pair.limiter : pair.peer)
      const attempt = (extra: Partial<Attempt> = {}): Attempt => ({ ip, keyId, chargeIp: true, chargeKey: true, ...extra })
      return {
        ip,
        keyId,
        admit: (now: number, extra: Partial<Attempt> = {}, limits: FailureLimits = LIMITS) => Promise.resolve(pick().admit(attempt(extra), limits, now)),
        release: (chargedAt: number, now: number, extra: { ip?: string | undefined; keyId?: string | undefined } = {}) =>
          Promise.resolve(pick().release({ ip, keyId, chargedAt, ...extra }, LIMITS, now)),
        consume: (now: number, quota = { limit: 100, windowMs: 60_000 }, id = keyId) => Promise.resolve(pick().consume(id, quota, now)),
        pair,
      }
    }

    const ipOnly: FailureLimits = { ...LIMITS, failuresPerKey: null }

    it('admits 5 failures from an IP in a window, refuses the 6th until the window ends, then admits again', async () => {
      const s = await setup()
      for (let i = 0; i < 5; i++) expect(await s.admit(T0 + i * 1000, {}, ipOnly)).toEqual({ allowed: true })
      expect(await s.admit(T0 + 5000, {}, ipOnly)).toEqual({ allowed: false, policy: 'ip-failures', limit: 5, windowMs: 60_000, retryAfterMs: 55_000 })
      expect(await s.admit(T0 + 59_999, {}, ipOnly)).toMatchObject({ allowed: false, policy: 'ip-failures', retryAfterMs: 1 })
      expect(await s.admit(T0 + 60_000, {}, ipOnly)).toEqual({ allowed: true })
    })

    it('does not charge refused attempts, and checks without charging an attempt that carries no charge', async () => {
      const s = await setup()
      for (let i = 0; i < 10; i++) expect(await s.admit(T0, { chargeIp: false, chargeKey: false })).toEqual({ allowed: true })
      for (let i = 0; i < 5; i++) await s.admit(T0, {}, ipOnly)
      for (let i = 0; i < 50; i++) await s.admit(T0 + 1000, {}, ipOnly)
      // The 50 refused attempts did not add to the block count: 14 more failures (19 in all) leave the IP unblocked, the 20th blocks it.
      for (let i = 0; i < 14; i++) expect(await s.admit(T0 + (1 + Math.floor(i / 5)) * 60_000, {}, ipOnly)).toEqual({ allowed: true })
      expect(await s.admit(T0 + 4 * 60_000, { chargeIp: false }, ipOnly)).toEqual({ allowed: true })
      expect(await s.admit(T0 + 4 * 60_000, {}, ipOnly)).toEqual({ allowed: true })
      expect(await s.admit(T0 + 4 * 60_000, { chargeIp: false }, ipOnly)).toMatchObject({ allowed: false, policy: 'ip-block' })
    })

    it('blocks an IP at its 20th failure for exactly the block duration, then starts afresh', async () => {
      const s = await setup()
      for (let minute = 0; minute < 4; minute++) {
        for (let i = 0; i < 5; i++) expect(await s.admit(T0 + minute * 60_000, {}, ipOnly)).toEqual({ allowed: true })
      }
      const blockedAt = T0 + 3 * 60_000
      expect(await s.admit(T0 + 4 * 60_000, { chargeIp: false }, ipOnly)).toEqual({
        allowed: false,
        policy: 'ip-block',
        limit: 20,
        windowMs: 3_600_000,
        retryAfterMs: 3_600_000 - 60_000,
      })
      expect(await s.admit(blockedAt + 3_599_999, { chargeIp: false }, ipOnly)).toMatchObject({ allowed: false, policy: 'ip-block', retryAfterMs: 1 })
      expect(await s.admit(blockedAt + 3_600_000, { chargeIp: false }, ipOnly)).toEqual({ allowed: true })
      for (let i = 0; i < 5; i++) expect(await s.admit(blockedAt + 3_600_000, {}, ipOnly)).toEqual({ allowed: true })
      expect(await s.admit(blockedAt + 3_600_000, {}, ipOnly)).toMatchObject({ allowed: false, policy: 'ip-failures' })
    })

    it('refunds a released charge in its own window only, and lifts the block it started', async () => {
      const s = await setup()
      for (let i = 0; i < 5; i++) await s.admit(T0, {}, ipOnly)
      expect(await s.admit(T0 + 1, {}, ipOnly)).toMatchObject({ allowed: false })
      await s.release(T0, T0 + 2, { keyId: undefined })
      expect(await s.admit(T0 + 3, {}, ipOnly)).toEqual({ allowed: true })
      // A charge from an ended window refunds nothing in the next one.
      for (let i = 0; i < 5; i++) await s.admit(T0 + 60_000, {}, ipOnly)
      await s.release(T0, T0 + 60_001, { keyId: undefined })
      expect(await s.admit(T0 + 60_002, {}, ipOnly)).toMatchObject({ allowed: false, policy: 'ip-failures' })

      const b = await setup()
      const blockOnly: FailureLimits = { failuresPerIp: null, ipBlock: LIMITS.ipBlock, failuresPerKey: null }
      for (let i = 0; i < 19; i++) await b.admit(T0, {}, blockOnly)
      await b.admit(T0 + 10, {}, blockOnly)
      expect(await b.admit(T0 + 20, { chargeIp: false }, blockOnly)).toMatchObject({ allowed: false, policy: 'ip-block' })
      await b.pair.limiter.release({ ip: b.ip, keyId: undefined, chargedAt: T0 + 10 }, blockOnly, T0 + 30)
      expect(await b.admit(T0 + 40, { chargeIp: false }, blockOnly)).toEqual({ allowed: true })
    })

    it('refuses unproven attempts on a key id after 20 failures from any IPs, until the window ends', async () => {
      const s = await setup()
      const keyOnly: FailureLimits = { failuresPerIp: null, ipBlock: null, failuresPerKey: LIMITS.failuresPerKey }
      for (let i = 0; i < 20; i++) expect(await s.admit(T0 + i, { ip: `127.8.0.${i}` }, keyOnly)).toEqual({ allowed: true })
      expect(await s.admit(T0 + 100, { ip: '127.8.1.1' }, keyOnly)).toEqual({
        allowed: false,
        policy: 'key-failures',
        limit: 20,
        windowMs: 60_000,
        retryAfterMs: 59_900,
      })
      expect(await s.admit(T0 + 100, { keyId: undefined, chargeIp: false, chargeKey: false }, keyOnly)).toEqual({ allowed: true })
      await s.release(T0 + 5, T0 + 200, { ip: undefined })
      expect(await s.admit(T0 + 300, { ip: '127.8.1.2' }, keyOnly)).toEqual({ allowed: true })
      expect(await s.admit(T0 + 300, { ip: '127.8.1.3' }, keyOnly)).toMatchObject({ allowed: false, policy: 'key-failures' })
      expect(await s.admit(T0 + 60_000, { ip: '127.8.1.4' }, keyOnly)).toEqual({ allowed: true })
    })

    it('refuses a network (e.g. an IPv6 /48) after its budget of failures from all its addresses, and refunds a released charge', async () => {
      const s = await setup()
      const network = `2001:db8:${(unique % 65_536).toString(16)}::/48`
      const netOnly: FailureLimits = { failuresPerIp: LIMITS.failuresPerIp, ipBlock: null, failuresPerKey: null, failuresPerNetwork: { limit: 10, windowMs: 60_000 } }
      const from = (i: number) => ({ ip: `${network.slice(0, -5)}:${i.toString(16)}::/64`, network })
      for (let i = 0; i < 10; i++) expect(await s.admit(T0 + i, from(i), netOnly)).toEqual({ allowed: true })
      expect(await s.admit(T0 + 100, from(99), netOnly)).toEqual({ allowed: false, policy: 'network-failures', limit: 10, windowMs: 60_000, retryAfterMs: 59_900 })
      // Unknown to the network budget: an attempt without a network, and one from another network.
      expect(await s.admit(T0 + 100, { ip: '2001:db8:ffff:1::/64', network: undefined }, netOnly)).toEqual({ allowed: true })
      await s.pair.limiter.release({ ip: from(3).ip, network, keyId: undefined, chargedAt: T0 + 3 }, netOnly, T0 + 200)
      expect(await s.admit(T0 + 300, from(100), netOnly)).toEqual({ allowed: true })
      expect(await s.admit(T0 + 300, from(101), netOnly)).toMatchObject({ allowed: false, policy: 'network-failures' })
      expect(await s.admit(T0 + 60_000, from(102), netOnly)).toEqual({ allowed: true })
    })

    it('lets exactly 10 of 40 concurrent failures from the /64s of one network through', async () => {
      const s = await setup()
      const network = `2001:db9:${(unique % 65_536).toString(16)}::/48`
      const netOnly: FailureLimits = { failuresPerIp: LIMITS.failuresPerIp, ipBlock: null, failuresPerKey: null, failuresPerNetwork: { limit: 10, windowMs: 60_000 } }
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) => s.admit(T0, { ip: `${network.slice(0, -5)}:${i.toString(16)}::/64`, network }, netOnly)),
      )
      expect(results.filter((r) => r.allowed)).toHaveLength(10)
    })

    it('lets exactly 5 of 40 concurrent failures from one IP through, wherever they land', async () => {
      const s = await setup()
      const results = await Promise.all(Array.from({ length: 40 }, () => s.admit(T0, {}, ipOnly)))
      expect(results.filter((r) => r.allowed)).toHaveLength(5)
    })

    it('gives a key 100 requests a minute (GCRA): the 101st waits one emission interval, a quiet window refills it', async () => {
      const s = await setup()
      const first = await s.consume(T0)
      expect(first).toEqual({ allowed: true, limit: 100, windowMs: 60_000, remaining: 99, resetMs: 600 })
      for (let i = 1; i < 100; i++) expect((await s.consume(T0)).allowed).toBe(true)
      expect(await s.consume(T0)).toEqual({ allowed: false, limit: 100, windowMs: 60_000, remaining: 0, resetMs: 60_000, retryAfterMs: 600 })
      expect((await s.consume(T0 + 599)).allowed).toBe(false)
      expect(await s.consume(T0 + 600)).toMatchObject({ allowed: true, remaining: 0 })
      const later = T0 + 600 + 60_000
      for (let i = 0; i < 100; i++) expect((await s.consume(later)).allowed).toBe(true)
      expect((await s.consume(later)).allowed).toBe(false)
    })

    it('keeps each key its own quota and limit', async () => {
      const s = await setup()
      const other = names().keyId
      for (let i = 0; i < 3; i++) expect((await s.consume(T0, { limit: 3, windowMs: 10_000 })).allowed).toBe(true)
      expect(await s.consume(T0, { limit: 3, windowMs: 10_000 })).toMatchObject({ allowed: false, retryAfterMs: 3334 })
      expect(await s.consume(T0, { limit: 3, windowMs: 10_000 }, other)).toMatchObject({ allowed: true, remaining: 2 })
    })

    it('admits exactly 100 of 150 concurrent requests on one key', async () => {
      const s = await setup()
      const results = await Promise.all(Array.from({ length: 150 }, () => s.consume(T0)))
      expect(results.filter((r) => r.allowed)).toHaveLength(100)
    })
  })
}
