import { silentLogger } from '@keyrot/core'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { UsageBatcher, type UsageDelta } from './usage-batcher.js'

describe('UsageBatcher', () => {
  let batches: UsageDelta[][]
  let fail: boolean
  const warnings: object[] = []

  beforeEach(() => {
    vi.useFakeTimers()
    batches = []
    fail = false
    warnings.length = 0
  })

  afterEach(() => {
    vi.useRealTimers()
  })

  function batcher(maxPendingKeys = 100): UsageBatcher {
    return new UsageBatcher({
      flushIntervalMs: 1_000,
      maxPendingKeys,
      logger: { ...silentLogger, warn: (fields) => warnings.push(fields) },
      write: async (batch) => {
        if (fail) throw new Error('redis down')
        batches.push(batch)
      },
    })
  }

  it('sums uses per key and writes them once per interval', async () => {
    const usage = batcher()
    usage.record('a', 10, false)
    usage.record('a', 30, true)
    usage.record('a', 20, false)
    usage.record('b', 5, false)
    await vi.advanceTimersByTimeAsync(999)
    expect(batches).toEqual([])
    await vi.advanceTimersByTimeAsync(1)
    expect(batches).toEqual([
      [
        { keyId: 'a', count: 3, lastUsedAt: 30, lastUsedInGraceAt: 30 },
        { keyId: 'b', count: 1, lastUsedAt: 5, lastUsedInGraceAt: null },
      ],
    ])
    await vi.advanceTimersByTimeAsync(5_000)
    expect(batches).toHaveLength(1)
  })

  it('flushes at once when the number of pending keys reaches the bound', async () => {
    const usage = batcher(3)
    usage.record('a', 1, false)
    usage.record('b', 1, false)
    expect(usage.pendingKeys).toBe(2)
    usage.record('c', 1, false)
    await vi.advanceTimersByTimeAsync(0)
    expect(batches).toHaveLength(1)
    expect(usage.pendingKeys).toBe(0)
  })

  it('keeps a batch that cannot be written, merges it with new uses and writes it once Redis answers', async () => {
    const usage = batcher()
    fail = true
    usage.record('a', 1, false)
    usage.record('a', 2, false)
    await usage.flush()
    expect(warnings).toEqual([expect.objectContaining({ event: 'usage.flush_failed', keys: 1, uses: 2, dropped: 0 })])
    usage.record('a', 5, true)
    usage.record('b', 4, false)
    await vi.advanceTimersByTimeAsync(1_000) // still down: kept again, warned once per outage
    expect(warnings).toHaveLength(1)
    fail = false
    await vi.advanceTimersByTimeAsync(1_000)
    expect(batches).toEqual([
      [
        { keyId: 'a', count: 3, lastUsedAt: 5, lastUsedInGraceAt: 5 },
        { keyId: 'b', count: 1, lastUsedAt: 4, lastUsedInGraceAt: null },
      ],
    ])
    expect(usage.pendingKeys).toBe(0)
  })

  it('keeps at most maxPendingKeys keys while writes fail, without a flush per use, and says how many uses it dropped', async () => {
    const usage = batcher(2)
    fail = true
    let writes = 0
    usage.record('a', 1, false)
    usage.record('b', 1, false) // the bound: an immediate flush, which fails
    await vi.advanceTimersByTimeAsync(0)
    const before = warnings.length
    for (let i = 0; i < 100; i++) usage.record(`new${i}`, 2, false)
    usage.record('a', 3, false)
    expect(usage.pendingKeys).toBe(2)
    await vi.advanceTimersByTimeAsync(1_000)
    expect(warnings.length).toBe(before + 1)
    expect(warnings.at(-1)).toEqual(expect.objectContaining({ event: 'usage.flush_failed', dropped: 100 }))
    fail = false
    await vi.advanceTimersByTimeAsync(1_000)
    writes = batches.length
    expect(writes).toBe(1)
    expect(batches[0]).toEqual([
      { keyId: 'a', count: 2, lastUsedAt: 3, lastUsedInGraceAt: null },
      { keyId: 'b', count: 1, lastUsedAt: 1, lastUsedInGraceAt: null },
    ])
  })

  it('writes what is pending on close and counts nothing after', async () => {
    const usage = batcher()
    usage.record('a', 1, false)
    await usage.close()
    usage.record('a', 2, false)
    await usage.flush()
    expect(batches).toEqual([[{ keyId: 'a', count: 1, lastUsedAt: 1, lastUsedInGraceAt: null }]])
  })
})
