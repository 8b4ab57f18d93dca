import { describe, expect, it } from 'vitest'
import { ManualClock } from '../clock.js'
import type { KeyRecord } from '../types.js'
import { newRecord } from '../lifecycle/succession.js'
import { keyView } from './key-view.js'
import { SlotMap } from './slot-map.js'
import { VerificationCache } from './verification-cache.js'

/** A new key's record (as the keyring makes one), with `fields` over it. */
function record(id: string, fields: Partial<KeyRecord> = {}): KeyRecord {
  const draft = { tenantId: 't', name: id, prefix: 'sk', scopes: [], metadata: {}, rateLimit: null, expiresAt: null }
  return { ...newRecord(draft, id, null, 0, 'h'), ...fields }
}

const read = async (id: string) => record(id)

describe('SlotMap', () => {
  it('gives a full map’s slot to the least recently used key, sparing a used one once (CLOCK)', () => {
    const evicted: number[] = []
    const slots = new SlotMap({ max: 3, evict: (slot) => evicted.push(slot), grow: () => {} })
    const a = slots.claim('a')
    slots.claim('b')
    slots.claim('c')
    expect(slots.get('a')).toBe(a) // used: spared once
    const d = slots.claim('d')
    expect(slots.peek('b')).toBe(-1)
    expect(d).not.toBe(a)
    expect(evicted).toEqual([d])
    expect(slots.size).toBe(3)
    expect([...slots.entries()].map(([key]) => key).sort()).toEqual(['a', 'c', 'd'])
  })

  it('reuses freed slots before growing, and grows by doubling up to max', () => {
    const capacities: number[] = []
    const slots = new SlotMap({ max: 600, evict: () => {}, grow: (capacity) => capacities.push(capacity) })
    for (let i = 0; i < 300; i++) slots.claim(`k${i}`)
    slots.delete('k7')
    expect(slots.claim('again')).toBe(7)
    for (let i = 300; i < 600; i++) slots.claim(`k${i}`)
    expect(capacities).toEqual([256, 512, 600])
    expect(slots.size).toBe(600)
  })
})

describe('VerificationCache entries', () => {
  const setup = (staleIfErrorMs: number, maxEntries = 3) => {
    const clock = new ManualClock(0)
    const cache = new VerificationCache({ maxEntries, stateTtlMs: 5_000, clock, staleIfErrorMs })
    return { clock, cache }
  }

  it('keeps one entry per key: proof and state are evicted together, bounded by maxEntries', async () => {
    const { cache } = setup(30_000)
    for (let i = 0; i < 10; i++) {
      await cache.load(`k${i}`, read)
      cache.rememberProof(`d${i}`, `k${i}`)
    }
    expect(cache.stats()).toMatchObject({ proofs: 3, states: 3 })
    expect(cache.proven('k0', 'd0')).toBe(false)
    expect(cache.staleState('k0')).toBeUndefined()
    expect(cache.proven('k9', 'd9')).toBe(true)
    expect(cache.proven('k9', 'd8')).toBe(false)
    expect(cache.staleState('k9')?.id).toBe('k9')
  })

  it('trusts a state for stateTtl, never past expiresAt, and serves the stale copy for staleIfError after its last confirmation', async () => {
    const { clock, cache } = setup(30_000)
    await cache.load('a', read)
    await cache.load('b', async (id) => record(id, { expiresAt: 2_000 }))
    clock.set(1_999)
    expect(cache.cachedState('b')?.id).toBe('b')
    clock.set(2_000)
    expect(cache.cachedState('b')).toBeUndefined()
    clock.set(4_999)
    expect(cache.cachedState('a')?.id).toBe('a') // a hit with a live feed confirms the copy again
    clock.set(5_000)
    expect(cache.cachedState('a')).toBeUndefined()
    clock.set(4_999 + 30_000)
    expect(cache.staleState('a')?.id).toBe('a')
    clock.set(5_000 + 30_000)
    expect(cache.staleState('a')).toBeUndefined()
    expect(cache.stats()).toMatchObject({ hits: 2, misses: 2 })
  })

  it('confirms a state read while the feed is down without trusting it, and keeps none when staleIfErrorMs is 0', async () => {
    const kept = setup(30_000)
    const loaded = await kept.cache.load('k', read, false)
    expect(loaded?.record.hash).toBe('h')
    expect(kept.cache.stats().states).toBe(0)
    expect(kept.cache.cachedState('k')).toBeUndefined()
    expect(kept.cache.staleState('k')?.id).toBe('k')
    const none = setup(0)
    await none.cache.load('k', read)
    expect(none.cache.cachedState('k')?.id).toBe('k')
    expect(none.cache.staleState('k')).toBeUndefined()
  })

  it('does not keep a load its key was invalidated during; invalidateAll keeps proofs and stale copies, clear drops them', async () => {
    const { cache } = setup(30_000)
    let finish: (value: KeyRecord) => void = () => {}
    const loading = cache.load('k', () => new Promise<KeyRecord>((resolve) => (finish = resolve)))
    cache.invalidate('k')
    finish(record('k'))
    expect((await loading)?.key.id).toBe('k')
    expect(cache.staleState('k')).toBeUndefined()
    expect(cache.cachedState('k')).toBeUndefined()
    await cache.load('j', read)
    cache.rememberProof('dj', 'j')
    cache.invalidateAll()
    expect(cache.cachedState('j')).toBeUndefined()
    expect(cache.staleState('j')?.id).toBe('j')
    expect(cache.proven('j', 'dj')).toBe(true)
    cache.invalidate('j')
    expect(cache.staleState('j')).toBeUndefined()
    expect(cache.proven('j', 'dj')).toBe(true)
    cache.clear()
    expect(cache.proven('j', 'dj')).toBe(false)
    expect(cache.stats()).toMatchObject({ proofs: 0, states: 0 })
  })

  it('shares one store read among concurrent loads of a key', async () => {
    const { cache } = setup(0)
    let reads = 0
    const loads = await Promise.all(Array.from({ length: 5 }, () => cache.load('k', async (id) => (reads++, record(id)))))
    expect(reads).toBe(1)
    expect(new Set(loads.map((loaded) => loaded?.key)).size).toBe(1)
  })
})

describe('keyView', () => {
  it('is frozen down to scopes, metadata, rate limit, credits and networks, and hides the hash', () => {
    const view = keyView(
      record('k', { scopes: ['read'], metadata: { team: 'a' }, rateLimit: { limit: 5, windowMs: 1000 }, credits: { refill: { amount: 1, intervalMs: 1000 } }, allowedIps: ['10.0.0.0/8'], sharedProof: 'p', importIndex: 'i' }),
    )
    for (const part of [view, view.scopes, view.metadata, view.rateLimit, view.credits, view.credits?.refill, view.allowedIps]) expect(Object.isFrozen(part)).toBe(true)
    expect(() => (view.scopes as string[]).push('admin')).toThrow(TypeError)
    expect(Object.keys(view)).not.toContain('hash')
    expect(Object.keys(view)).not.toContain('sharedProof')
    expect(Object.keys(view)).not.toContain('importIndex')
    expect(view).toMatchObject({ id: 'k', state: 'active', scopes: ['read'], metadata: { team: 'a' } })
  })

  it('reports revoked and grace states, and leaves expiry to the verify path’s clock', () => {
    expect(keyView(record('k', { revokedAt: 1 })).state).toBe('revoked')
    expect(keyView(record('k', { rotatedTo: 'n' })).state).toBe('grace')
    expect(keyView(record('k', { expiresAt: 1 })).state).toBe('active')
  })
})
