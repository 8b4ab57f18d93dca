import { benchKeyring, createKeys, proveAll } from '../lib/keyrings.js'
import { measure, workerConfig } from '../lib/worker-side.js'

/**
 * Section 5a (run with --expose-gc): heap bytes per entry of the
 * verification cache. N keys are created in a memory store, the heap is
 * measured after a full GC, the N tokens are verified (each leaves a proof,
 * a cached key state and its frozen public view), and the heap is measured
 * again after a full GC.
 */

export interface CacheMemoryConfig {
  entries: number
}

export interface CacheMemoryVariant {
  name: string
  entries: number
  proofs: number
  states: number
  bytesPerEntry: number
}

export interface CacheMemoryResult {
  variants: CacheMemoryVariant[]
}

const config = workerConfig<CacheMemoryConfig>()

function heapAfterGc(): number {
  const gc = (globalThis as { gc?: () => void }).gc
  if (!gc) throw new Error('run with --expose-gc')
  for (let i = 0; i < 4; i++) gc()
  return process.memoryUsage().heapUsed
}

async function variant(name: string, rateLimit: false | undefined): Promise<CacheMemoryVariant> {
  const n = config.entries
  const keyring = await benchKeyring({ store: 'memory', cache: { maxEntries: n, stateTtl: '10m' }, ...(rateLimit === false ? { rateLimit: false } : {}) })
  const { tokens } = await createKeys(keyring, n)
  // One verify first so lazily built structures exist before the baseline.
  await proveAll(keyring, tokens.slice(0, 1))
  const before = heapAfterGc()
  await proveAll(keyring, tokens.slice(1))
  const after = heapAfterGc()
  const stats = keyring.cacheStats()
  await keyring.close()
  return { name, entries: n - 1, proofs: stats.proofs, states: stats.states, bytesPerEntry: Math.round((after - before) / (n - 1)) }
}

measure(async (): Promise<CacheMemoryResult> => ({
  variants: [
    await variant('verification cache (rateLimit: false)', false),
    await variant('verification cache + per-key quota state (default protection)', undefined),
  ],
}))
