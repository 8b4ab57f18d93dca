import { duration, percent, rate } from '../lib/format.js'
import { runWorker } from '../lib/processes.js'
import type { RunContext, SectionReport } from '../lib/report.js'
import type { CreditsConfig, CreditsResult, CreditsSeries } from '../workers/credits.js'

/**
 * Credits: what a cache-hit verify costs for a key with credits (one spend
 * at the store, on every verify: a Lua script on Redis) beside a key
 * without (no store call). `npm run bench -- --only credits`.
 */
export async function creditsSection(context: RunContext): Promise<SectionReport> {
  const { profile, redis } = context
  const { keys, warmupOps, latencySamples, throughputOps, throughputMaxMs } = profile.verify
  const config: CreditsConfig = { redisUrl: redis.url, keys: Math.min(keys, 200), warmupOps, latencySamples: Math.min(latencySamples, 20_000), throughputOps: Math.min(throughputOps, 200_000), throughputMaxMs }
  context.log(`credits: ${config.keys} keys, ${config.latencySamples} timed verifies per series`)
  const result = await runWorker<CreditsResult>('credits', { config, timeoutMs: 300_000 })
  const find = (store: string, credits: boolean): CreditsSeries => {
    const found = result.series.find((s) => s.store === store && s.credits === credits)
    if (!found) throw new Error(`credits: no series for ${store} ${credits}`)
    return found
  }
  const added = (store: string) => find(store, true).latencyMs.p50 - find(store, false).latencyMs.p50
  return {
    id: 'credits',
    title: 'Credits on a cache-hit verify',
    tables: [
      {
        title: `Cache-hit verify with and without credits (${result.keys} keys, round robin; one verify at a time; rateLimit: false)`,
        columns: ['series', 'median', 'p99', 'verifies/s', 'cached', 'EVALSHA / verify', 'Redis commands / verify'],
        rows: result.series.map((s) => [
          s.name,
          duration(s.latencyMs.p50),
          duration(s.latencyMs.p99),
          rate(s.perSecond),
          percent(s.cachedShare),
          s.evalshaPerVerify === undefined ? '' : s.evalshaPerVerify.toFixed(3),
          s.redisCommandsPerVerify === undefined ? '' : s.redisCommandsPerVerify.toFixed(3),
        ]),
        notes: [
          'Counted by redis-server over 20,000 verifies, usage flushes included: EVALSHA calls (INFO commandstats; one round trip each) and all commands run (INFO stats; the spend script\'s HMGET and HSET count too).',
          'A key with credits spends at the store on every successful verify (exact across replicas); a key without credits never calls the store on a cache hit.',
        ],
      },
    ],
    checks: [],
    notes: [
      `credits add ${addedText(added('memory'))} to the median cache-hit verify on the memory store and ${addedText(added('redis'))} on the Redis store (one EVALSHA round trip on loopback).`,
    ],
    data: result,
  }
}

/** A difference of medians; one below zero is the machine's noise, not a saving. */
function addedText(ms: number): string {
  return ms > 0 ? duration(ms) : `nothing measurable (${duration(ms)}, within the noise)`
}
