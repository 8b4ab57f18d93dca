import { describe, expect, it } from 'vitest'
import { ManualClock } from '../clock.js'
import { decideSpend } from '../credits/credits.js'
import { CreditsExhaustedError, InvalidInputError } from '../errors.js'
import { FastTestHasher } from '../hash/hasher.js'
import { errorResponse } from '../http/respond.js'
import type { KeyringOptions } from '../options.js'
import { MemoryStore } from '../store/memory-store.js'
import type { KeyStore } from '../store/store.js'
import { createKeyring, type VerifyResult } from './keyring.js'

const DAY = 86_400_000

function setup(options: KeyringOptions = {}) {
  const clock = new ManualClock()
  const keyring = createKeyring({ clock, hasher: new FastTestHasher(), gracePeriod: '1h', ...options })
  return { clock, keyring }
}

function codeOf(result: VerifyResult): string {
  return result.ok ? 'ok' : result.error.code
}

describe('create({ credits })', () => {
  it.each([
    [{ remaining: -1 }, 'credits.remaining'],
    [{ remaining: 1.5 }, 'credits.remaining'],
    [{ remaining: '10' }, 'credits.remaining'],
    [{}, 'credits.remaining'],
    [{ remaining: 10, refill: { amount: 0, interval: '1d' } }, 'credits.refill.amount'],
    [{ remaining: 10, refill: { amount: 2.5, interval: '1d' } }, 'credits.refill.amount'],
    [{ remaining: 10, refill: { amount: 10, interval: '30s' } }, 'credits.refill.interval'],
    [{ remaining: 10, refill: { amount: 10, interval: 'daily' } }, 'credits.refill.interval'],
    [{ remaining: 10, refill: { amount: 10 } }, 'credits.refill.interval'],
    // The next refill would be no date: `keyrot credits` threw printing it.
    [{ remaining: 10, refill: { amount: 10, interval: 8.64e15 } }, 'credits.refill.interval'],
    [5, 'credits'],
  ])('refuses %j naming %s', async (credits, field) => {
    const { keyring } = setup()
    const error = await keyring.create({ tenantId: 'acme', name: 'ci', credits: credits as never }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(InvalidInputError)
    expect((error as InvalidInputError).field).toBe(field)
  })

  it('refuses credits on a store that cannot keep them, with a TypeError', async () => {
    const memory = new MemoryStore()
    const bare: KeyStore = {
      insert: (r) => memory.insert(r),
      get: (id) => memory.get(id),
      rotate: (i) => memory.rotate(i),
      revoke: (i) => memory.revoke(i),
      emergencyRotate: (i) => memory.emergencyRotate(i),
      setExpiry: (id, at) => memory.setExpiry(id, at),
      updateHash: (id, h) => memory.updateHash(id, h),
      recordUsage: () => {},
      list: (q) => memory.list(q),
      close: () => memory.close(),
    }
    const { keyring } = setup({ store: bare })
    await expect(keyring.create({ tenantId: 'acme', name: 'ci', credits: { remaining: 1 } })).rejects.toThrow(TypeError)
  })
})

describe.each([
  ['with the verification cache', {}],
  ['without the verification cache', { cache: { maxEntries: 0 } }],
] as const)('credits %s', (_label, cacheOptions) => {
  it('spends one credit per successful verify and refuses the next with KEYROT_CREDITS_EXHAUSTED', async () => {
    const { keyring } = setup(cacheOptions)
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci', credits: { remaining: 3 } })
    const remaining: number[] = []
    for (let i = 0; i < 3; i++) {
      const result = await keyring.verify(token)
      expect(codeOf(result)).toBe('ok')
      remaining.push(result.ok ? (result.credits?.remaining ?? -1) : -1)
    }
    expect(remaining).toEqual([2, 1, 0])
    const refused = await keyring.verify(token)
    expect(codeOf(refused)).toBe('KEYROT_CREDITS_EXHAUSTED')
    expect(!refused.ok && refused.error).toMatchObject({ remaining: 0, nextRefillAt: null, retryAfterMs: null, status: 429 })
    expect(await keyring.credits(key.id)).toMatchObject({ remaining: 0, nextRefillAt: null, refill: null })
  })

  it('spends the cost given to verify(), and refuses a cost above the balance without spending', async () => {
    const { keyring } = setup(cacheOptions)
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci', credits: { remaining: 10 } })
    expect(codeOf(await keyring.verify(token, { cost: 7 }))).toBe('ok')
    expect(codeOf(await keyring.verify(token, { cost: 4 }))).toBe('KEYROT_CREDITS_EXHAUSTED')
    expect((await keyring.credits(key.id))?.remaining).toBe(3)
    expect(codeOf(await keyring.verify(token, { cost: 0 }))).toBe('ok')
    expect(codeOf(await keyring.verify(token, { cost: 3 }))).toBe('ok')
    // An empty balance refuses even a free request.
    expect(codeOf(await keyring.verify(token, { cost: 0 }))).toBe('KEYROT_CREDITS_EXHAUSTED')
    await expect(keyring.verify(token, { cost: -1 })).rejects.toThrow(TypeError)
  })

  it('treats remaining: 0 as no uses (not unlimited), and a key without credits as unlimited', async () => {
    const { keyring } = setup(cacheOptions)
    const empty = await keyring.create({ tenantId: 'acme', name: 'empty', credits: { remaining: 0 } })
    const unlimited = await keyring.create({ tenantId: 'acme', name: 'unlimited' })
    expect(codeOf(await keyring.verify(empty.token))).toBe('KEYROT_CREDITS_EXHAUSTED')
    for (let i = 0; i < 5; i++) {
      const result = await keyring.verify(unlimited.token, { cost: 1_000 })
      expect(result.ok && result.credits).toBe(undefined)
    }
    expect(await keyring.credits(unlimited.key.id)).toBe(null)
    expect(unlimited.key.credits).toBe(undefined)
    expect(empty.key.credits).toEqual({ refill: null })
  })

  it('calls the store on no verify of a key without credits, and once per verify (cache hits too) of a key with credits', async () => {
    const store = new MemoryStore()
    const spend = store.spendCredits.bind(store)
    const reads = { spends: 0, gets: 0 }
    store.spendCredits = (input) => {
      reads.spends++
      return spend(input)
    }
    const get = store.get.bind(store)
    store.get = (id) => {
      reads.gets++
      return get(id)
    }
    const { keyring } = setup({ ...cacheOptions, store })
    const plain = await keyring.create({ tenantId: 'acme', name: 'plain' })
    const metered = await keyring.create({ tenantId: 'acme', name: 'metered', credits: { remaining: 100 } })
    for (let i = 0; i < 5; i++) expect((await keyring.verify(plain.token)).ok).toBe(true)
    expect(reads.spends).toBe(0)
    reads.gets = 0
    for (let i = 0; i < 5; i++) expect((await keyring.verify(metered.token)).ok).toBe(true)
    expect(reads.spends).toBe(5)
    // With the cache, the state is read once; the balance is not cached.
    expect(reads.gets).toBe(Object.keys(cacheOptions).length === 0 ? 1 : 5)
  })

  it('refills lazily every interval, up to the refill amount, and says when the next refill is', async () => {
    const { clock, keyring } = setup(cacheOptions)
    const createdAt = clock.now()
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci', credits: { remaining: 2, refill: { amount: 5, interval: '1d' } } })
    expect(codeOf(await keyring.verify(token, { cost: 2 }))).toBe('ok')
    clock.advance(DAY - 1)
    const refused = await keyring.verify(token)
    expect(codeOf(refused)).toBe('KEYROT_CREDITS_EXHAUSTED')
    expect(!refused.ok && (refused.error as CreditsExhaustedError).retryAfterMs).toBe(1)
    clock.advance(1)
    const first = await keyring.verify(token)
    expect(first.ok && first.credits).toEqual({ remaining: 4, nextRefillAt: createdAt + 2 * DAY })
    // Three intervals later: one refill to the amount, not three, anchored on the creation time.
    clock.advance(3 * DAY + 10)
    const later = await keyring.verify(token)
    expect(later.ok && later.credits).toEqual({ remaining: 4, nextRefillAt: createdAt + 5 * DAY })
  })

  it('spends nothing for a request refused by a missing scope, revocation or the rate limit', async () => {
    const { keyring } = setup({ ...cacheOptions, rateLimit: { perKey: { limit: 2, window: '1m' } } })
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci', credits: { remaining: 10 } })
    expect(codeOf(await keyring.verify(token, { scopes: ['admin'] }))).toBe('KEYROT_INSUFFICIENT_SCOPE')
    expect(codeOf(await keyring.verify(token))).toBe('ok')
    expect(codeOf(await keyring.verify(token))).toBe('ok')
    expect(codeOf(await keyring.verify(token))).toBe('KEYROT_RATE_LIMITED')
    expect((await keyring.credits(key.id))?.remaining).toBe(8)
    await keyring.revoke(key.id)
    expect(codeOf(await keyring.verify(token))).toBe('KEYROT_KEY_REVOKED')
    expect((await keyring.credits(key.id))?.remaining).toBe(8)
  })

  it('carries the balance over a rotation: old and new key draw from one balance during grace', async () => {
    const { keyring } = setup(cacheOptions)
    const old = await keyring.create({ tenantId: 'acme', name: 'ci', credits: { remaining: 5, refill: { amount: 5, interval: '1d' } } })
    expect(codeOf(await keyring.verify(old.token, { cost: 2 }))).toBe('ok')
    const next = await keyring.rotate(old.key.id)
    expect(next.key.credits).toEqual({ refill: { amount: 5, intervalMs: DAY } })
    expect((await keyring.credits(next.key.id))?.remaining).toBe(3)
    expect(codeOf(await keyring.verify(old.token))).toBe('ok')
    expect(codeOf(await keyring.verify(next.token))).toBe('ok')
    expect(codeOf(await keyring.verify(old.token))).toBe('ok')
    expect(codeOf(await keyring.verify(next.token))).toBe('KEYROT_CREDITS_EXHAUSTED')
    expect(codeOf(await keyring.verify(old.token))).toBe('KEYROT_CREDITS_EXHAUSTED')
    const emergency = await keyring.emergencyRotate(next.key.id, { incidentId: 'INC-1' })
    expect((await keyring.credits(emergency.key.id))?.remaining).toBe(0)
  })

  it('sets and adds credits for an operator, and refuses both on a key without credits', async () => {
    const { keyring } = setup(cacheOptions)
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci', credits: { remaining: 1 } })
    expect(codeOf(await keyring.verify(token))).toBe('ok')
    expect(codeOf(await keyring.verify(token))).toBe('KEYROT_CREDITS_EXHAUSTED')
    expect((await keyring.addCredits(key.id, 2)).remaining).toBe(2)
    expect(codeOf(await keyring.verify(token))).toBe('ok')
    expect((await keyring.setCredits(key.id, 10)).remaining).toBe(10)
    expect((await keyring.addCredits(key.id, -25)).remaining).toBe(0)
    await expect(keyring.setCredits(key.id, -1)).rejects.toThrow(InvalidInputError)
    await expect(keyring.addCredits(key.id, 0.5)).rejects.toThrow(InvalidInputError)
    const plain = await keyring.create({ tenantId: 'acme', name: 'plain' })
    await expect(keyring.setCredits(plain.key.id, 5)).rejects.toThrow(/without credits/)
  })
})

describe('decideSpend', () => {
  it('counts a missing balance as empty since now', () => {
    expect(decideSpend(null, null, 1, 10)).toEqual({ ok: false, balance: { remaining: 0, refilledAt: 10 }, state: { remaining: 0, nextRefillAt: null } })
  })

  it('keeps a balance above the refill amount at a refill', () => {
    const refill = { amount: 5, intervalMs: 100 }
    expect(decideSpend({ remaining: 50, refilledAt: 0 }, refill, 1, 250).balance).toEqual({ remaining: 49, refilledAt: 200 })
  })
})

describe('errorResponse for KEYROT_CREDITS_EXHAUSTED', () => {
  it('answers 429 with Retry-After and X-Credits-* until the next refill', () => {
    const response = errorResponse(new CreditsExhaustedError('AAAAAAAAAAAAAAAA', { remaining: 0, nextRefillAt: 90_500, now: 0 }))
    expect(response.status).toBe(429)
    expect(response.body.error.code).toBe('KEYROT_CREDITS_EXHAUSTED')
    expect(response.headers).toMatchObject({ 'retry-after': '91', 'x-credits-remaining': '0', 'x-credits-reset': '91' })
  })

  it('sends no Retry-After for a key without refill: waiting does not help', () => {
    const response = errorResponse(new CreditsExhaustedError('AAAAAAAAAAAAAAAA', { remaining: 0, nextRefillAt: null, now: 0 }))
    expect(response.headers['retry-after']).toBe(undefined)
    expect(response.headers['x-credits-remaining']).toBe('0')
  })
})
