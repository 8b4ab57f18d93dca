import { describe, expect, it } from 'vitest'
import { ManualClock } from '../clock.js'
import type { KeyRecord } from '../types.js'
import { StaleStates } from './stale-states.js'
import { VerificationCache } from './verification-cache.js'

function record(id: string, expiresAt: number | null = null): KeyRecord {
  return { id, expiresAt } as KeyRecord
}

describe('StaleStates', () => {
  it('keeps at most maxEntries keys, least recently used out first', () => {
    const stale = new StaleStates({ maxEntries: 2, maxAgeMs: 30_000 })
    for (const id of ['a', 'b', 'c']) stale.confirm(record(id), 0)
    expect(stale.size).toBe(2)
    expect(stale.get('a', 0)).toBeUndefined()
    expect(stale.get('c', 0)?.id).toBe('c')
  })

  it('serves a copy for maxAgeMs after its last confirmation and drops it after', () => {
    const stale = new StaleStates({ maxEntries: 10, maxAgeMs: 30_000 })
    const copy = record('a')
    stale.confirm(copy, 0)
    stale.reconfirm('a', copy, 10_000)
    stale.reconfirm('a', record('a'), 20_000) // another object: not the confirmed copy
    expect(stale.get('a', 40_000)).toBe(copy)
    expect(stale.get('a', 40_001)).toBeUndefined()
    expect(stale.size).toBe(0)
  })
})

describe('VerificationCache stale copies', () => {
  const setup = (staleIfErrorMs: number) => {
    const clock = new ManualClock()
    const cache = new VerificationCache({ maxProofs: 3, maxStates: 3, stateTtlMs: 5_000, clock, staleIfErrorMs })
    return { clock, cache }
  }

  it('is bounded by maxStates like the states', async () => {
    const { cache } = setup(30_000)
    for (let i = 0; i < 10; i++) await cache.state(`k${i}`, async (id) => record(id))
    expect(cache.stats().states).toBe(3)
    expect(cache.staleState('k0')).toBeUndefined()
    expect(cache.staleState('k9')?.id).toBe('k9')
  })

  it('confirms a state read while the feed is down without caching it, and keeps none when staleIfErrorMs is 0', async () => {
    const kept = setup(30_000)
    await kept.cache.state('k', async (id) => record(id), false)
    expect(kept.cache.stats().states).toBe(0)
    expect(kept.cache.staleState('k')?.id).toBe('k')
    const none = setup(0)
    await none.cache.state('k', async (id) => record(id))
    expect(none.cache.staleState('k')).toBeUndefined()
  })

  it('does not confirm a load its key was invalidated during; invalidateAll keeps copies, clear drops them', async () => {
    const { cache } = setup(30_000)
    let finish: (value: KeyRecord) => void = () => {}
    const loading = cache.state('k', () => new Promise<KeyRecord>((resolve) => (finish = resolve)))
    cache.invalidate('k')
    finish(record('k'))
    await loading
    expect(cache.staleState('k')).toBeUndefined()
    await cache.state('j', async (id) => record(id))
    cache.invalidateAll()
    expect(cache.staleState('j')?.id).toBe('j')
    cache.clear()
    expect(cache.staleState('j')).toBeUndefined()
  })
})
