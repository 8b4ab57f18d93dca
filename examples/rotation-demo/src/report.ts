import { formatDuration } from '@keyrot/core'
import type { KeyHistory, Verdict } from './check.js'
import { percentile, type PropagationResult } from './propagation.js'
import { CLIENTS, type ScenarioResult, type TimelineEvent } from './scenario.js'

type Write = (line: string) => void

/** Last 6 characters of a key id: the first 10 are the family every rotation of a key shares. */
function shortKey(key: KeyHistory | undefined, keyId: string): string {
  return `${key?.label ?? '??'} …${keyId.slice(-6)}`
}

/**
 * Prints the timeline as events happen. With `quiet`, a client's request is
 * printed only when its outcome differs from that client's previous one.
 * With several `baseUrls`, a `via` column names the replica that answered
 * (`r1` is the first URL).
 */
export function createTimelinePrinter(options: { write: Write; quiet: boolean; baseUrls?: readonly string[] }): (event: TimelineEvent) => void {
  const { write, quiet } = options
  const replicaOf = new Map((options.baseUrls ?? []).map((url, index) => [url, `r${index + 1}`]))
  const via = replicaOf.size > 1
  const keys = new Map<string, KeyHistory>()
  const lastOutcome = new Map<string, string>()
  let origin: number | undefined
  let hidden = 0
  const t = (at: number) => String(at - (origin ?? at)).padStart(7)
  const viaColumn = (label: string) => (via ? [label.padEnd(3)] : [])
  write(['t+ms'.padStart(7), 'client'.padEnd(9), ...viaColumn('via'), 'key'.padEnd(10), 'status', 'took'.padStart(6), ' detail'].join('  '))
  return function printEvent(event) {
    if (event.kind === 'start') {
      origin = event.at
      return
    }
    if (hidden > 0 && event.kind !== 'request') {
      write(`${''.padStart(7)}  (${hidden} repeated row${hidden === 1 ? '' : 's'} hidden)`)
      hidden = 0
    }
    if (event.kind === 'end') return
    if (event.kind === 'key') {
      keys.set(event.key.keyId, event.key)
      write([t(event.at), 'admin'.padEnd(9), ...viaColumn(''), shortKey(event.key, event.key.keyId).padEnd(10), 'issued', ''.padStart(6), event.maskedToken].join('  '))
      return
    }
    if (event.kind === 'admin') {
      write([t(event.at), 'admin'.padEnd(9), ...viaColumn(''), '—'.padEnd(10), ''.padEnd(6), ''.padStart(6), event.text].join('  '))
      return
    }
    const request = event.request
    const outcome = `${request.keyId} ${request.status} ${request.code} ${request.sunset !== null}`
    if (quiet && lastOutcome.get(request.client) === outcome) {
      hidden++
      return
    }
    lastOutcome.set(request.client, outcome)
    const detail = request.code ?? (request.sunset ? `Sunset: ${request.sunset}` : '')
    write(
      [
        t(request.sentAt),
        request.client.padEnd(9),
        ...viaColumn(replicaOf.get(request.baseUrl) ?? '?'),
        shortKey(keys.get(request.keyId), request.keyId).padEnd(10),
        String(request.status || '—').padEnd(6),
        `${request.answeredAt - request.sentAt}ms`.padStart(6),
        ` ${detail}`,
      ]
        .join('  ')
        .trimEnd(),
    )
  }
}

export function printClients(write: Write): void {
  write('clients:')
  for (const [name, description] of Object.entries(CLIENTS)) write(`  ${name.padEnd(9)} ${description}`)
}

function stateOf(key: KeyHistory): string {
  if (key.revocation) return `revoked (incident ${key.revocation.incidentId})`
  if (key.rotation) return 'rotated, grace ended'
  return 'active'
}

export interface VerdictExtras {
  /** The scenario's servers, in the order of the timeline's `r1`, `r2`...; with several, requests are counted per replica. */
  baseUrls?: readonly string[]
  /** Printed after the checks, summed up after the verdict line. */
  propagation?: PropagationResult
}

const ms = (value: number) => `${value.toFixed(1)} ms`
const signedMs = (value: number) => `${value >= 0 ? '+' : '−'}${Math.abs(value).toFixed(1)} ms`

function spread(values: readonly number[], format: (value: number) => string = ms): string {
  return `p50 ${format(percentile(values, 50))}  p99 ${format(percentile(values, 99))}  max ${format(Math.max(...values))}`
}

/** Per replica and overall: revocation propagation and grace-deadline lateness, then the skew across replicas. */
function printPropagation(write: Write, propagation: PropagationResult): void {
  const { replicas } = propagation
  const revoked = replicas.flatMap((replica) => replica.revokedAfterMs)
  const expired = replicas.flatMap((replica) => replica.expiredAfterMs)
  const keys = Math.max(0, ...replicas.map((replica) => replica.revokedAfterMs.length))
  const rotations = Math.max(0, ...replicas.map((replica) => replica.expiredAfterMs.length))
  write('')
  write(`propagation across ${replicas.length} replicas (every replica had the key cached; each figure includes one HTTP round trip):`)
  if (propagation.roundTripsMs.length > 0) write(`  one poll request's round trip: ${spread(propagation.roundTripsMs)}   (n=${propagation.roundTripsMs.length})`)
  write(`  revocation: revoke call returned → first 401 KEYROT_KEY_REVOKED from the replica (${keys} keys)`)
  for (const [index, replica] of replicas.entries()) {
    if (replica.revokedAfterMs.length === 0) continue
    write(`    r${index + 1}   ${spread(replica.revokedAfterMs)}   accepted after the revoke returned: ${replica.acceptedAfterRevoke}`)
  }
  if (revoked.length > 0) write(`    all  ${spread(revoked)}   (n=${revoked.length})`)
  write(`  grace deadline: deadline → first 401 KEYROT_KEY_EXPIRED from the replica (${rotations} rotations, grace ${formatDuration(propagation.deadlineGraceMs)})`)
  for (const [index, replica] of replicas.entries()) {
    if (replica.expiredAfterMs.length === 0) continue
    write(`    r${index + 1}   ${spread(replica.expiredAfterMs, signedMs)}   accepted when sent after the deadline: ${replica.acceptedAfterDeadline}`)
  }
  if (expired.length > 0) write(`    all  ${spread(expired, signedMs)}   (n=${expired.length})`)
  if (propagation.deadlineSpreadMs.length > 0) {
    write(`  skew across replicas (latest minus earliest first 401 per deadline): ${spread(propagation.deadlineSpreadMs)}`)
  }
  for (const failure of propagation.failures) write(`FAIL propagation: ${failure}`)
}

/** One line: the overall revocation figures and the deadline skew. */
function propagationSummary(propagation: PropagationResult): string {
  const revoked = propagation.replicas.flatMap((replica) => replica.revokedAfterMs)
  const parts: string[] = []
  if (revoked.length > 0) {
    parts.push(`revoked key refused by every replica within p50 ${ms(percentile(revoked, 50))}, p99 ${ms(percentile(revoked, 99))}, max ${ms(Math.max(...revoked))} of the revoke (n=${revoked.length})`)
  }
  if (propagation.deadlineSpreadMs.length > 0) {
    parts.push(`grace deadline skew across replicas p50 ${ms(percentile(propagation.deadlineSpreadMs, 50))}, max ${ms(Math.max(...propagation.deadlineSpreadMs))}`)
  }
  const failed = propagation.failures.length > 0
  return `${failed ? 'FAIL' : 'info'} propagation: ${parts.join('; ') || 'not measured'}${failed ? `; ${propagation.failures.length} failure(s) above` : ''}`
}

/**
 * Per-key figures, the checks with their reasons, the propagation figures
 * (replicas only), and the summary lines.
 */
export function printVerdict(write: Write, result: ScenarioResult, verdict: Verdict, gracePeriodMs: number, extras: VerdictExtras = {}): void {
  const byId = new Map(result.keys.map((key) => [key.keyId, key]))
  write('')
  write('per key:')
  write(`  ${'key'.padEnd(4)}${'key id'.padEnd(18)}${'requests'.padStart(8)}${'valid'.padStart(7)}${'refused'.padStart(9)}${'errors'.padStart(8)}  state`)
  for (const stats of verdict.stats) {
    const key = byId.get(stats.keyId) as KeyHistory
    write(
      `  ${stats.label.padEnd(4)}${stats.keyId.padEnd(18)}${String(stats.requests).padStart(8)}${String(stats.valid).padStart(7)}${String(stats.refused).padStart(9)}${String(stats.errors).padStart(8)}  ${stateOf(key)}`,
    )
  }
  const baseUrls = extras.baseUrls ?? []
  if (baseUrls.length > 1) {
    const counts = baseUrls.map((url, index) => `r${index + 1} ${result.requests.filter((request) => request.baseUrl === url).length}`)
    write(`  requests per replica: ${counts.join(', ')}`)
  }
  write('')
  for (const check of verdict.checks) {
    write(`${check.pass ? 'PASS' : 'FAIL'} ${check.title}`)
    for (const reason of check.reasons.slice(0, 10)) write(`       ${reason}`)
    if (check.reasons.length > 10) write(`       … and ${check.reasons.length - 10} more`)
  }
  const inFlight = verdict.inFlightAcrossDeadline.length
  const windows = `±${verdict.toleranceMs} ms${verdict.revocationToleranceMs > 0 ? `; ${verdict.revocationToleranceMs} ms after a revocation, for it to reach every replica` : ''}`
  write(`info ${inFlight} request${inFlight === 1 ? ' was' : 's were'} in flight across a deadline or revocation (${windows}) and judged by neither rule`)
  if (extras.propagation) printPropagation(write, extras.propagation)
  const passed = verdict.checks.filter((check) => check.pass).length
  const took = `${((result.finishedAt - result.startedAt) / 1000).toFixed(1)} s`
  const requests = `${result.requests.length} requests${baseUrls.length > 1 ? ` on ${baseUrls.length} replicas` : ''}`
  write('')
  write(
    verdict.pass
      ? `PASS zero-downtime rotation held: ${passed}/${verdict.checks.length} checks, ${requests}, grace ${formatDuration(gracePeriodMs)}, ${took}`
      : `FAIL zero-downtime rotation broken: ${verdict.checks.length - passed} of ${verdict.checks.length} checks failed, ${requests}, grace ${formatDuration(gracePeriodMs)}, ${took}`,
  )
  if (extras.propagation) write(propagationSummary(extras.propagation))
}
