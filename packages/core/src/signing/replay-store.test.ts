import { describe, expect, it } from 'vitest'
import { ManualClock } from '../clock.js'
import { MemoryReplayStore } from './replay-store.js'

describe('MemoryReplayStore', () => {
  it('says true the first time and false while the nonce is remembered', async () => {
    const clock = new ManualClock()
    const store = new MemoryReplayStore({ clock })
    expect(await store.remember('k:n1', 1_000)).toBe(true)
    expect(await store.remember('k:n1', 1_000)).toBe(false)
    expect(await store.remember('k:n2', 1_000)).toBe(true)
  })

  it('forgets a nonce after its TTL', async () => {
    const clock = new ManualClock()
    const store = new MemoryReplayStore({ clock })
    await store.remember('n', 1_000)
    clock.advance(999)
    expect(await store.remember('n', 1_000)).toBe(false)
    clock.advance(2)
    expect(await store.remember('n', 1_000)).toBe(true)
  })

  it('gives exactly one true to concurrent callers', async () => {
    const store = new MemoryReplayStore()
    const results = await Promise.all(Array.from({ length: 20 }, () => store.remember('same', 60_000)))
    expect(results.filter(Boolean)).toHaveLength(1)
  })

  it('is bounded, and warns once when it forgets a nonce still inside its window', async () => {
    const clock = new ManualClock()
    const warnings: object[] = []
    const store = new MemoryReplayStore({ clock, maxEntries: 3, logger: { info() {}, error() {}, warn: (fields) => warnings.push(fields) } })
    for (let i = 0; i < 10; i++) await store.remember(`n${i}`, 60_000)
    expect(store.size).toBe(3)
    expect(warnings).toEqual([{ event: 'replay_store.evicted_live_nonce', maxEntries: 3 }])
  })

  it('does not warn when what it drops had already expired', async () => {
    const clock = new ManualClock()
    const warnings: object[] = []
    const store = new MemoryReplayStore({ clock, maxEntries: 2, logger: { info() {}, error() {}, warn: (fields) => warnings.push(fields) } })
    await store.remember('a', 10)
    await store.remember('b', 10)
    clock.advance(20)
    await store.remember('c', 10)
    expect(warnings).toEqual([])
  })

  it('refuses a bad size at construction', () => {
    expect(() => new MemoryReplayStore({ maxEntries: 0 })).toThrow(/maxEntries must be a positive integer/)
  })
})
