import type { Keyring } from '@keyrot/core'

/**
 * How fast a change made by the operator reaches every replica, measured
 * from the outside over HTTP, like the scenario's clients:
 *
 * - revocation: a fresh key is verified (and so cached) on every replica,
 *   revoked through the operator's keyring, then every replica is polled
 *   with it, one request after another, until it answers 401
 *   `KEYROT_KEY_REVOKED`. Timed from the revoke call's return to that 401.
 * - grace deadline: a fresh key, cached on every replica, is rotated with a
 *   short grace period; every replica is polled from just before the deadline
 *   until it answers 401 `KEYROT_KEY_EXPIRED`. Timed from the deadline to that
 *   401; the skew is the spread of those times across replicas.
 *
 * A poll loop waits for each answer before the next request, so a figure
 * includes one HTTP round trip: it bounds the propagation from above. Every
 * loop is bounded in requests and time; a replica still accepting the key
 * when the bound is reached is a failure. Tokens stay in this module.
 */

export type PropagationAdmin = Pick<Keyring, 'create' | 'revoke' | 'rotate'>

export interface PropagationOptions {
  /** The replicas, e.g. three `http://127.0.0.1:<port>` URLs. */
  baseUrls: readonly string[]
  admin: PropagationAdmin
  /** Revocations timed. Default 20. */
  revocations?: number
  /** Grace deadlines watched. Default 5. */
  deadlines?: number
  /** Grace period of the watched rotations, ms. Default 400. */
  deadlineGraceMs?: number
  /** Longest a replica may keep accepting a revoked or expired key before it counts as a failure, ms. Default 2000. */
  maxWaitMs?: number
  /** Most requests one poll loop sends. Default 2000. */
  maxPolls?: number
  /** Protected route. Default `'/v1/orders'`. */
  path?: string
  /** Longest wait for one response, ms. Default 5000. */
  requestTimeoutMs?: number
}

export interface ReplicaPropagation {
  baseUrl: string
  /** Per revocation: ms from the revoke call's return to this replica's first 401 `KEYROT_KEY_REVOKED`. */
  revokedAfterMs: number[]
  /** Requests this replica answered 2xx with a key whose revoke call had already returned. */
  acceptedAfterRevoke: number
  /** Per watched rotation: ms from the grace deadline to this replica's first 401 `KEYROT_KEY_EXPIRED`. */
  expiredAfterMs: number[]
  /** Requests sent at or after a deadline that this replica still answered 2xx. */
  acceptedAfterDeadline: number
  /** Requests sent during the polls (warm-up included). */
  requests: number
}

export interface PropagationResult {
  replicas: ReplicaPropagation[]
  /** Per watched rotation: latest minus earliest first 401 across replicas, ms. */
  deadlineSpreadMs: number[]
  deadlineGraceMs: number
  /** Round trip of every poll request, ms: the resolution of the figures above. */
  roundTripsMs: number[]
  /** What went wrong, one line each; empty when every replica refused every key within the bounds. */
  failures: string[]
}

const TENANT = 'acme'
/** Probe keys are polled in tight loops: their own quota keeps the default per-key limit out of the way. */
const PROBE_RATE_LIMIT = { limit: 1_000_000, window: '1m' }
/** Polling for a deadline starts this long before it, ms. */
const DEADLINE_LEAD_MS = 30

/** Epoch ms with sub-millisecond precision. */
const preciseNow = () => performance.timeOrigin + performance.now()

function sleepUntil(at: number): Promise<void> {
  const ms = at - preciseNow()
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve()
}

interface Answer {
  status: number
  code: string | null
  /** Epoch ms, sub-millisecond (for durations measured here). */
  sentAt: number
  answeredAt: number
  /** `Date.now()` when sent: the clock the replicas compare deadlines with. */
  sentAtWall: number
}

interface PollOutcome {
  /** When the first refusal arrived; null if none within the bounds. */
  refusedAt: number | null
  /** 2xx answers to requests sent at or after `acceptedFrom`. */
  acceptedLate: number
  requests: number
  /** An answer that was neither a 2xx nor the expected refusal. */
  unexpected: Answer | null
}

function describeAnswer(answer: Answer): string {
  return `${answer.status || 'no response'}${answer.code ? ` ${answer.code}` : ''}`
}

/** p-th percentile (nearest rank) of `values`; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number
}

/**
 * Measures revocation propagation and grace-deadline skew across `baseUrls`.
 * Takes about `deadlines × (deadlineGraceMs + 0.3 s) + revocations × 0.2 s`
 * on a laptop, mostly Argon2 hashing of the probe keys.
 */
export async function measurePropagation(options: PropagationOptions): Promise<PropagationResult> {
  const { baseUrls, admin } = options
  if (baseUrls.length === 0) throw new TypeError('baseUrls must name at least one server')
  const revocations = options.revocations ?? 20
  const deadlines = options.deadlines ?? 5
  const deadlineGraceMs = options.deadlineGraceMs ?? 400
  const maxWaitMs = options.maxWaitMs ?? 2_000
  const maxPolls = options.maxPolls ?? 2_000
  const path = options.path ?? '/v1/orders'
  const requestTimeoutMs = options.requestTimeoutMs ?? 5_000
  const replicas: ReplicaPropagation[] = baseUrls.map((baseUrl) => ({
    baseUrl,
    revokedAfterMs: [],
    acceptedAfterRevoke: 0,
    expiredAfterMs: [],
    acceptedAfterDeadline: 0,
    requests: 0,
  }))
  const deadlineSpreadMs: number[] = []
  const roundTripsMs: number[] = []
  const failures: string[] = []

  async function send(baseUrl: string, token: string): Promise<Answer> {
    const sentAtWall = Date.now()
    const sentAt = preciseNow()
    try {
      const response = await fetch(new URL(path, baseUrl), {
        headers: { authorization: `Bearer ${token}`, 'user-agent': 'keyrot-demo/propagation' },
        signal: AbortSignal.timeout(requestTimeoutMs),
      })
      const body = (await response.json().catch(() => null)) as { error?: { code?: unknown } } | null
      const code = !response.ok && typeof body?.error?.code === 'string' ? body.error.code : null
      return { status: response.status, code, sentAt, answeredAt: preciseNow(), sentAtWall }
    } catch (error) {
      return { status: 0, code: error instanceof Error ? error.name : 'Error', sentAt, answeredAt: preciseNow(), sentAtWall }
    }
  }

  /** A fresh probe key, verified once on every replica so each has it cached. */
  async function warmKey(): Promise<{ token: string; keyId: string } | null> {
    const issued = await admin.create({ tenantId: TENANT, name: 'propagation-probe', scopes: ['orders:read'], rateLimit: PROBE_RATE_LIMIT })
    const answers = await Promise.all(replicas.map(async (replica) => ({ replica, answer: await send(replica.baseUrl, issued.token) })))
    for (const { replica, answer } of answers) {
      replica.requests++
      if (answer.status !== 200) {
        failures.push(`${replica.baseUrl} refused a fresh key: ${describeAnswer(answer)}`)
        return null
      }
    }
    return { token: issued.token, keyId: issued.key.id }
  }

  /**
   * Polls one replica with `token` until it refuses it with `code`, within
   * the bounds, counting the 2xx answers `late` says came too late.
   */
  async function pollUntilRefused(replica: ReplicaPropagation, token: string, code: string, late: (answer: Answer) => boolean, stopAt: number): Promise<PollOutcome> {
    const outcome: PollOutcome = { refusedAt: null, acceptedLate: 0, requests: 0, unexpected: null }
    while (outcome.requests < maxPolls) {
      const answer = await send(replica.baseUrl, token)
      outcome.requests++
      replica.requests++
      roundTripsMs.push(answer.answeredAt - answer.sentAt)
      if (answer.status === 401 && answer.code === code) {
        outcome.refusedAt = answer.answeredAt
        break
      }
      if (answer.status !== 200) {
        outcome.unexpected = answer
        break
      }
      if (late(answer)) outcome.acceptedLate++
      if (answer.answeredAt > stopAt) break
    }
    return outcome
  }

  function judge(replica: ReplicaPropagation, outcome: PollOutcome, what: string, code: string): boolean {
    if (outcome.unexpected) {
      failures.push(`${replica.baseUrl} answered ${describeAnswer(outcome.unexpected)} to a ${what} key instead of 401 ${code}`)
      return false
    }
    if (outcome.refusedAt === null) {
      failures.push(`${replica.baseUrl} still accepted a ${what} key after ${outcome.requests} requests (bounds: ${maxWaitMs} ms, ${maxPolls} requests)`)
      return false
    }
    return true
  }

  for (let trial = 0; trial < revocations && failures.length === 0; trial++) {
    const probe = await warmKey()
    if (!probe) break
    await admin.revoke(probe.keyId, { reason: 'propagation probe' })
    const ackAt = preciseNow()
    const outcomes = await Promise.all(
      replicas.map(async (replica) => ({ replica, outcome: await pollUntilRefused(replica, probe.token, 'KEYROT_KEY_REVOKED', (answer) => answer.sentAt >= ackAt, ackAt + maxWaitMs) })),
    )
    for (const { replica, outcome } of outcomes) {
      replica.acceptedAfterRevoke += outcome.acceptedLate
      if (judge(replica, outcome, 'revoked', 'KEYROT_KEY_REVOKED')) replica.revokedAfterMs.push((outcome.refusedAt as number) - ackAt)
    }
  }

  for (let trial = 0; trial < deadlines && failures.length === 0; trial++) {
    const probe = await warmKey()
    if (!probe) break
    const rotated = await admin.rotate(probe.keyId, { gracePeriod: `${deadlineGraceMs}ms` })
    const deadline = rotated.previous.expiresAt
    if (deadline === null) throw new Error('rotate() returned an old key without a deadline')
    await sleepUntil(deadline - DEADLINE_LEAD_MS)
    const outcomes = await Promise.all(
      replicas.map(async (replica) => ({ replica, outcome: await pollUntilRefused(replica, probe.token, 'KEYROT_KEY_EXPIRED', (answer) => answer.sentAtWall >= deadline, deadline + maxWaitMs) })),
    )
    const refusedAt: number[] = []
    for (const { replica, outcome } of outcomes) {
      replica.acceptedAfterDeadline += outcome.acceptedLate
      if (!judge(replica, outcome, 'expired', 'KEYROT_KEY_EXPIRED')) continue
      replica.expiredAfterMs.push((outcome.refusedAt as number) - deadline)
      refusedAt.push(outcome.refusedAt as number)
    }
    if (refusedAt.length === replicas.length) deadlineSpreadMs.push(Math.max(...refusedAt) - Math.min(...refusedAt))
  }

  return { replicas, deadlineSpreadMs, deadlineGraceMs, roundTripsMs, failures }
}
