import RedisMock from 'ioredis-mock'
import { describe, expect, it } from 'vitest'
import { resolveRedisStoreOptions } from './options.js'

const client = new RedisMock() as never

describe('resolveRedisStoreOptions', () => {
  it('fills every default', () => {
    const resolved = resolveRedisStoreOptions({ client })
    expect(resolved).toMatchObject({
      cluster: false,
      keyPrefix: 'keyrot',
      timeoutMs: 500,
      retentionMs: 30 * 86_400_000,
      usageFlushIntervalMs: 1_000,
      usageMaxPendingKeys: 10_000,
      invalidation: { heartbeatIntervalMs: 1_000, heartbeatTimeoutMs: 3_000 },
    })
    expect(resolved.durability.replicas).toBe(1)
    expect([...resolved.durability.operations]).toEqual(['revoke', 'emergencyRotate'])
  })

  it('turns durability and invalidation off with false, and never waits for 0 replicas', () => {
    const off = resolveRedisStoreOptions({ client, durability: false, invalidation: false })
    expect(off.durability.operations.size).toBe(0)
    expect(off.invalidation).toBeNull()
    expect(resolveRedisStoreOptions({ client, durability: { replicas: 0 } }).durability.operations.size).toBe(0)
  })

  it('does not change the caller object', () => {
    const options = Object.freeze({ client, usage: Object.freeze({ flushInterval: '2s' }) })
    expect(resolveRedisStoreOptions(options).usageFlushIntervalMs).toBe(2_000)
  })

  it.each([
    [{ client: undefined }, /client/],
    [{ client: {} }, /client/],
    [{ client, keyPrefix: 'has{brace}' }, /keyPrefix/],
    [{ client, keyPrefix: '' }, /keyPrefix/],
    [{ client, timeout: 0 }, /timeout/],
    [{ client, timeout: '-1s' }, /timeout/],
    [{ client, retention: 'forever' }, /retention/],
    [{ client, usage: { flushInterval: 0 } }, /usage.flushInterval/],
    [{ client, usage: { maxPendingKeys: 0 } }, /usage.maxPendingKeys/],
    [{ client, invalidation: { heartbeatInterval: '5s', heartbeatTimeout: '1s' } }, /heartbeatTimeout/],
    [{ client, durability: { replicas: -1 } }, /durability.replicas/],
    [{ client, durability: { operations: ['verify'] } }, /durability.operations/],
    [{ client, clock: {} }, /clock/],
  ])('refuses %j with a TypeError naming the option', (options, pattern) => {
    expect(() => resolveRedisStoreOptions(options as never)).toThrow(TypeError)
    expect(() => resolveRedisStoreOptions(options as never)).toThrow(pattern)
  })
})
