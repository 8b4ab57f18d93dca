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

  it('drops a batch that cannot be written and says how many uses were lost', async () => {
    const usage = batcher()
    fail = true
    usage.record('a', 1, false)
    usage.record('a', 2, false)
    await usage.flush()
    expect(warnings).toEqual([expect.objectContaining({ event: 'usage.flush_failed', keys: 1, uses: 2 })])
    fail = false
    await usage.flush()
    expect(batches).toEqual([])
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
