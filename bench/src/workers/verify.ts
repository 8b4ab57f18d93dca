import { createHash } from 'node:crypto'
import { Argon2Hasher, authenticate, parseToken, systemClock, VerificationCache, type Keyring } from '@keyrot/core'
import { benchKeyring, createKeys, proveAll, type StoreKind } from '../lib/keyrings.js'
import { roundSummary, summarize, type Summary } from '../lib/stats.js'
import { throughput, throughputSync, timeEach, timeEachSync } from '../lib/timing.js'
import { measure, workerConfig } from '../lib/worker-side.js'

/**
 * Section 1, in one process: the cost of one `keyring.verify()` at a cache
 * hit, at a state miss (proof cached, key state read from the store) and at a
 * full miss (store read and Argon2), with the memory and the Redis store,
 * beside the floor: one SHA-256 of the token and one Map lookup.
 */

export interface VerifyConfig {
  redisUrl: string
  keys: number
  warmupOps: number
  latencySamples: number
  throughputOps: number
  throughputMaxMs: number
  stateMissSamples: number
  argonMissSamples: number
}

export interface VerifySeries {
  name: string
  store: StoreKind | null
  path: 'floor' | 'part' | 'hit' | 'state-miss' | 'full-miss'
  latencyMs: Summary
  perSecond: number
  /** Share of verifies answered from the cache (keyring series). */
  cachedShare?: number
}

export interface VerifyResult {
  keys: number
  series: VerifySeries[]
}

const config = workerConfig<VerifyConfig>()

function series(name: string, store: StoreKind | null, path: VerifySeries['path'], samples: number[], perSecond: number, cachedShare?: number): VerifySeries {
  return { name, store, path, latencyMs: roundSummary(summarize(samples), 6), perSecond: Math.round(perSecond), ...(cachedShare === undefined ? {} : { cachedShare }) }
}

async function keyringSeries(
  name: string,
  path: 'hit' | 'state-miss',
  store: StoreKind,
  keyring: Keyring,
  tokens: string[],
  samples: number,
): Promise<VerifySeries> {
  const k = tokens.length
  let cached = 0
  let refused = 0
  const verify = async (i: number) => {
    const result = await keyring.verify(tokens[i % k] as string)
    if (!result.ok) refused++
    else if (result.cached) cached++
  }
  await throughput(config.warmupOps, 2_000, verify)
  cached = 0
  const latencies = await timeEach(samples, verify, 20_000)
  const share = cached / latencies.length
  const perSecond = await throughput(path === 'hit' ? config.throughputOps : samples, config.throughputMaxMs, verify)
  if (refused > 0) throw new Error(`${name}: ${refused} verifies were refused`)
  return series(name, store, path, latencies, perSecond, Math.round(share * 10_000) / 10_000)
}

/** What the HTTP adapters run per request: credential header parse, verify, outcome (status, headers, body). */
async function authenticateSeries(keyring: Keyring, tokens: string[]): Promise<VerifySeries> {
  const requests = tokens.map((token) => ({ authorization: `Bearer ${token}`, clientIp: '127.0.0.1', userAgent: 'bench' }))
  let refused = 0
  const op = async (i: number) => {
    if (!(await authenticate(keyring, requests[i % requests.length]!)).ok) refused++
  }
  await throughput(config.warmupOps, 2_000, op)
  const latencies = await timeEach(config.latencySamples, op, 20_000)
  const perSecond = await throughput(config.throughputOps, config.throughputMaxMs, op)
  if (refused > 0) throw new Error(`authenticate: ${refused} requests refused`)
  return series('hit via authenticate() (the adapters\' path), memory store', 'memory', 'hit', latencies, perSecond)
}

async function run(): Promise<VerifyResult> {
  const out: VerifySeries[] = []
  const k = config.keys

  // The floor: what any verify must at least do.
  {
    const source = await benchKeyring({ store: 'memory', rateLimit: false })
    const { tokens } = await createKeys(source, k)
    await source.close()
    const table = new Map<string, { id: string }>()
    const sha = (token: string) => createHash('sha256').update(token).digest('base64')
    tokens.forEach((token, i) => table.set(sha(token), { id: String(i) }))
    const floor = (i: number) => table.get(sha(tokens[i % k] as string))
    throughputSync(config.warmupOps, 2_000, floor)
    out.push(series('floor: SHA-256 + Map.get', null, 'floor', timeEachSync(config.latencySamples, floor), throughputSync(config.throughputOps, config.throughputMaxMs, floor)))
    const floorAsync = async (i: number) => floor(i)
    await throughput(config.warmupOps, 2_000, floorAsync)
    out.push(series('floor + await', null, 'floor', await timeEach(config.latencySamples, floorAsync), await throughput(config.throughputOps, config.throughputMaxMs, floorAsync)))

    // Parts of keyrot's hit path, alone.
    const parse = (i: number) => parseToken(tokens[i % k])
    throughputSync(config.warmupOps, 2_000, parse)
    out.push(series('part: parseToken (format + CRC32)', null, 'part', timeEachSync(config.latencySamples, parse), throughputSync(config.throughputOps, config.throughputMaxMs, parse)))
    const cache = new VerificationCache({ maxEntries: k, stateTtlMs: 5_000, clock: systemClock })
    const digest = (i: number) => cache.digest(tokens[i % k] as string)
    throughputSync(config.warmupOps, 2_000, digest)
    out.push(series('part: peppered SHA-256 digest', null, 'part', timeEachSync(config.latencySamples, digest), throughputSync(config.throughputOps, config.throughputMaxMs, digest)))
  }

  // Cache hits.
  const hitSetups: Array<{ name: string; store: StoreKind; rateLimit?: false }> = [
    { name: 'hit, memory store', store: 'memory' },
    { name: 'hit, memory store, rateLimit: false', store: 'memory', rateLimit: false },
    { name: 'hit, Redis store', store: 'redis' },
    { name: 'hit, Redis store, rateLimit: false', store: 'redis', rateLimit: false },
  ]
  for (const setup of hitSetups) {
    const keyring = await benchKeyring({ store: setup.store, redisUrl: config.redisUrl, keyPrefix: 'bench-verify', ...(setup.rateLimit === false ? { rateLimit: false } : {}) })
    const { tokens } = await createKeys(keyring, k)
    await proveAll(keyring, tokens)
    out.push(await keyringSeries(setup.name, 'hit', setup.store, keyring, tokens, config.latencySamples))
    if (setup.name === 'hit, memory store') out.push(await authenticateSeries(keyring, tokens))
    await keyring.close()
  }

  // State misses: the proof is cached, the key's state is read from the store on every verify.
  for (const store of ['memory', 'redis'] as const) {
    const keyring = await benchKeyring({ store, redisUrl: config.redisUrl, keyPrefix: 'bench-verify', cache: { stateTtl: 0 } })
    const { tokens } = await createKeys(keyring, k)
    await proveAll(keyring, tokens)
    out.push(await keyringSeries(`state miss (store read), ${store === 'memory' ? 'memory' : 'Redis'} store`, 'state-miss', store, keyring, tokens, config.stateMissSamples))
    await keyring.close()
  }

  // Full misses: no cache at all, so every verify reads the store and runs Argon2id (OWASP, `argon2` package).
  for (const store of ['memory', 'redis'] as const) {
    const keyring = await benchKeyring({ store, redisUrl: config.redisUrl, keyPrefix: 'bench-verify', hasher: new Argon2Hasher(), cache: { maxEntries: 0 } })
    const { tokens } = await createKeys(keyring, 8)
    let refused = 0
    const verify = async (i: number) => {
      const result = await keyring.verify(tokens[i % tokens.length] as string)
      if (!result.ok) refused++
    }
    await timeEach(3, verify)
    const latencies = await timeEach(config.argonMissSamples, verify, 30_000)
    if (refused > 0) throw new Error(`full miss: ${refused} verifies were refused`)
    const total = latencies.reduce((a, b) => a + b, 0)
    out.push(series(`full miss (store read + Argon2id OWASP), ${store === 'memory' ? 'memory' : 'Redis'} store`, store, 'full-miss', latencies, (latencies.length * 1000) / total))
    await keyring.close()
  }
  return { keys: k, series: out }
}

measure(run)
