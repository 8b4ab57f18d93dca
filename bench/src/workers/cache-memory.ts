import { benchKeyring, createKeys, proveAll } from '../lib/keyrings.js'
import { measure, workerConfig } from '../lib/worker-side.js'

/**
 * Section 5a (run with --expose-gc): bytes per entry of the verification
 * cache. N keys are created in a memory store, the heap (with ArrayBuffer
 * memory) is measured after a full GC, the N tokens are verified, and the
 * heap is measured again after a full GC.
 *
 * Verifying also grows what is not the cache: the memory store's usage
 * counters and the keyring's list of keys it has seen (the store-reset
 * guard). So the same is measured once with the cache off and without rate
 * limits (the baseline), and an entry is the growth of a variant minus the
 * baseline's: with the cache, the proof, the key's frozen view and its
 * times; with default protection, also the key's quota time.
 */

export interface CacheMemoryConfig {
  entries: number
}

export interface CacheMemoryVariant {
  name: string
  entries: number
  proofs: number
  states: number
  /** Heap growth per verified key, everything included. */
  growthPerKey: number
  /** `growthPerKey` minus the baseline's (0 for the baseline itself). */
  bytesPerEntry: number
}

export interface CacheMemoryResult {
  variants: CacheMemoryVariant[]
}

const config = workerConfig<CacheMemoryConfig>()

/** JS heap plus ArrayBuffer memory (typed arrays keep their numbers outside the heap), after a full GC. */
function heapAfterGc(): number {
  const gc = (globalThis as { gc?: () => void }).gc
  if (!gc) throw new Error('run with --expose-gc')
  for (let i = 0; i < 4; i++) gc()
  const { heapUsed, arrayBuffers } = process.memoryUsage()
  return heapUsed + arrayBuffers
}

async function growth(rateLimit: false | undefined, cacheEntries: number): Promise<{ entries: number; proofs: number; states: number; growthPerKey: number }> {
  const n = config.entries
  const keyring = await benchKeyring({ store: 'memory', cache: { maxEntries: cacheEntries, stateTtl: '10m' }, ...(rateLimit === false ? { rateLimit: false } : {}) })
  const { tokens } = await createKeys(keyring, n)
  // One verify first so lazily built structures exist before the baseline.
  await proveAll(keyring, tokens.slice(0, 1))
  const before = heapAfterGc()
  await proveAll(keyring, tokens.slice(1))
  const after = heapAfterGc()
  const stats = keyring.cacheStats()
  await keyring.close()
  return { entries: n - 1, proofs: stats.proofs, states: stats.states, growthPerKey: Math.round((after - before) / (n - 1)) }
}

measure(async (): Promise<CacheMemoryResult> => {
  const baseline = await growth(false, 0)
  const variant = async (name: string, rateLimit: false | undefined): Promise<CacheMemoryVariant> => {
    const grew = await growth(rateLimit, config.entries)
    return { name, ...grew, bytesPerEntry: grew.growthPerKey - baseline.growthPerKey }
  }
  return {
    variants: [
      { name: 'baseline: no cache, rateLimit: false (store usage counters, keys seen)', ...baseline, bytesPerEntry: 0 },
      await variant('verification cache (rateLimit: false)', false),
      await variant('verification cache + per-key quota state (default protection)', undefined),
    ],
  }
})
