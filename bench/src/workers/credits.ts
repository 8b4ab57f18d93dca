import type { Keyring } from '@keyrot/core'
import { Redis } from 'ioredis'
import { benchKeyring, proveAll, type StoreKind } from '../lib/keyrings.js'
import { roundSummary, summarize, type Summary } from '../lib/stats.js'
import { throughput, timeEach } from '../lib/timing.js'
import { measure, workerConfig } from '../lib/worker-side.js'

/**
 * The credits section, in one process: a cache-hit verify of keys without
 * credits beside keys with credits, on the memory and the Redis store, and
 * what each verify costs Redis (counted by the server: EVALSHA calls from
 * `INFO commandstats`, and every command run, Lua's own included, from
 * `INFO stats`, before and after).
 */

export interface CreditsConfig {
  redisUrl: string
  keys: number
  warmupOps: number
  latencySamples: number
  throughputOps: number
  throughputMaxMs: number
}

export interface CreditsSeries {
  name: string
  store: StoreKind
  credits: boolean
  latencyMs: Summary
  perSecond: number
  /** Share of the timed verifies answered from the cache (the key state's TTL lapses now and then). */
  cachedShare: number
  /** Redis commands per verify, measured by the server over `commandSamples` verifies (Redis store only). */
  redisCommandsPerVerify?: number
  /** EVALSHA calls per verify (each is one round trip; usage flushes included). */
  evalshaPerVerify?: number
}

export interface CreditsResult {
  keys: number
  series: CreditsSeries[]
}

const config = workerConfig<CreditsConfig>()

/** Commands the server ran (Lua's own redis.call()s included) and EVALSHA calls (one per round trip of a script). */
async function commandsProcessed(redis: Redis): Promise<{ total: number; evalsha: number }> {
  const stats = await redis.info('stats')
  const commands = await redis.info('commandstats')
  const total = /total_commands_processed:(\d+)/.exec(stats)
  if (!total) throw new Error('INFO stats has no total_commands_processed')
  const evalsha = /cmdstat_evalsha:calls=(\d+)/.exec(commands)
  return { total: Number(total[1]), evalsha: evalsha ? Number(evalsha[1]) : 0 }
}

async function createMetered(keyring: Keyring, count: number, credits: boolean): Promise<string[]> {
  const tokens: string[] = []
  for (let i = 0; i < count; i++) {
    // Enough credits never to run out during the run: the measured path is always a successful spend.
    const issued = await keyring.create({ tenantId: `tenant-${i % 10}`, name: `bench ${i}`, ...(credits ? { credits: { remaining: 1e12 } } : {}) })
    tokens.push(issued.token)
  }
  return tokens
}

async function run(): Promise<CreditsResult> {
  const out: CreditsSeries[] = []
  const probe = new Redis(config.redisUrl)
  try {
    for (const store of ['memory', 'redis'] as const) {
      for (const credits of [false, true]) {
        const keyring = await benchKeyring({ store, redisUrl: config.redisUrl, keyPrefix: 'bench-credits', rateLimit: false })
        const tokens = await createMetered(keyring, config.keys, credits)
        await proveAll(keyring, tokens)
        const k = tokens.length
        let refused = 0
        let uncached = 0
        const verify = async (i: number) => {
          const result = await keyring.verify(tokens[i % k] as string)
          if (!result.ok) refused++
          else if (!result.cached) uncached++
        }
        await throughput(config.warmupOps, 2_000, verify)
        let perVerify: number | undefined
        let scriptsPerVerify: number | undefined
        if (store === 'redis') {
          // Commands the server processed per verify, over a quiet stretch (the usage flush adds a few per second).
          const samples = Math.min(20_000, config.latencySamples)
          const before = await commandsProcessed(probe)
          for (let i = 0; i < samples; i++) await verify(i)
          const after = await commandsProcessed(probe)
          // The second INFO of `before` counts itself once.
          perVerify = Math.round(((after.total - before.total - 2) / samples) * 1000) / 1000
          scriptsPerVerify = Math.round(((after.evalsha - before.evalsha) / samples) * 1000) / 1000
        }
        uncached = 0
        const latencies = await timeEach(config.latencySamples, verify, 20_000)
        const perSecond = await throughput(config.throughputOps, config.throughputMaxMs, verify)
        if (refused > 0) throw new Error(`credits bench: ${refused} verifies were refused`)
        out.push({
          name: `hit, ${store === 'memory' ? 'memory' : 'Redis'} store, ${credits ? 'key with credits (spends at the store)' : 'key without credits'}`,
          store,
          credits,
          latencyMs: roundSummary(summarize(latencies), 6),
          perSecond: Math.round(perSecond),
          // Below 1 only where a key's cached state outlived cache.stateTtl (one store read per key then).
          cachedShare: Math.round((1 - uncached / latencies.length) * 10_000) / 10_000,
          ...(perVerify === undefined ? {} : { redisCommandsPerVerify: perVerify }),
          ...(scriptsPerVerify === undefined ? {} : { evalshaPerVerify: scriptsPerVerify }),
        })
        await keyring.close()
      }
    }
  } finally {
    probe.disconnect()
  }
  return { keys: config.keys, series: out }
}

measure(run)
