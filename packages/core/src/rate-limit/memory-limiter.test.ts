import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { FailureLimits } from './limiter.js'
import { MemoryRateLimiter } from './memory-limiter.js'

describe('MemoryRateLimiter quotas', () => {
  it('keeps every key’s quota across the growth of its slots (each key’s second request in the window is refused)', () => {
    const limiter = new MemoryRateLimiter({ maxKeys: 5_000 })
    const quota = { limit: 1, windowMs: 60_000 }
    // 256, 512, 1,024, ... keys: the slot arrays grow when the next key arrives.
    for (let i = 0; i < 2_100; i++) {
      const keyId = `key-${i}`
      expect(limiter.consume(keyId, quota, 1_000).allowed, `${keyId} first`).toBe(true)
      expect(limiter.consume(keyId, quota, 1_000).allowed, `${keyId} second`).toBe(false)
    }
    expect(limiter.size.quotas).toBe(2_100)
  })

  it('forgets the least recently used key past maxKeys, and only it', () => {
    const limiter = new MemoryRateLimiter({ maxKeys: 3 })
    const quota = { limit: 1, windowMs: 60_000 }
    for (const keyId of ['a', 'b', 'c']) limiter.consume(keyId, quota, 0)
    expect(limiter.consume('a', quota, 0).allowed).toBe(false) // a is used again: spared
    limiter.consume('d', quota, 0)
    expect(limiter.size.quotas).toBe(3)
    expect(limiter.consume('a', quota, 0).allowed).toBe(false)
    expect(limiter.consume('c', quota, 0).allowed).toBe(false)
    expect(limiter.consume('b', quota, 0).allowed).toBe(true) // b was forgotten: a fresh quota
  })
})

describe('MemoryRateLimiter.clientsClean', () => {
  const limits: FailureLimits = {
    failuresPerIp: { limit: 3, windowMs: 1_000 },
    ipBlock: { threshold: 4, windowMs: 4_000, durationMs: 10_000 },
    failuresPerKey: { limit: 10, windowMs: 1_000 },
    failuresPerNetwork: { limit: 4, windowMs: 2_000 },
  }
  const ips = ['198.51.100.1', '198.51.100.2', '203.0.113.9']
  const networkOf = (ip: string) => ip.split('.').slice(0, 3).join('.')

  it('says clean only when every client would pass a charge-free attempt, and again once the last window or block has ended', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ ip: fc.constantFrom(...ips), after: fc.integer({ min: 0, max: 1_500 }) }), { minLength: 1, maxLength: 40 }),
        (failures) => {
          // Small tables: the LRUs allocate their whole size up front.
          const limiter = new MemoryRateLimiter({ maxIps: 100, maxKeys: 100 })
          let now = 1_000_000
          for (const { ip, after } of failures) {
            now += after
            limiter.admit({ ip, network: networkOf(ip), keyId: undefined, chargeIp: true, chargeKey: false }, limits, now)
          }
          // Probed every 100 ms from the last failure to past every window and block.
          const last = now + Math.max(limits.ipBlock!.durationMs, limits.failuresPerNetwork!.windowMs, limits.failuresPerIp!.windowMs)
          for (let probe = now; probe <= last; probe += 100) {
            if (!limiter.clientsClean(probe, limits)) continue
            // Sound: "clean" never lets through a client the full decision would refuse.
            for (const ip of ips) {
              expect(limiter.admit({ ip, network: networkOf(ip), keyId: undefined, chargeIp: false, chargeKey: false }, limits, probe).allowed).toBe(true)
            }
          }
          // And not stuck: past every window and block, it is clean again.
          expect(limiter.clientsClean(last, limits)).toBe(true)
        },
      ),
      { numRuns: 300 },
    )
  })

  it('is not clean while a failure window runs, and is when it ends', () => {
    const limiter = new MemoryRateLimiter({ maxIps: 100, maxKeys: 100 })
    expect(limiter.clientsClean(0, limits)).toBe(true)
    limiter.admit({ ip: ips[0], network: undefined, keyId: undefined, chargeIp: true, chargeKey: false }, limits, 5_000)
    expect(limiter.clientsClean(5_000, limits)).toBe(false)
    expect(limiter.clientsClean(5_999, limits)).toBe(false)
    expect(limiter.clientsClean(6_000, limits)).toBe(true)
  })

  it('judges by the asking limits: a keyring with a longer window than the one that wrote the failure is not clean yet', () => {
    const limiter = new MemoryRateLimiter({ maxIps: 100, maxKeys: 100 })
    const longer: FailureLimits = { ...limits, failuresPerIp: { limit: 1, windowMs: 60_000 } }
    limiter.admit({ ip: ips[0], network: undefined, keyId: undefined, chargeIp: true, chargeKey: false }, limits, 5_000)
    expect(limiter.clientsClean(6_000, limits)).toBe(true)
    expect(limiter.clientsClean(6_000, longer)).toBe(false)
    // The full decision agrees: under the longer window the IP is at its limit.
    expect(limiter.admit({ ip: ips[0], network: undefined, keyId: undefined, chargeIp: false, chargeKey: false }, longer, 6_000).allowed).toBe(false)
    expect(limiter.clientsClean(65_000, longer)).toBe(true)
  })
})
