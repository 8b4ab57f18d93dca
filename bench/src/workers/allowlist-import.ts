import { randomBytes } from 'node:crypto'
import { compileAllowedIps, createKeyring, FastTestHasher, matchesClient, parseClientIp, type Keyring, type KeyStore } from '@keyrot/core'
import { RedisStore } from '@keyrot/redis'
import { BENCH_RATE_LIMIT, openStore, type StoreKind } from '../lib/keyrings.js'
import { roundSummary, summarize, type Summary } from '../lib/stats.js'
import { throughput, timeEach, timeEachSync, throughputSync } from '../lib/timing.js'
import { measure, workerConfig } from '../lib/worker-side.js'

/**
 * The cost of a key's `allowedIps` and of an imported key on a cache-hit
 * verify, beside the same verify of a plain keyrot key. The keyrings compared
 * run in one process and are timed in alternating rounds, so drift of the
 * machine (other work, CPU frequency) hits every series alike.
 */

export interface AllowlistImportConfig {
  redisUrl: string
  keys: number
  warmupOps: number
  latencySamples: number
}

export interface AllowlistImportSeries {
  name: string
  store: StoreKind | null
  latencyMs: Summary
}

export interface AllowlistImportResult {
  keys: number
  rounds: number
  series: AllowlistImportSeries[]
}

const config = workerConfig<AllowlistImportConfig>()
const ROUNDS = 5

/** 100 IPv4 /24s (198.18.0.0/24 upward) and 100 IPv6 /48s (2001:db8:0::/48 upward): the client matches only the last, so every range is scanned. */
function ranges(count: number): { v4: string[]; v6: string[] } {
  const v4 = Array.from({ length: count }, (_, i) => `198.18.${i}.0/24`)
  const v6 = Array.from({ length: count }, (_, i) => `2001:db8:${i.toString(16)}::/48`)
  return { v4, v6 }
}

interface Case {
  name: string
  store: StoreKind
  keyring: Keyring
  tokens: string[]
  clientIp: string
}

async function makeCase(name: string, store: StoreKind, create: (keyring: Keyring, i: number) => Promise<string>, clientIp: string, prefix: string): Promise<Case> {
  const opened: KeyStore = await openStore(store, config.redisUrl, prefix)
  const keyring = createKeyring({
    store: opened,
    hasher: new FastTestHasher(),
    rateLimit: BENCH_RATE_LIMIT,
    proofKey: null,
    // Every timed verify is a cache hit: no state read when a state's TTL ends mid-series.
    cache: { stateTtl: '1h' },
    importKey: randomBytes(32),
    importedPrefixes: ['old_'],
  })
  if (opened instanceof RedisStore) await opened.invalidationReady()
  const tokens: string[] = []
  for (let i = 0; i < config.keys; i++) tokens.push(await create(keyring, i))
  // Proven once from the client, so every timed verify is a cache hit.
  for (const token of tokens) {
    const result = await keyring.verify(token, { clientIp })
    if (!result.ok) throw new Error(`${name}: a benchmark key was refused: ${result.error.code}`)
  }
  return { name, store, keyring, tokens, clientIp }
}

async function run(): Promise<AllowlistImportResult> {
  const out: AllowlistImportSeries[] = []
  const { v4, v6 } = ranges(100)

  // The check alone: one client IP parsed and scanned against 100 compiled ranges (worst case: the last matches).
  {
    const v4Matcher = compileAllowedIps(v4)
    const v6Matcher = compileAllowedIps(v6)
    const parts: Array<[string, () => unknown]> = [
      ['part: parse IPv4 client + scan 100 IPv4 ranges', () => matchesClient(v4Matcher, parseClientIp('198.18.99.7') as number)],
      ['part: parse IPv4-mapped IPv6 client + scan 100 IPv4 ranges', () => matchesClient(v4Matcher, parseClientIp('::ffff:198.18.99.7') as number)],
      ['part: parse IPv6 client + scan 100 IPv6 ranges', () => matchesClient(v6Matcher, parseClientIp('2001:db8:63::7') as Uint32Array)],
    ]
    for (const [name, op] of parts) {
      if (op() !== true) throw new Error(`${name}: the client must match`)
      throughputSync(config.warmupOps, 2_000, op)
      out.push({ name, store: null, latencyMs: roundSummary(summarize(timeEachSync(config.latencySamples, op)), 6) })
    }
  }

  for (const store of ['memory', 'redis'] as const) {
    const label = store === 'memory' ? 'memory store' : 'Redis store'
    const p = `bench-allow-${store}`
    const keyrot = (options: object) => async (keyring: Keyring, i: number) => (await keyring.create({ tenantId: 't', name: `k${i}`, ...options })).token
    const imported = async (keyring: Keyring, i: number) => {
      const token = `old_${randomBytes(24).toString('base64url')}`
      await keyring.import({ tenantId: 't', name: `i${i}`, token })
      return token
    }
    const cases = [
      await makeCase(`hit, ${label}, no allowedIps, IPv4 client`, store, keyrot({}), '198.18.99.7', `${p}-a`),
      await makeCase(`hit, ${label}, no allowedIps, IPv4-mapped IPv6 client`, store, keyrot({}), '::ffff:198.18.99.7', `${p}-g`),
      await makeCase(`hit, ${label}, no allowedIps, IPv6 client`, store, keyrot({}), '2001:db8:63::7', `${p}-h`),
      await makeCase(`hit, ${label}, allowedIps: 1 IPv4 range, IPv4 client`, store, keyrot({ allowedIps: ['198.18.99.0/24'] }), '198.18.99.7', `${p}-b`),
      await makeCase(`hit, ${label}, allowedIps: 100 IPv4 ranges, IPv4 client`, store, keyrot({ allowedIps: v4 }), '198.18.99.7', `${p}-c`),
      await makeCase(`hit, ${label}, allowedIps: 100 IPv4 ranges, IPv4-mapped IPv6 client`, store, keyrot({ allowedIps: v4 }), '::ffff:198.18.99.7', `${p}-d`),
      await makeCase(`hit, ${label}, allowedIps: 100 IPv6 ranges, IPv6 client`, store, keyrot({ allowedIps: v6 }), '2001:db8:63::7', `${p}-e`),
      await makeCase(`hit, ${label}, imported key (own token format), IPv4 client`, store, imported, '198.18.99.7', `${p}-f`),
    ]
    const samples = new Map<string, number[]>(cases.map((c) => [c.name, []]))
    for (const c of cases) await throughput(config.warmupOps, 2_000, (i) => c.keyring.verify(c.tokens[i % c.tokens.length] as string, { clientIp: c.clientIp }))
    for (let round = 0; round < ROUNDS; round++) {
      for (const c of cases) {
        let refused = 0
        const op = async (i: number) => {
          const result = await c.keyring.verify(c.tokens[i % c.tokens.length] as string, { clientIp: c.clientIp })
          if (!result.ok || !result.cached) refused++
        }
        ;(samples.get(c.name) as number[]).push(...(await timeEach(Math.ceil(config.latencySamples / ROUNDS), op, 20_000)))
        if (refused > 0) throw new Error(`${c.name}: ${refused} verifies were refused or not cached`)
      }
    }
    for (const c of cases) {
      out.push({ name: c.name, store, latencyMs: roundSummary(summarize(samples.get(c.name) as number[]), 6) })
      await c.keyring.close()
    }
  }
  return { keys: config.keys, rounds: ROUNDS, series: out }
}

measure(run)
