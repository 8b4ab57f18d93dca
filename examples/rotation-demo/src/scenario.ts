import { formatDuration, type Keyring } from '@keyrot/core'
import type { KeyHistory, ObservedRequest } from './check.js'

/**
 * The admin side of the scenario: whatever creates and rotates the keys the
 * servers verify. A `Keyring` on the servers' store; with several replicas,
 * a keyring on their shared store.
 */
export type KeyringAdmin = Pick<Keyring, 'create' | 'rotate' | 'emergencyRotate'>

export interface ScenarioOptions {
  /**
   * Servers guarding `path` with keyrot, e.g. `['http://127.0.0.1:41234']`.
   * Requests go to them in turn, so with several replicas a client's next
   * request usually lands on another one.
   */
  baseUrls: readonly string[]
  admin: KeyringAdmin
  /** Grace period of the rotation, ms. Must match nothing else: it is passed to `rotate()`. */
  gracePeriodMs: number
  /** Protected route. Default `'/v1/orders'`. */
  path?: string
  /** Longest wait for one response, ms. Default 10000. */
  requestTimeoutMs?: number
  /** Called for each event as it happens (for a live timeline). */
  onEvent?: (event: TimelineEvent) => void
}

export type TimelineEvent =
  | { kind: 'start'; at: number }
  | { kind: 'end'; at: number }
  | { kind: 'key'; at: number; key: KeyHistory; maskedToken: string }
  | { kind: 'admin'; at: number; text: string }
  | { kind: 'request'; request: ObservedRequest }

export interface ScenarioResult {
  /** Epoch ms of the scenario's start: `t+0` of the timeline. */
  startedAt: number
  finishedAt: number
  keys: KeyHistory[]
  requests: ObservedRequest[]
  events: TimelineEvent[]
}

/** The clients and how each one moves to the new key. */
export const CLIENTS = {
  'at-once': 'moves to the new key as soon as it exists',
  'after-3': 'makes 3 more calls on the old key, then moves',
  never: 'never moves: must be refused right after the deadline',
  late: 'moves late, at 80% of the grace period',
  'new-only': 'deployed during the grace period with the new key',
  intruder: 'holds the leaked key after the emergency rotation',
} as const

export type ClientName = keyof typeof CLIENTS

const TENANT = 'acme'
const INCIDENT_ID = 'INC-2041'
/** The intruder's second try, after the emergency rotation returned, ms: more than any revocation tolerance the demo uses. */
const INTRUDER_RETRY_MS = 150

/** `sk_live_<keyId>_…`: what a key looks like in output. The secret never leaves the scenario. */
export function maskToken(prefix: string, keyId: string): string {
  return `${prefix}_${keyId}_…`
}

function sleepUntil(at: number): Promise<void> {
  const ms = at - Date.now()
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve()
}

/**
 * Runs the rotation scenario for real against `baseUrls`, in real time:
 *
 * 1. create K1; three calls with it;
 * 2. rotate K1 → K2 with `gracePeriodMs`; five clients move to K2 on their
 *    own schedules (see {@link CLIENTS}) until a while after K1's deadline;
 * 3. emergency rotation of K2, as if it had leaked → K3; the intruder's next
 *    requests with K2 (at once, and 150 ms later) and the owner's with K3.
 *
 * Returns what every client saw, with the real times of every admin call,
 * for `checkRotation()`. Takes the grace period, then max(1 s, a fifth of
 * it) more, plus the time to hash three keys with Argon2.
 * Tokens stay inside this function: results and events carry key ids only.
 */
export async function runRotationScenario(options: ScenarioOptions): Promise<ScenarioResult> {
  const { admin, gracePeriodMs } = options
  if (options.baseUrls.length === 0) throw new TypeError('baseUrls must name at least one server')
  if (!Number.isFinite(gracePeriodMs) || gracePeriodMs < 1000) throw new TypeError('gracePeriodMs must be at least 1000 ms')
  const path = options.path ?? '/v1/orders'
  const requestTimeoutMs = options.requestTimeoutMs ?? 10_000
  const startedAt = Date.now()
  const keys: KeyHistory[] = []
  const requests: ObservedRequest[] = []
  const events: TimelineEvent[] = []
  const tokens = new Map<string, string>()
  const emit = (event: TimelineEvent) => {
    events.push(event)
    options.onEvent?.(event)
  }
  let turn = 0
  emit({ kind: 'start', at: startedAt })

  const issue = (label: string, issued: { token: string; key: { id: string; prefix: string } }, at: number): KeyHistory => {
    tokens.set(issued.key.id, issued.token)
    const history: KeyHistory = { keyId: issued.key.id, label, issuedAt: at, rotation: null, revocation: null }
    keys.push(history)
    emit({ kind: 'key', at, key: history, maskedToken: maskToken(issued.key.prefix, issued.key.id) })
    return history
  }

  async function call(client: ClientName, keyId: string): Promise<ObservedRequest> {
    const baseUrl = options.baseUrls[turn++ % options.baseUrls.length] as string
    const sentAt = Date.now()
    let status = 0
    let code: string | null = null
    let sunset: string | null = null
    try {
      const response = await fetch(new URL(path, baseUrl), {
        headers: { authorization: `Bearer ${tokens.get(keyId)}`, 'user-agent': `keyrot-demo/${client}` },
        signal: AbortSignal.timeout(requestTimeoutMs),
      })
      status = response.status
      sunset = response.headers.get('sunset')
      const body = (await response.json().catch(() => null)) as { error?: { code?: unknown } } | null
      if (!response.ok) code = typeof body?.error?.code === 'string' ? body.error.code : null
    } catch (error) {
      code = error instanceof Error ? error.name : 'Error'
    }
    const request: ObservedRequest = { client, keyId, baseUrl, sentAt, answeredAt: Date.now(), status, code, sunset }
    requests.push(request)
    emit({ kind: 'request', request })
    return request
  }

  // 1. A key in use.
  const k1 = issue('K1', await admin.create({ tenantId: TENANT, name: 'orders-service', scopes: ['orders:read'] }), Date.now())
  for (const client of ['at-once', 'after-3', 'never'] as const) await call(client, k1.keyId)

  // 2. Rotation with a grace period.
  const rotationStartedAt = Date.now()
  const rotated = await admin.rotate(k1.keyId, { gracePeriod: `${gracePeriodMs}ms` })
  const rotatedAt = Date.now()
  const deadline = rotated.previous.expiresAt
  if (deadline === null) throw new Error('rotate() returned an old key without a deadline')
  emit({
    kind: 'admin',
    at: rotatedAt,
    text: `rotate K1 → K2, grace ${formatDuration(gracePeriodMs)}: K1 works until its deadline t+${deadline - startedAt}ms`,
  })
  const k2 = issue('K2', rotated, rotatedAt)
  k1.rotation = { startedAt: rotationStartedAt, completedAt: rotatedAt, deadline, successorId: k2.keyId }
  const deadlineMarker = setTimeout(() => emit({ kind: 'admin', at: Date.now(), text: 'K1 grace deadline: from now K1 must be refused' }), deadline - Date.now())

  // Each client calls on its own beat, waiting for one answer before the next
  // call like a real client; beats are staggered so the timeline reads well.
  const step = gracePeriodMs / 8
  const end = deadline + Math.max(1000, gracePeriodMs / 5)
  const beats = (offset: number, from = rotatedAt) => {
    const times: number[] = []
    for (let at = from + offset; at <= end; at += step) times.push(at)
    return times
  }
  // The grace period runs from the instant rotate() read the clock, so on a
  // busy machine some of it is spent before the call returns: schedule
  // against the deadline, not against the return.
  const graceStartedAt = deadline - gracePeriodMs
  const migrateLateAt = Math.max(rotatedAt, graceStartedAt + 0.8 * gracePeriodMs)
  const newOnlyFrom = Math.max(rotatedAt, graceStartedAt + gracePeriodMs / 2)
  const plans: Array<{ client: ClientName; times: number[]; keyFor: (callIndex: number, at: number) => KeyHistory }> = [
    { client: 'at-once', times: beats(0), keyFor: () => k2 },
    { client: 'after-3', times: beats(step / 5), keyFor: (index) => (index < 3 ? k1 : k2) },
    {
      client: 'never',
      // Two extra calls frame the deadline: just before it, and just after.
      times: [...beats((2 * step) / 5), deadline - Math.min(250, step / 2), deadline + 100].sort((a, b) => a - b),
      keyFor: () => k1,
    },
    { client: 'late', times: beats((3 * step) / 5), keyFor: (_index, at) => (at < migrateLateAt ? k1 : k2) },
    { client: 'new-only', times: beats((4 * step) / 5, newOnlyFrom), keyFor: () => k2 },
  ]
  try {
    await Promise.all(
      plans.map(async (plan) => {
        for (const [index, at] of plan.times.entries()) {
          await sleepUntil(at)
          await call(plan.client, plan.keyFor(index, Date.now()).keyId)
        }
      }),
    )
  } finally {
    clearTimeout(deadlineMarker)
  }

  // 3. K2 leaks: emergency rotation, no grace. The pause keeps the last
  // request before the incident clear of it, so the checker judges it.
  await call('at-once', k2.keyId)
  await sleepUntil(Date.now() + 250)
  const revocationStartedAt = Date.now()
  const replaced = await admin.emergencyRotate(k2.keyId, { incidentId: INCIDENT_ID, reason: 'key found in a public build log' })
  const revokedAt = Date.now()
  emit({ kind: 'admin', at: revokedAt, text: `emergency rotation of leaked K2 (incident ${INCIDENT_ID}) → K3: K2 revoked now, no grace` })
  const k3 = issue('K3', replaced, revokedAt)
  k2.revocation = { startedAt: revocationStartedAt, completedAt: revokedAt, incidentId: INCIDENT_ID, successorId: k3.keyId }
  // The intruder tries at once, and again a moment later: across replicas
  // the others hear of the revocation over pub/sub within milliseconds, so
  // the checker may leave the first try unjudged there, never the second.
  for (let round = 0; round < 2; round++) {
    if (round > 0) await sleepUntil(revokedAt + INTRUDER_RETRY_MS)
    await call('intruder', k2.keyId)
    await call('at-once', k3.keyId)
  }

  tokens.clear()
  const finishedAt = Date.now()
  emit({ kind: 'end', at: finishedAt })
  return { startedAt, finishedAt, keys, requests, events }
}
