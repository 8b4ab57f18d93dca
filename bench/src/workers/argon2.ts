import { Argon2Hasher, MemoryStore, type Argon2Options, type Hasher } from '@keyrot/core'
import { benchKeyring, createKeys, proveAll } from '../lib/keyrings.js'
import { NodeRsArgon2Hasher } from '../lib/node-rs-hasher.js'
import { roundSummary, summarize, type Summary } from '../lib/stats.js'
import { timeEach, underLoad } from '../lib/timing.js'
import { measure, workerConfig } from '../lib/worker-side.js'

/**
 * Section 6, one process per setting (UV_THREADPOOL_SIZE is read once at
 * start-up): cache-miss verifies per second with an Argon2 implementation
 * and parameters, and the warm-up of a restarted replica.
 */

export type Argon2Impl = 'argon2' | '@node-rs/argon2'

export interface Argon2Config {
  mode: 'load' | 'warmup'
  impl: Argon2Impl
  params: Required<Argon2Options>
  concurrency: number
  /** load: how long the loaded run lasts (ms). */
  loadMs: number
  /** load: verifies timed one at a time first. */
  sequential: number
  /** warmup: active keys. */
  keys: number
}

export interface Argon2LoadResult {
  threadPool: number
  singleMs: Summary
  perSecond: number
  loadedMs: Summary
}

export interface Argon2WarmupResult {
  threadPool: number
  keys: number
  warmupMs: number
  perSecond: number
  latencyMs: Summary
  cachedAfter: number
}

const config = workerConfig<Argon2Config>()
const threadPool = Number(process.env.UV_THREADPOOL_SIZE ?? 4)

function hasherFor(impl: Argon2Impl, params: Required<Argon2Options>): Hasher {
  return impl === 'argon2' ? new Argon2Hasher(params) : new NodeRsArgon2Hasher(params)
}

async function load(): Promise<Argon2LoadResult> {
  // No cache and no abuse checks: every verify is a store read and one Argon2 run.
  const keyring = await benchKeyring({ store: 'memory', hasher: hasherFor(config.impl, config.params), cache: { maxEntries: 0 }, rateLimit: false })
  const { tokens } = await createKeys(keyring, 4)
  let refused = 0
  const verify = async (i: number) => {
    if (!(await keyring.verify(tokens[i % tokens.length] as string)).ok) refused++
  }
  await verify(0)
  const single = await timeEach(config.sequential, verify)
  const loaded = await underLoad(config.concurrency, Number.MAX_SAFE_INTEGER, config.loadMs, verify)
  await keyring.close()
  if (refused > 0) throw new Error(`${refused} verifies refused`)
  return { threadPool, singleMs: roundSummary(summarize(single)), perSecond: Math.round(loaded.perSecond * 10) / 10, loadedMs: roundSummary(summarize(loaded.latencies)) }
}

async function warmup(): Promise<Argon2WarmupResult> {
  const store = new MemoryStore()
  const hasher = hasherFor(config.impl, config.params)
  const before = await benchKeyring({ store: 'memory', shared: store, hasher, rateLimit: false })
  const { tokens } = await createKeys(before, config.keys)
  // The restarted replica: same store, empty cache, default protection.
  const keyring = await benchKeyring({ store: 'memory', shared: store, hasher })
  let refused = 0
  const traffic = await underLoad(config.concurrency, tokens.length, 600_000, async (i) => {
    if (!(await keyring.verify(tokens[i] as string)).ok) refused++
  })
  if (refused > 0) throw new Error(`${refused} verifies refused during warm-up`)
  await proveAll(keyring, tokens)
  const cachedAfter = keyring.cacheStats().proofs
  await keyring.close()
  return {
    threadPool,
    keys: config.keys,
    warmupMs: Math.round(traffic.elapsedMs),
    perSecond: Math.round(traffic.perSecond * 10) / 10,
    latencyMs: roundSummary(summarize(traffic.latencies)),
    cachedAfter,
  }
}

measure(() => (config.mode === 'load' ? load() : warmup()))
