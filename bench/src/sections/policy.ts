import { duration, rate } from '../lib/format.js'
import { runWorker } from '../lib/processes.js'
import type { RunContext, SectionReport } from '../lib/report.js'
import type { PolicyBenchConfig, PolicyBenchResult } from '../workers/policy.js'

/** Rotation policies: what they add to a cache-hit verify. */
export async function policySection(context: RunContext): Promise<SectionReport> {
  const config: PolicyBenchConfig = context.profile.policy
  context.log(`policy: ${config.keys} keys, ${config.latencySamples} timed verifies per series in ${config.rounds} alternating rounds`)
  const result = await runWorker<PolicyBenchResult>('policy', { config, timeoutMs: 300_000 })
  const find = (name: string) => {
    const found = result.series.find((s) => s.name === name)
    if (!found) throw new Error(`policy: no series ${name}`)
    return found
  }
  const base = find('verify, no policy')
  const delta = (name: string) => {
    const s = find(name)
    const d = s.latencyMs.p50 - base.latencyMs.p50
    return `${d >= 0 ? '+' : '-'}${duration(Math.abs(d))}`
  }
  const authBase = find('authenticate(), no policy')
  const authDue = find('authenticate(), policy, key due (Deprecation header)')
  const authDelta = authDue.latencyMs.p50 - authBase.latencyMs.p50
  return {
    id: 'policy',
    title: 'Rotation policy',
    tables: [
      {
        title: `Rotation policy on a cache-hit verify (memory store, rateLimit: false, ${result.keys} keys, ${result.rounds} alternating rounds)`,
        columns: ['series', 'median', 'p99', 'verifies/s', 'median vs no policy'],
        rows: result.series.map((s) => [
          s.name,
          duration(s.latencyMs.p50),
          duration(s.latencyMs.p99),
          s.perSecond ? rate(s.perSecond) : '',
          s.name.startsWith('verify, ') ? delta(s.name) : s.name.startsWith('authenticate(), policy') ? `${authDelta >= 0 ? '+' : '-'}${duration(Math.abs(authDelta))} vs authenticate(), no policy` : '',
        ]),
        notes: [
          'Before its warning a key costs one tenant lookup (LRU) and one comparison with the verdict kept per cached record.',
          'A due key also returns `rotation` (a frozen object built once per record); authenticate() then formats the Deprecation header.',
          'The per-day usage count is paid by every successful verify on the memory store, with or without a policy; the Redis store counts per flush batch.',
        ],
      },
    ],
    checks: [],
    notes: [],
    data: result,
  }
}
