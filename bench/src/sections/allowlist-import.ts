import { duration } from '../lib/format.js'
import { runWorker } from '../lib/processes.js'
import type { RunContext, SectionReport } from '../lib/report.js'
import type { Check } from '../lib/table.js'
import type { AllowlistImportConfig, AllowlistImportResult, AllowlistImportSeries } from '../workers/allowlist-import.js'

/** Target: a key's 100-range allowlist adds less than this to a cache-hit verify. */
const ALLOWLIST_BUDGET_MS = 0.001

/** Cache-hit verify of keys with `allowedIps` and of imported keys, beside plain keyrot keys (`npm run bench -- --only allowlist-import`). */
export async function allowlistImportSection(context: RunContext): Promise<SectionReport> {
  const { profile, redis } = context
  const config: AllowlistImportConfig = {
    redisUrl: redis.url,
    keys: Math.min(200, profile.verify.keys),
    warmupOps: profile.verify.warmupOps,
    latencySamples: Math.min(50_000, profile.verify.latencySamples),
  }
  context.log(`allowlist-import: ${config.keys} keys per series, ${config.latencySamples} timed verifies per series`)
  const result = await runWorker<AllowlistImportResult>('allowlist-import', { config, timeoutMs: 300_000 })
  const find = (name: string): AllowlistImportSeries => {
    const found = result.series.find((s) => s.name === name)
    if (!found) throw new Error(`allowlist-import: no series ${name}`)
    return found
  }
  const checks: Check[] = []
  const rows: string[][] = []
  // Each series is compared with the plain key verified from the same kind of client IP (the abuse guard's own cost differs per kind).
  const baseOf = (s: AllowlistImportSeries): AllowlistImportSeries | undefined => {
    if (s.store === null) return undefined
    const client = s.name.slice(s.name.lastIndexOf(', ') + 2)
    return find(`hit, ${s.store === 'memory' ? 'memory' : 'Redis'} store, no allowedIps, ${client}`)
  }
  for (const s of result.series) {
    const base = baseOf(s)
    const added = base === undefined ? s.latencyMs.p50 : s.latencyMs.p50 - base.latencyMs.p50
    rows.push([s.name, duration(s.latencyMs.p50), duration(s.latencyMs.p99), base === undefined || s === base ? '' : `${added >= 0 ? '+' : ''}${duration(added)}`])
  }
  for (const store of ['memory', 'Redis']) {
    for (const client of ['IPv4 ranges, IPv4 client', 'IPv4 ranges, IPv4-mapped IPv6 client', 'IPv6 ranges, IPv6 client']) {
      const s = find(`hit, ${store} store, allowedIps: 100 ${client}`)
      const base = baseOf(s) as AllowlistImportSeries
      const added = s.latencyMs.p50 - base.latencyMs.p50
      checks.push({
        name: `allowedIps with 100 ${client}, cache-hit verify, ${store} store`,
        target: `adds < ${duration(ALLOWLIST_BUDGET_MS)} to the median`,
        measured: `${duration(s.latencyMs.p50)} vs ${duration(base.latencyMs.p50)}: ${added >= 0 ? '+' : ''}${duration(added)}`,
        met: added < ALLOWLIST_BUDGET_MS,
        explanation: 'the list is compiled once per cached key state (uint32 network/mask pairs); a verify parses the client IP once and scans the pairs',
      })
    }
  }
  return {
    id: 'allowlist-import',
    title: 'Allowed IPs and imported keys on a cache-hit verify',
    tables: [
      {
        title: `Cache-hit verify with allowedIps and of imported keys (${result.keys} keys per series; ${result.rounds} alternating rounds)`,
        columns: ['series', 'median', 'p99', 'added vs no allowedIps, same client kind'],
        rows,
        notes: [
          'Ranges: 100 IPv4 /24s or 100 IPv6 /48s; the client matches the last one, so the whole list is scanned.',
          'part: the check alone (client IP parse + scan), outside any verify.',
          'imported key: a token in its own format (no key id): a cache hit finds the key through the proof cache, no index read.',
          'Keyrings use keyrot\'s default abuse protection with a per-key quota that never refuses.',
        ],
      },
    ],
    checks,
    notes: [],
    data: result,
  }
}
