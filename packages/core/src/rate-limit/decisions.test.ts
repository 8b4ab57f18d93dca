import { describe, expect, it } from 'vitest'
import { decideAdmission, decideQuota, decideRelease, type IpState, type WindowCount } from './decisions.js'
import type { Attempt, FailureLimits } from './limiter.js'

const LIMITS: FailureLimits = {
  failuresPerIp: { limit: 5, windowMs: 60_000 },
  ipBlock: { threshold: 20, windowMs: 3_600_000, durationMs: 3_600_000 },
  failuresPerKey: { limit: 20, windowMs: 60_000 },
}
const T0 = 1_000_000

/** Runs admissions against one IP's and one key's state, as a limiter would. */
function subject(limits: FailureLimits = LIMITS) {
  const state: { ip: IpState | undefined; network: WindowCount | undefined; key: WindowCount | undefined } = { ip: undefined, network: undefined, key: undefined }
  return {
    state,
    admit(now: number, attempt: Partial<Attempt> = {}) {
      const full: Attempt = { ip: '127.0.0.1', network: 'net', keyId: 'key', chargeIp: true, chargeKey: true, ...attempt }
      const decided = decideAdmission(state, full, limits, now)
      state.ip = decided.ip ?? state.ip
      state.network = decided.network
      state.key = decided.key
      return decided.admission
    },
    release(chargedAt: number, now: number) {
      const released = decideRelease(state, { ip: '127.0.0.1', network: 'net', keyId: 'key', chargedAt }, limits, now)
      state.ip = released.ip
      state.network = released.network
      state.key = released.key
    },
  }
}

describe('failures per IP', () => {
  it('admits 5 failures in a window and refuses the 6th until the window ends', () => {
    const s = subject({ ...LIMITS, failuresPerKey: null })
    for (let i = 0; i < 5; i++) expect(s.admit(T0 + i * 1000).allowed).toBe(true)
    expect(s.admit(T0 + 5000)).toEqual({ allowed: false, policy: 'ip-failures', limit: 5, windowMs: 60_000, retryAfterMs: 55_000 })
    expect(s.admit(T0 + 59_999)).toMatchObject({ allowed: false, retryAfterMs: 1 })
    expect(s.admit(T0 + 60_000).allowed).toBe(true)
  })

  it('does not charge a refused attempt, so hammering does not extend the lockout', () => {
    const s = subject({ ...LIMITS, failuresPerKey: null })
    for (let i = 0; i < 5; i++) s.admit(T0)
    for (let i = 0; i < 100; i++) s.admit(T0 + 1000)
    expect(s.state.ip?.failures).toEqual({ start: T0, count: 5 })
    expect(s.state.ip?.recent).toEqual({ start: T0, count: 5 })
  })

  it('checks without charging an attempt that carries no charge (a proven token)', () => {
    const s = subject()
    for (let i = 0; i < 10; i++) expect(s.admit(T0, { chargeIp: false, chargeKey: false }).allowed).toBe(true)
    expect(s.state.ip?.failures).toBeUndefined()
    expect(s.state.key).toBeUndefined()
  })
})

describe('IP block', () => {
  it('blocks on the 20th failure for exactly the block duration, then starts afresh', () => {
    const s = subject({ ...LIMITS, failuresPerKey: null })
    let now = T0
    for (let failure = 1; failure <= 20; failure++) {
      const admission = s.admit(now)
      expect(admission.allowed).toBe(true)
      // 5 per minute: move to the next window after every fifth.
      if (failure % 5 === 0) now += 60_000
    }
    const blockedAt = now - 60_000
    expect(s.state.ip?.blockedUntil).toBe(blockedAt + 3_600_000)
    expect(s.admit(now)).toEqual({ allowed: false, policy: 'ip-block', limit: 20, windowMs: 3_600_000, retryAfterMs: blockedAt + 3_600_000 - now })
    expect(s.admit(blockedAt + 3_600_000 - 1)).toMatchObject({ allowed: false, policy: 'ip-block', retryAfterMs: 1 })
    expect(s.admit(blockedAt + 3_600_000, { chargeIp: false })).toEqual({ allowed: true })
    expect(s.state.ip).toEqual({ failures: undefined, recent: undefined, blockedUntil: 0 })
  })

  it('lifts a block started by an attempt that is refunded', () => {
    const s = subject({ ...LIMITS, failuresPerIp: null, failuresPerKey: null })
    for (let i = 0; i < 19; i++) s.admit(T0)
    s.admit(T0 + 10)
    expect(s.state.ip?.blockedUntil).toBe(T0 + 10 + 3_600_000)
    s.release(T0 + 10, T0 + 30)
    expect(s.state.ip?.blockedUntil).toBe(0)
    expect(s.admit(T0 + 40, { chargeIp: false }).allowed).toBe(true)
  })
})

describe('failures per key id', () => {
  it('refuses unproven attempts on a key after 20 failures from any IPs, until the window ends', () => {
    const s = subject({ ...LIMITS, failuresPerIp: null, ipBlock: null })
    for (let i = 0; i < 20; i++) expect(s.admit(T0 + i).allowed).toBe(true)
    expect(s.admit(T0 + 100)).toEqual({ allowed: false, policy: 'key-failures', limit: 20, windowMs: 60_000, retryAfterMs: 59_900 })
    // A proven token is checked with no key id at all: the key's failures do not concern it.
    expect(s.admit(T0 + 100, { keyId: undefined, chargeIp: false, chargeKey: false }).allowed).toBe(true)
    expect(s.admit(T0 + 60_000).allowed).toBe(true)
  })
})

describe('failures per network', () => {
  it('refuses a network after its budget of failures from all its addresses, before the key id is checked', () => {
    const s = subject({ ...LIMITS, failuresPerIp: null, ipBlock: null, failuresPerNetwork: { limit: 3, windowMs: 60_000 } })
    for (let i = 0; i < 3; i++) expect(s.admit(T0 + i, { ip: `2001:db8:1:${i}::/64` }).allowed).toBe(true)
    expect(s.admit(T0 + 10, { ip: '2001:db8:1:99::/64' })).toEqual({ allowed: false, policy: 'network-failures', limit: 3, windowMs: 60_000, retryAfterMs: 59_990 })
    s.release(T0 + 1, T0 + 20)
    expect(s.admit(T0 + 20, { ip: '2001:db8:1:99::/64' }).allowed).toBe(true)
    expect(s.admit(T0 + 60_000, { ip: '2001:db8:1:99::/64' }).allowed).toBe(true)
  })

  it('is off when the limits name no network budget (a limiter called as before)', () => {
    const s = subject({ ...LIMITS, failuresPerIp: null, ipBlock: null, failuresPerKey: null })
    for (let i = 0; i < 50; i++) expect(s.admit(T0 + i).allowed).toBe(true)
    expect(s.state.network).toBeUndefined()
  })
})

describe('release', () => {
  it('refunds only in the window the charge landed in', () => {
    const s = subject()
    s.admit(T0)
    s.admit(T0 + 1)
    s.release(T0 + 1, T0 + 2)
    expect(s.state.ip?.failures).toEqual({ start: T0, count: 1 })
    expect(s.state.key).toEqual({ start: T0, count: 1 })
    // A charge from a window that has ended refunds nothing in the new one.
    s.admit(T0 + 60_000)
    s.release(T0 + 5, T0 + 60_001)
    expect(s.state.ip?.failures).toEqual({ start: T0 + 60_000, count: 1 })
  })
})

describe('per-key quota (GCRA)', () => {
  const quota = { limit: 100, windowMs: 60_000 }

  function burst(count: number, now: number, tat: number | undefined) {
    let last
    for (let i = 0; i < count; i++) {
      last = decideQuota(tat, quota, now)
      tat = last.tat
    }
    return { last: last!, tat }
  }

  it('admits 100 requests at once and refuses the 101st for one emission interval', () => {
    const { last, tat } = burst(100, T0, undefined)
    expect(last.decision).toEqual({ allowed: true, limit: 100, windowMs: 60_000, remaining: 0, resetMs: 60_000 })
    const refused = decideQuota(tat, quota, T0)
    expect(refused.decision).toEqual({ allowed: false, limit: 100, windowMs: 60_000, remaining: 0, resetMs: 60_000, retryAfterMs: 600 })
    expect(refused.tat).toBe(tat)
    expect(decideQuota(tat, quota, T0 + 599).decision.allowed).toBe(false)
    expect(decideQuota(tat, quota, T0 + 600).decision).toMatchObject({ allowed: true, remaining: 0 })
  })

  it('counts down remaining and reports the time until the quota is whole again', () => {
    const first = decideQuota(undefined, quota, T0)
    expect(first.decision).toEqual({ allowed: true, limit: 100, windowMs: 60_000, remaining: 99, resetMs: 600 })
    const { last } = burst(58, T0, first.tat)
    expect(last.decision).toMatchObject({ remaining: 41, resetMs: 59 * 600 })
  })

  it('gives the whole quota back after a window without requests', () => {
    const { tat } = burst(100, T0, undefined)
    expect(burst(100, T0 + 60_000, tat).last.decision).toMatchObject({ allowed: true, remaining: 0 })
  })

  it('stays exact with an emission interval that is not a whole number of ms', () => {
    const odd = { limit: 7, windowMs: 60_000 }
    let tat: number | undefined
    for (let i = 0; i < 7; i++) {
      const step = decideQuota(tat, odd, T0)
      expect(step.decision.allowed).toBe(true)
      tat = step.tat
    }
    expect(decideQuota(tat, odd, T0).decision).toMatchObject({ allowed: false, retryAfterMs: 8572 })
  })
})
