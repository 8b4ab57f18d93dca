/**
 * What zero-downtime rotation promises, checked against what the clients saw.
 * Pure: it reads a timeline and returns a verdict, so it can be tested on
 * timelines written by hand and reused for any store or number of replicas.
 *
 * Every request is classified by the real time it was sent and answered,
 * relative to the moments each key's promise changes:
 *
 * - inside its validity: sent after the key was issued and answered at least
 *   `toleranceMs` before its end (its grace deadline, or the start of the
 *   call that revoked it) → it must succeed (2xx);
 * - after its end: sent at least `toleranceMs` after its grace deadline →
 *   refused with 401 `KEYROT_KEY_EXPIRED`; sent once the revoking call has
 *   returned → refused with 401 `KEYROT_KEY_REVOKED` (in one process a
 *   revocation promises that the very next request is refused, so no
 *   tolerance after it; across replicas the others hear of it over pub/sub,
 *   so requests sent within `revocationToleranceMs` of it are not judged);
 * - anything else was in flight across a deadline or a revocation: counted
 *   and reported, but held against neither rule. The server decides at some
 *   instant between send and answer, and several replicas read their own
 *   clocks, so the ±`toleranceMs` window around a deadline absorbs
 *   millisecond rounding and small clock differences.
 */

/** One HTTP request as a client saw it. Times are epoch ms. */
export interface ObservedRequest {
  client: string
  keyId: string
  /** Which server answered (one entry of the scenario's base URLs). */
  baseUrl: string
  sentAt: number
  answeredAt: number
  /** HTTP status; `0` when no response arrived (connection error, timeout). */
  status: number
  /** `error.code` of a JSON error body, or the network error's name. */
  code: string | null
  /** The `Sunset` header, if any. */
  sunset: string | null
}

/** What the scenario did to one key, with the real times of the admin calls. Epoch ms. */
export interface KeyHistory {
  keyId: string
  /** Short name used in the timeline: `K1`, `K2`... */
  label: string
  /** When the call that created the key returned (nobody could hold it before). */
  issuedAt: number
  rotation: {
    startedAt: number
    completedAt: number
    /** The key's new `expiresAt`: the end of its grace period. */
    deadline: number
    successorId: string
  } | null
  revocation: {
    startedAt: number
    completedAt: number
    incidentId: string
    successorId: string
  } | null
}

export interface CheckResult {
  /** Stable id: `valid-keys-work`, `expired-keys-refused`, `leaked-key-refused`, `sunset-during-grace`. */
  id: string
  pass: boolean
  /** The line printed after `PASS `/`FAIL `. */
  title: string
  /** Requests this rule applied to. */
  n: number
  /** Why it failed, one line per reason. Empty on a pass. */
  reasons: string[]
  /** Requests that broke the rule. */
  violations: ObservedRequest[]
}

export interface KeyStats {
  keyId: string
  label: string
  requests: number
  /** 2xx answers. */
  valid: number
  /** 4xx answers. */
  refused: number
  /** 5xx answers and requests that got no response. */
  errors: number
}

export interface Verdict {
  pass: boolean
  checks: CheckResult[]
  /** Requests in flight across a deadline or a revocation, held against no rule. */
  inFlightAcrossDeadline: ObservedRequest[]
  stats: KeyStats[]
  toleranceMs: number
  revocationToleranceMs: number
}

export interface CheckInput {
  keys: readonly KeyHistory[]
  requests: readonly ObservedRequest[]
  /** Width of the window around each deadline in which requests are not judged. ms, default 50. */
  toleranceMs?: number
  /**
   * How long after the revoking call returned a server may still accept the
   * revoked key; requests sent in that window are not judged. ms, default 0:
   * one process refuses the very next request. Across replicas the others
   * drop their cached state when the invalidation message arrives over
   * Redis pub/sub, a few milliseconds later.
   */
  revocationToleranceMs?: number
  /** Epoch ms shown as `t+0` in reasons. Default: the earliest key's `issuedAt`. */
  origin?: number
}

/** Default half-width of the window around a deadline in which requests are not judged (ms). */
export const DEFAULT_TOLERANCE_MS = 50

type RequestClass = 'inside' | 'expired' | 'revoked' | 'in-flight' | 'before-issue'

interface KeyEnd {
  /** Requests answered at or before this instant must succeed. */
  validUntil: number
  /** Requests sent at or after this instant must be refused. */
  refusedFrom: number
  code: 'KEYROT_KEY_EXPIRED' | 'KEYROT_KEY_REVOKED'
}

/** The earliest way a key stopped working, its grace deadline or its revocation, with the tolerance applied. */
function endOf(key: KeyHistory, toleranceMs: number, revocationToleranceMs: number): KeyEnd | null {
  const expiry: KeyEnd | null = key.rotation
    ? { validUntil: key.rotation.deadline - toleranceMs, refusedFrom: key.rotation.deadline + toleranceMs, code: 'KEYROT_KEY_EXPIRED' }
    : null
  const revocation: KeyEnd | null = key.revocation
    ? { validUntil: key.revocation.startedAt - toleranceMs, refusedFrom: key.revocation.completedAt + revocationToleranceMs, code: 'KEYROT_KEY_REVOKED' }
    : null
  if (expiry && revocation) return revocation.validUntil < expiry.validUntil ? revocation : expiry
  return expiry ?? revocation
}

function classify(request: ObservedRequest, key: KeyHistory, end: KeyEnd | null): RequestClass {
  if (request.sentAt < key.issuedAt) return 'before-issue'
  if (end === null || request.answeredAt <= end.validUntil) return 'inside'
  if (request.sentAt >= end.refusedFrom) return end.code === 'KEYROT_KEY_EXPIRED' ? 'expired' : 'revoked'
  return 'in-flight'
}

const ok = (request: ObservedRequest) => request.status >= 200 && request.status < 300

/**
 * Judges a timeline. Throws a `TypeError` for a timeline that cannot be
 * judged (a request with a key not in `keys`, answered before it was sent).
 *
 * A rule that no request exercised fails: a demo that never sent a request
 * after the deadline has not shown that expired keys are refused.
 */
export function checkRotation(input: CheckInput): Verdict {
  const toleranceMs = input.toleranceMs ?? DEFAULT_TOLERANCE_MS
  if (!Number.isFinite(toleranceMs) || toleranceMs < 0) throw new TypeError(`toleranceMs must be a non-negative number; got ${String(toleranceMs)}`)
  const revocationToleranceMs = input.revocationToleranceMs ?? 0
  if (!Number.isFinite(revocationToleranceMs) || revocationToleranceMs < 0) {
    throw new TypeError(`revocationToleranceMs must be a non-negative number; got ${String(revocationToleranceMs)}`)
  }
  const byId = new Map(input.keys.map((key) => [key.keyId, key]))
  const origin = input.origin ?? Math.min(...input.keys.map((key) => key.issuedAt))
  const describe = (request: ObservedRequest) =>
    `t+${request.sentAt - origin}ms ${request.client} ${byId.get(request.keyId)?.label ?? request.keyId} → ${request.status || 'no response'}${request.code ? ` ${request.code}` : ''}`

  const inside: ObservedRequest[] = []
  const expired: ObservedRequest[] = []
  const revoked: ObservedRequest[] = []
  const inFlight: ObservedRequest[] = []
  const beforeIssue: ObservedRequest[] = []
  for (const request of input.requests) {
    const key = byId.get(request.keyId)
    if (!key) throw new TypeError(`request from ${request.client} uses key ${request.keyId}, which is not in the key list`)
    if (!(request.answeredAt >= request.sentAt)) throw new TypeError(`request from ${request.client} was answered before it was sent`)
    const verdict = classify(request, key, endOf(key, toleranceMs, revocationToleranceMs))
    if (verdict === 'inside') inside.push(request)
    else if (verdict === 'expired') expired.push(request)
    else if (verdict === 'revoked') revoked.push(request)
    else if (verdict === 'in-flight') inFlight.push(request)
    else beforeIssue.push(request)
  }

  const checks: CheckResult[] = []

  // 1. Zero downtime: nothing inside its validity failed.
  {
    const violations = inside.filter((request) => !ok(request))
    const reasons = violations.map((request) => `valid key refused: ${describe(request)}`)
    for (const request of beforeIssue) reasons.push(`request sent before its key was issued: ${describe(request)}`)
    if (inside.length === 0) reasons.push('no request was sent with a valid key')
    checks.push({
      id: 'valid-keys-work',
      pass: reasons.length === 0,
      title: `no request with a valid key failed (n=${inside.length})`,
      n: inside.length,
      reasons,
      violations: [...violations, ...beforeIssue],
    })
  }

  // 2. The deadline holds: after it, the old key is refused as expired.
  {
    const violations = expired.filter((request) => request.status !== 401 || request.code !== 'KEYROT_KEY_EXPIRED')
    const reasons = violations.map((request) => `expected 401 KEYROT_KEY_EXPIRED after the deadline: ${describe(request)}`)
    if (expired.length === 0) reasons.push('no request was sent with a key after its grace deadline')
    checks.push({
      id: 'expired-keys-refused',
      pass: reasons.length === 0,
      title: `every request after the deadline failed with 401 KEYROT_KEY_EXPIRED (n=${expired.length})`,
      n: expired.length,
      reasons,
      violations,
    })
  }

  // 3. Emergency rotation: the leaked key is refused at once, its replacement works.
  {
    const violations = revoked.filter((request) => request.status !== 401 || request.code !== 'KEYROT_KEY_REVOKED')
    const reasons = violations.map((request) => `expected 401 KEYROT_KEY_REVOKED after the emergency rotation: ${describe(request)}`)
    const leaked = input.keys.filter((key) => key.revocation !== null)
    if (leaked.length === 0) reasons.push('no key was revoked by an emergency rotation')
    if (revoked.length === 0) reasons.push('no request was sent with a revoked key after its revocation')
    let replacementRequests = 0
    for (const key of leaked) {
      const successor = key.revocation?.successorId
      const after = input.requests.filter((request) => request.keyId === successor && request.sentAt >= (key.revocation?.completedAt ?? 0))
      replacementRequests += after.length
      if (!after.some(ok)) reasons.push(`the replacement of ${key.label} did not answer a request successfully after the emergency rotation`)
    }
    checks.push({
      id: 'leaked-key-refused',
      pass: reasons.length === 0,
      title: `leaked key refused with KEYROT_KEY_REVOKED (n=${revoked.length}), its replacement works (n=${replacementRequests})`,
      n: revoked.length,
      reasons,
      violations,
    })
  }

  // 4. Clients are told: a success with a key in its grace period carries `Sunset`.
  {
    const violations: ObservedRequest[] = []
    const reasons: string[] = []
    let n = 0
    for (const request of inside) {
      if (!ok(request)) continue
      const rotation = byId.get(request.keyId)?.rotation
      if (!rotation) {
        if (request.sunset !== null) {
          violations.push(request)
          reasons.push(`Sunset on a key that was never rotated: ${describe(request)}`)
        }
        continue
      }
      if (request.answeredAt <= rotation.startedAt - toleranceMs) {
        if (request.sunset !== null) {
          violations.push(request)
          reasons.push(`Sunset before the rotation: ${describe(request)}`)
        }
      } else if (request.sentAt >= rotation.completedAt + toleranceMs) {
        n++
        const expected = new Date(rotation.deadline).toUTCString()
        if (request.sunset !== expected) {
          violations.push(request)
          reasons.push(`expected Sunset: ${expected}, got ${request.sunset ?? 'none'}: ${describe(request)}`)
        }
      }
    }
    if (n === 0) reasons.push('no request succeeded with a key in its grace period')
    checks.push({
      id: 'sunset-during-grace',
      pass: reasons.length === 0,
      title: `every success with the old key during grace carried Sunset with its deadline (n=${n})`,
      n,
      reasons,
      violations,
    })
  }

  return {
    pass: checks.every((check) => check.pass),
    checks,
    inFlightAcrossDeadline: inFlight,
    stats: statsByKey(input.keys, input.requests),
    toleranceMs,
    revocationToleranceMs,
  }
}

/** Requests, successes, refusals and errors per key, in the order of `keys`. */
export function statsByKey(keys: readonly KeyHistory[], requests: readonly ObservedRequest[]): KeyStats[] {
  const stats = new Map<string, KeyStats>(
    keys.map((key) => [key.keyId, { keyId: key.keyId, label: key.label, requests: 0, valid: 0, refused: 0, errors: 0 }]),
  )
  for (const request of requests) {
    const entry = stats.get(request.keyId)
    if (!entry) continue
    entry.requests++
    if (ok(request)) entry.valid++
    else if (request.status >= 400 && request.status < 500) entry.refused++
    else entry.errors++
  }
  return [...stats.values()]
}
