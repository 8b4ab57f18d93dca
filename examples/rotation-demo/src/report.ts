import { formatDuration } from '@keyrot/core'
import type { KeyHistory, Verdict } from './check.js'
import { CLIENTS, type ScenarioResult, type TimelineEvent } from './scenario.js'

type Write = (line: string) => void

const COLUMNS = ['t+ms'.padStart(7), 'client'.padEnd(9), 'key'.padEnd(10), 'status', 'took'.padStart(6), ' detail'].join('  ')

/** Last 6 characters of a key id: the first 10 are the family every rotation of a key shares. */
function shortKey(key: KeyHistory | undefined, keyId: string): string {
  return `${key?.label ?? '??'} …${keyId.slice(-6)}`
}

/**
 * Prints the timeline as events happen. With `quiet`, a client's request is
 * printed only when its outcome differs from that client's previous one.
 */
export function createTimelinePrinter(options: { write: Write; quiet: boolean }): (event: TimelineEvent) => void {
  const { write, quiet } = options
  const keys = new Map<string, KeyHistory>()
  const lastOutcome = new Map<string, string>()
  let origin: number | undefined
  let hidden = 0
  const t = (at: number) => String(at - (origin ?? at)).padStart(7)
  write(COLUMNS)
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
      write(`${t(event.at)}  ${'admin'.padEnd(9)}  ${shortKey(event.key, event.key.keyId).padEnd(10)}  issued  ${''.padStart(6)}  ${event.maskedToken}`)
      return
    }
    if (event.kind === 'admin') {
      write(`${t(event.at)}  ${'admin'.padEnd(9)}  ${'—'.padEnd(10)}  ${''.padEnd(6)}  ${''.padStart(6)}  ${event.text}`)
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

/** Per-key figures, the checks with their reasons, and one summary line. */
export function printVerdict(write: Write, result: ScenarioResult, verdict: Verdict, gracePeriodMs: number): void {
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
  write('')
  for (const check of verdict.checks) {
    write(`${check.pass ? 'PASS' : 'FAIL'} ${check.title}`)
    for (const reason of check.reasons.slice(0, 10)) write(`       ${reason}`)
    if (check.reasons.length > 10) write(`       … and ${check.reasons.length - 10} more`)
  }
  const inFlight = verdict.inFlightAcrossDeadline.length
  write(
    `info ${inFlight} request${inFlight === 1 ? ' was' : 's were'} in flight across a deadline or revocation (±${verdict.toleranceMs} ms) and judged by neither rule`,
  )
  const passed = verdict.checks.filter((check) => check.pass).length
  const took = `${((result.finishedAt - result.startedAt) / 1000).toFixed(1)} s`
  write('')
  write(
    verdict.pass
      ? `PASS zero-downtime rotation held: ${passed}/${verdict.checks.length} checks, ${result.requests.length} requests, grace ${formatDuration(gracePeriodMs)}, ${took}`
      : `FAIL zero-downtime rotation broken: ${verdict.checks.length - passed} of ${verdict.checks.length} checks failed, ${result.requests.length} requests, grace ${formatDuration(gracePeriodMs)}, ${took}`,
  )
}
