import { describe, expect, it } from 'vitest'
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
