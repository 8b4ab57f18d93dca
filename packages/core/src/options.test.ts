import { describe, expect, it } from 'vitest'
import { ManualClock } from './clock.js'
import { Argon2Hasher, FastTestHasher, OWASP_ARGON2 } from './hash/hasher.js'
import { createKeyring } from './lifecycle/keyring.js'
import { resolveKeyringOptions, type KeyringOptions } from './options.js'
import { MemoryStore } from './store/memory-store.js'

describe('keyring options', () => {
  it('resolves defaults: 24h grace, sk_live, 10,000 cache entries, 5s state TTL, OWASP Argon2', () => {
    const resolved = resolveKeyringOptions()
    expect(resolved.gracePeriodMs).toBe(86_400_000)
    expect(resolved.prefix).toBe('sk_live')
    expect(resolved.cacheMaxEntries).toBe(10_000)
    expect(resolved.stateTtlMs).toBe(5_000)
    expect(resolved.staleIfErrorMs).toBe(30_000)
    expect(resolved.graceUsageEventIntervalMs).toBe(60_000)
    expect(resolved.store).toBeInstanceOf(MemoryStore)
    expect(resolved.hasher).toBeInstanceOf(Argon2Hasher)
    expect((resolved.hasher as Argon2Hasher).options).toEqual(OWASP_ARGON2)
  })

  it('takes durations as milliseconds or strings, and treats undefined as omitted', () => {
    const resolved = resolveKeyringOptions({
      gracePeriod: '1h',
      cache: { stateTtl: 250, maxEntries: undefined },
      graceUsageEventInterval: undefined,
      prefix: undefined,
    })
    expect(resolved.gracePeriodMs).toBe(3_600_000)
    expect(resolved.stateTtlMs).toBe(250)
    expect(resolved.cacheMaxEntries).toBe(10_000)
    expect(resolveKeyringOptions({ cache: { staleIfError: '1m' } }).staleIfErrorMs).toBe(60_000)
    expect(resolveKeyringOptions({ cache: { staleIfError: 0 } }).staleIfErrorMs).toBe(0)
    expect(resolved.graceUsageEventIntervalMs).toBe(60_000)
    expect(resolved.prefix).toBe('sk_live')
  })

  it('never mutates the caller’s options', () => {
    const options: KeyringOptions = Object.freeze({
      gracePeriod: '2h',
      cache: Object.freeze({ maxEntries: 5 }),
      hasher: new FastTestHasher(),
    })
    const copy = { ...options, cache: { ...options.cache } }
    createKeyring(options)
    expect(options).toEqual(copy)
  })

  it.each<[string, KeyringOptions, RegExp]>([
    ['gracePeriod', { gracePeriod: 'forever' }, /^gracePeriod /],
    ['gracePeriod', { gracePeriod: -1 }, /^gracePeriod /],
    ['cache.stateTtl', { cache: { stateTtl: '5 minutes' } }, /^cache\.stateTtl /],
    ['cache.staleIfError', { cache: { staleIfError: -1 } }, /^cache\.staleIfError /],
    ['cache', { cache: 5 as never }, /^cache /],
    ['cache.maxEntries', { cache: { maxEntries: -1 } }, /^cache\.maxEntries /],
    ['cache.maxEntries', { cache: { maxEntries: 1.5 } }, /^cache\.maxEntries /],
    ['graceUsageEventInterval', { graceUsageEventInterval: 'soon' }, /^graceUsageEventInterval /],
    ['prefix', { prefix: 'SK-LIVE' }, /^prefix /],
    ['prefix', { prefix: 'a'.repeat(33) }, /^prefix /],
    ['store', { store: {} as never }, /^store /],
    ['hasher', { hasher: { hash: async () => '' } as never }, /^hasher /],
    ['clock', { clock: { now: 5 } as never }, /^clock /],
    ['logger', { logger: { info() {} } as never }, /^logger /],
  ])('throws a TypeError naming %s when it is impossible', (_name, options, message) => {
    expect(() => createKeyring({ hasher: new FastTestHasher(), ...options })).toThrow(TypeError)
    expect(() => createKeyring({ hasher: new FastTestHasher(), ...options })).toThrow(message)
  })

  it('throws a TypeError when the options are not an object', () => {
    expect(() => createKeyring(42 as never)).toThrow(TypeError)
    expect(() => createKeyring(null as never)).toThrow(TypeError)
  })

  it('takes 0 as "off": no grace, no cache, no state TTL', async () => {
    const clock = new ManualClock()
    const keyring = createKeyring({ clock, hasher: new FastTestHasher(), gracePeriod: 0, cache: { maxEntries: 0, stateTtl: 0 } })
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    await keyring.rotate(key.id)
    const result = await keyring.verify(token)
    expect(result.ok).toBe(false)
    expect(!result.ok && result.error.code).toBe('KEYROT_KEY_EXPIRED')
    expect(keyring.cacheStats()).toEqual({ proofs: 0, states: 0, hits: 0, misses: 0 })
  })
})
