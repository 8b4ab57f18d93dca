import { describe, expect, it } from 'vitest'
import { checkRotation, statsByKey, type CheckInput, type KeyHistory, type ObservedRequest } from './check.js'

const T0 = Date.UTC(2030, 0, 1)
const DEADLINE = T0 + 10_000
const SUNSET = new Date(DEADLINE).toUTCString()

const K1 = 'AAAAAAAAAA000001'
const K2 = 'AAAAAAAAAA000002'
const K3 = 'AAAAAAAAAA000003'

function keys(): KeyHistory[] {
  return [
    { keyId: K1, label: 'K1', issuedAt: T0, rotation: { startedAt: T0 + 100, completedAt: T0 + 150, deadline: DEADLINE, successorId: K2 }, revocation: null },
    { keyId: K2, label: 'K2', issuedAt: T0 + 150, rotation: null, revocation: { startedAt: T0 + 12_000, completedAt: T0 + 12_040, incidentId: 'INC-1', successorId: K3 } },
    { keyId: K3, label: 'K3', issuedAt: T0 + 12_040, rotation: null, revocation: null },
  ]
}

function req(client: string, keyId: string, sentAfterT0: number, outcome: { status: number; code?: string; sunset?: string; took?: number }): ObservedRequest {
  return {
    client,
    keyId,
    baseUrl: 'http://127.0.0.1:1',
    sentAt: T0 + sentAfterT0,
    answeredAt: T0 + sentAfterT0 + (outcome.took ?? 3),
    status: outcome.status,
    code: outcome.code ?? null,
    sunset: outcome.sunset ?? null,
  }
}

const expired = { status: 401, code: 'KEYROT_KEY_EXPIRED' }
const revoked = { status: 401, code: 'KEYROT_KEY_REVOKED' }

/** What a correct rotation looks like from the clients' side. */
function goodTimeline(): ObservedRequest[] {
  return [
    req('app', K1, 10, { status: 200 }),
    req('app', K1, 20, { status: 200 }),
    req('app', K2, 200, { status: 200 }),
    req('never', K1, 300, { status: 200, sunset: SUNSET }),
    req('never', K1, 9_900, { status: 200, sunset: SUNSET }),
    req('never', K1, 10_100, expired),
    req('never', K1, 11_000, expired),
    req('app', K2, 11_000, { status: 200 }),
    req('intruder', K2, 12_040, revoked),
    req('app', K3, 12_045, { status: 200 }),
  ]
}

function verdictOf(requests: ObservedRequest[], input: Partial<CheckInput> = {}) {
  return checkRotation({ keys: keys(), requests, ...input })
}

function check(requests: ObservedRequest[], id: string) {
  const found = verdictOf(requests).checks.find((c) => c.id === id)
  if (!found) throw new Error(`no check ${id}`)
  return found
}

describe('checkRotation', () => {
  it('passes a timeline where rotation kept its promises, with counts per rule', () => {
    const verdict = verdictOf(goodTimeline())
    expect(verdict.checks.map((c) => [c.id, c.pass, c.n])).toEqual([
      ['valid-keys-work', true, 7],
      ['expired-keys-refused', true, 2],
      ['leaked-key-refused', true, 1],
      ['sunset-during-grace', true, 2],
    ])
    expect(verdict.pass).toBe(true)
    expect(verdict.inFlightAcrossDeadline).toEqual([])
  })

  it('fails when a key inside its grace period was refused', () => {
    const refused = req('late', K1, 5_000, expired)
    const result = check([...goodTimeline(), refused], 'valid-keys-work')
    expect(result.pass).toBe(false)
    expect(result.violations).toEqual([refused])
    expect(result.reasons[0]).toMatch(/valid key refused: t\+5000ms late K1 → 401 KEYROT_KEY_EXPIRED/)
    expect(verdictOf([...goodTimeline(), refused]).pass).toBe(false)
  })

  it('fails when the new key did not work at once after the rotation', () => {
    const result = check([...goodTimeline(), req('at-once', K2, 151, { status: 401, code: 'KEYROT_INVALID_KEY' })], 'valid-keys-work')
    expect(result.pass).toBe(false)
  })

  it('counts a request that got no response as a failure of a valid key', () => {
    const result = check([...goodTimeline(), req('app', K2, 4_000, { status: 0, code: 'TimeoutError' })], 'valid-keys-work')
    expect(result.pass).toBe(false)
  })

  it('fails when the old key still worked after the deadline', () => {
    const late = req('never', K1, 10_200, { status: 200, sunset: SUNSET })
    const result = check([...goodTimeline(), late], 'expired-keys-refused')
    expect(result.pass).toBe(false)
    expect(result.violations).toEqual([late])
  })

  it('fails when the old key was refused after the deadline with another code or status', () => {
    expect(check([...goodTimeline(), req('never', K1, 10_300, revoked)], 'expired-keys-refused').pass).toBe(false)
    expect(check([...goodTimeline(), req('never', K1, 10_300, { status: 500 })], 'expired-keys-refused').pass).toBe(false)
    expect(check([...goodTimeline(), req('never', K1, 10_300, { status: 403, code: 'KEYROT_KEY_EXPIRED' })], 'expired-keys-refused').pass).toBe(false)
  })

  it('fails when no request was sent after the deadline (nothing was shown)', () => {
    const withoutLate = goodTimeline().filter((r) => !(r.keyId === K1 && r.sentAt > DEADLINE))
    const result = check(withoutLate, 'expired-keys-refused')
    expect(result.pass).toBe(false)
    expect(result.n).toBe(0)
    expect(result.reasons).toContain('no request was sent with a key after its grace deadline')
  })

  it('judges neither way a request in flight across the deadline, and reports it', () => {
    // Sent 10 ms before the deadline, answered 10 ms after: either answer is right.
    const straddling = [req('never', K1, 9_990, { ...expired, took: 20 }), req('never', K1, 9_980, { status: 200, sunset: SUNSET, took: 5 })]
    const verdict = verdictOf([...goodTimeline(), ...straddling])
    expect(verdict.pass).toBe(true)
    expect(verdict.inFlightAcrossDeadline).toEqual(straddling)
  })

  it('uses the tolerance it is given: with 0 ms a refusal 5 ms before the deadline counts', () => {
    const refused = req('never', K1, 9_990, { ...expired, took: 5 })
    expect(verdictOf([...goodTimeline(), refused]).pass).toBe(true)
    expect(verdictOf([...goodTimeline(), refused], { toleranceMs: 0 }).pass).toBe(false)
  })

  it('fails when the leaked key was accepted after the emergency rotation returned', () => {
    const accepted = req('intruder', K2, 12_041, { status: 200 })
    const result = check([...goodTimeline(), accepted], 'leaked-key-refused')
    expect(result.pass).toBe(false)
    expect(result.violations).toEqual([accepted])
  })

  it('across replicas, leaves unjudged a leaked key accepted within revocationToleranceMs of the revocation, and fails it after', () => {
    const early = req('intruder', K2, 12_050, { status: 200 })
    const retry = req('intruder', K2, 12_200, revoked)
    const tolerated = verdictOf([...goodTimeline(), early, retry], { revocationToleranceMs: 50 })
    expect(tolerated.pass).toBe(true)
    expect(tolerated.inFlightAcrossDeadline).toEqual([req('intruder', K2, 12_040, revoked), early])
    expect(tolerated.checks.find((c) => c.id === 'leaked-key-refused')?.n).toBe(1)
    expect(tolerated.revocationToleranceMs).toBe(50)

    const late = req('intruder', K2, 12_090, { status: 200 })
    const result = verdictOf([...goodTimeline(), late, retry], { revocationToleranceMs: 50 }).checks.find((c) => c.id === 'leaked-key-refused')
    expect(result?.pass).toBe(false)
    expect(result?.violations).toEqual([late])
  })

  it('fails when, with a revocation tolerance, no try of the leaked key came after it', () => {
    // The intruder's only try falls in the window: nothing showed the key refused.
    const result = verdictOf(goodTimeline(), { revocationToleranceMs: 50 }).checks.find((c) => c.id === 'leaked-key-refused')
    expect(result?.pass).toBe(false)
    expect(result?.reasons).toContain('no request was sent with a revoked key after its revocation')
  })

  it('refuses a negative or non-finite revocation tolerance', () => {
    expect(() => verdictOf(goodTimeline(), { revocationToleranceMs: -1 })).toThrow(/revocationToleranceMs must be a non-negative number/)
    expect(() => verdictOf(goodTimeline(), { revocationToleranceMs: Number.NaN })).toThrow(TypeError)
  })

  it('fails when the leaked key was refused as expired instead of revoked', () => {
    expect(check([...goodTimeline(), req('intruder', K2, 12_100, expired)], 'leaked-key-refused').pass).toBe(false)
  })

  it('fails when the replacement key did not work', () => {
    const timeline = goodTimeline().map((r) => (r.keyId === K3 ? { ...r, status: 401, code: 'KEYROT_INVALID_KEY' } : r))
    const result = check(timeline, 'leaked-key-refused')
    expect(result.pass).toBe(false)
    expect(result.reasons.join('\n')).toMatch(/replacement of K2/)
  })

  it('fails when nobody tried the leaked key after its revocation', () => {
    const result = check(goodTimeline().filter((r) => r.client !== 'intruder'), 'leaked-key-refused')
    expect(result.pass).toBe(false)
    expect(result.n).toBe(0)
  })

  it('fails when a success during grace lacked Sunset or carried the wrong date', () => {
    expect(check([...goodTimeline(), req('late', K1, 5_000, { status: 200 })], 'sunset-during-grace').pass).toBe(false)
    const wrong = new Date(DEADLINE + 86_400_000).toUTCString()
    expect(check([...goodTimeline(), req('late', K1, 5_000, { status: 200, sunset: wrong })], 'sunset-during-grace').pass).toBe(false)
  })

  it('fails when Sunset was sent before the rotation or for a key never rotated', () => {
    expect(check([...goodTimeline(), req('app', K1, 30, { status: 200, sunset: SUNSET })], 'sunset-during-grace').pass).toBe(false)
    expect(check([...goodTimeline(), req('app', K2, 3_000, { status: 200, sunset: SUNSET })], 'sunset-during-grace').pass).toBe(false)
  })

  it('fails a request sent with a key before it was issued', () => {
    const result = check([...goodTimeline(), req('app', K3, 11_000, { status: 200 })], 'valid-keys-work')
    expect(result.pass).toBe(false)
    expect(result.reasons.join('\n')).toMatch(/before its key was issued/)
  })

  it('fails an empty timeline rather than passing it', () => {
    const verdict = verdictOf([])
    expect(verdict.pass).toBe(false)
    expect(verdict.checks.every((c) => !c.pass)).toBe(true)
  })

  it('refuses to judge a request with a key it does not know', () => {
    expect(() => verdictOf([req('app', 'ZZZZZZZZZZ999999', 10, { status: 200 })])).toThrow(TypeError)
  })

  it('counts requests, successes, refusals and errors per key', () => {
    const timeline = [...goodTimeline(), req('app', K2, 5_000, { status: 503, code: 'KEYROT_STORE_UNAVAILABLE' })]
    expect(statsByKey(keys(), timeline)).toEqual([
      { keyId: K1, label: 'K1', requests: 6, valid: 4, refused: 2, errors: 0 },
      { keyId: K2, label: 'K2', requests: 4, valid: 2, refused: 1, errors: 1 },
      { keyId: K3, label: 'K3', requests: 1, valid: 1, refused: 0, errors: 0 },
    ])
  })
})
