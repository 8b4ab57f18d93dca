import { duration, percent, rate, times } from '../lib/format.js'
import { runWorker } from '../lib/processes.js'
import type { RunContext, SectionReport } from '../lib/report.js'
import { ratio } from '../lib/stats.js'
import type { Check } from '../lib/table.js'
import type { VerifyConfig, VerifyResult, VerifySeries } from '../workers/verify.js'

/** Section 1: verify in process, cache hit and miss, memory and Redis store, beside the floor. */
export async function verifySection(context: RunContext): Promise<SectionReport> {
  const { profile, redis } = context
  const config: VerifyConfig = { redisUrl: redis.url, ...profile.verify }
  context.log(`verify: ${config.keys} keys, ${config.latencySamples} timed verifies per series`)
  const result = await runWorker<VerifyResult>('verify', { config, timeoutMs: 300_000 })
  const find = (name: string) => {
    const found = result.series.find((s) => s.name === name)
    if (!found) throw new Error(`verify: no series ${name}`)
    return found
  }
  const floor = find('floor: SHA-256 + Map.get')
  const row = (s: VerifySeries) => [
    s.name,
    duration(s.latencyMs.p50),
    duration(s.latencyMs.p99),
    rate(s.perSecond),
    times(s.latencyMs.p50 / floor.latencyMs.p50),
    s.cachedShare === undefined ? '' : percent(s.cachedShare),
  ]

  const hitMemory = find('hit, memory store')
  const hitRedis = find('hit, Redis store')
  const hitBare = find('hit, memory store, rateLimit: false')
  const parse = find('part: parseToken (format + CRC32)')
  const digest = find('part: peppered SHA-256 digest')
  const floorAwait = find('floor + await')
  const limit = 3 * floor.latencyMs.p50
  const explain = (s: VerifySeries): string => {
    const protection = s.latencyMs.p50 - hitBare.latencyMs.p50
    const rest = hitBare.latencyMs.p50 - parse.latencyMs.p50 - digest.latencyMs.p50
    return (
      `median ${duration(s.latencyMs.p50)}; parts alone: parseToken (layout and CRC32, which a hit skips: a proven token's checksum was checked when it was proven) ${duration(parse.latencyMs.p50)}, peppered SHA-256 ${duration(digest.latencyMs.p50)}` +
      `, abuse protection and per-key quota ${duration(Math.max(0, protection))}` +
      `, the rest of the keyring (await, the cache slot lookups, usage count, result object) ${duration(Math.max(0, rest))};` +
      ` the floor is ${duration(floor.latencyMs.p50)}, ${duration(floorAwait.latencyMs.p50)} behind an await`
    )
  }
  const checks: Check[] = [hitMemory, hitRedis].map((s) => ({
    name: `cache-hit verify, ${s.store === 'redis' ? 'Redis' : 'memory'} store, within 3x of the floor`,
    target: `median <= 3x floor = ${duration(limit)}`,
    measured: `${duration(s.latencyMs.p50)} = ${times(s.latencyMs.p50 / floor.latencyMs.p50)} floor`,
    met: s.latencyMs.p50 <= limit,
    explanation: explain(s),
  }))

  return {
    id: 'verify',
    title: 'Verify in process',
    tables: [
      {
        title: `Verify in process (${result.keys} keys, round robin; one verify at a time)`,
        columns: ['series', 'median', 'p99', 'verifies/s', 'x floor', 'cached'],
        rows: result.series.map(row),
        notes: [
          'hit: proof and key state cached. state miss: proof cached, state read from the store (cache.stateTtl 0).',
          'full miss: no cache, store read + Argon2id with OWASP parameters on every verify (the `argon2` package).',
          'Keyring series use keyrot\'s default abuse protection with a per-key quota high enough never to refuse, unless marked rateLimit: false.',
        ],
      },
    ],
    checks,
    notes: [],
    data: { ...result, floorMedianMs: floor.latencyMs.p50, ratios: { hitMemory: ratio(hitMemory.latencyMs.p50, floor.latencyMs.p50), hitRedis: ratio(hitRedis.latencyMs.p50, floor.latencyMs.p50) } },
  }
}
