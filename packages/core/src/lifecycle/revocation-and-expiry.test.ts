import { describe, expect, it } from 'vitest'
import { ManualClock } from '../clock.js'
import { InvalidInputError, KeyNotFoundError, KeyRevokedError, type KeyrotError } from '../errors.js'
import type { KeyringEvents } from '../events.js'
import { FastTestHasher } from '../hash/hasher.js'
import type { RateLimiter } from '../rate-limit/limiter.js'
import { MemoryRateLimiter } from '../rate-limit/memory-limiter.js'
import { MemoryStore } from '../store/memory-store.js'
import { createKeyring, type VerifyResult } from './keyring.js'

const HOUR = 3_600_000

function setup() {
  const clock = new ManualClock()
  // A long state TTL: every change below must reach verify through invalidation, not expiry of the cache.
  const keyring = createKeyring({ clock, hasher: new FastTestHasher(), gracePeriod: '1h', cache: { stateTtl: '1d' } })
  return { clock, keyring }
}

function codeOf(result: VerifyResult): string {
  return result.ok ? 'ok' : result.error.code
}

async function rejectionOf(promise: Promise<unknown>): Promise<KeyrotError> {
  try {
    await promise
  } catch (error) {
    return error as KeyrotError
  }
  throw new Error('expected the promise to reject')
}

describe('revoke', () => {
  it('stops a cached key on the next verify', async () => {
    const { clock, keyring } = setup()
    const events: KeyringEvents['key.revoked'][] = []
    keyring.on('key.revoked', (event) => events.push(event))
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    expect(codeOf(await keyring.verify(token))).toBe('ok')
    expect(await keyring.verify(token)).toMatchObject({ ok: true, cached: true })

    const revoked = await keyring.revoke(key.id, { reason: 'left the company' })
    expect(revoked).toMatchObject({ state: 'revoked', revokedAt: clock.now(), revokedReason: 'left the company' })
    const result = await keyring.verify(token)
    expect(codeOf(result)).toBe('KEYROT_KEY_REVOKED')
    expect(!result.ok && (result.error as KeyRevokedError).reason).toBe('left the company')
    expect(events).toEqual([expect.objectContaining({ reason: 'left the company', key: expect.objectContaining({ id: key.id }) })])
  })

  it('is idempotent and keeps the first reason and time', async () => {
    const { clock, keyring } = setup()
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const first = await keyring.revoke(key.id, { reason: 'first' })
    clock.advance(1_000)
    const second = await keyring.revoke(key.id, { reason: 'second' })
    expect(second.revokedReason).toBe('first')
    expect(second.revokedAt).toBe(first.revokedAt)
  })

  it('revokes a key in grace at once, leaving its successor working', async () => {
    const { keyring } = setup()
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const next = await keyring.rotate(key.id)
    expect(codeOf(await keyring.verify(token))).toBe('ok')
    await keyring.revoke(key.id)
    expect(codeOf(await keyring.verify(token))).toBe('KEYROT_KEY_REVOKED')
    expect(codeOf(await keyring.verify(next.token))).toBe('ok')
  })

  it('refuses an unknown key id and a malformed one', async () => {
    const { keyring } = setup()
    expect(await rejectionOf(keyring.revoke('AAAAAAAAAAAAAAAA'))).toBeInstanceOf(KeyNotFoundError)
    const error = await rejectionOf(keyring.revoke('' as string))
    expect(error).toBeInstanceOf(InvalidInputError)
    expect((error as InvalidInputError).field).toBe('keyId')
    const bad = await rejectionOf(keyring.revoke(42 as never))
    expect((bad as InvalidInputError).field).toBe('keyId')
  })

  it('refuses a reason with control characters', async () => {
    const { keyring } = setup()
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const error = await rejectionOf(keyring.revoke(key.id, { reason: 'line\nbreak' }))
    expect((error as InvalidInputError).field).toBe('reason')
    expect((await keyring.get(key.id))?.state).toBe('active')
  })
})

describe('setExpiry, endGrace and extendGrace', () => {
  it('setExpiry gives an active key a deadline that holds to the millisecond', async () => {
    const { clock, keyring } = setup()
    const events: KeyringEvents['key.expiry_changed'][] = []
    keyring.on('key.expiry_changed', (event) => events.push(event))
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    expect(codeOf(await keyring.verify(token))).toBe('ok')
    const deadline = clock.now() + 2 * HOUR
    const changed = await keyring.setExpiry(key.id, new Date(deadline))
    expect(changed.expiresAt).toBe(deadline)
    clock.set(deadline - 1)
    expect(codeOf(await keyring.verify(token))).toBe('ok')
    clock.set(deadline)
    expect(codeOf(await keyring.verify(token))).toBe('KEYROT_KEY_EXPIRED')
    expect(events).toEqual([expect.objectContaining({ previousExpiresAt: null, key: expect.objectContaining({ expiresAt: deadline }) })])
  })

  it('setExpiry(null) removes an expiry, but not a grace deadline', async () => {
    const { clock, keyring } = setup()
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci', expiresAt: clock.now() + HOUR })
    expect((await keyring.setExpiry(key.id, null)).expiresAt).toBeNull()
    await keyring.rotate(key.id)
    const error = await rejectionOf(keyring.setExpiry(key.id, null))
    expect(error).toBeInstanceOf(InvalidInputError)
    expect((error as InvalidInputError).field).toBe('expiresAt')
  })

  it('setExpiry refuses a revoked key and an invalid time', async () => {
    const { keyring } = setup()
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    for (const value of ['next tuesday', Number.NaN, -1, {} as never]) {
      const error = await rejectionOf(keyring.setExpiry(key.id, value))
      expect((error as InvalidInputError).field).toBe('expiresAt')
    }
    await keyring.revoke(key.id)
    expect(await rejectionOf(keyring.setExpiry(key.id, Date.UTC(2031, 0, 1)))).toBeInstanceOf(KeyRevokedError)
  })

  it('endGrace stops a cached key in grace at once', async () => {
    const { keyring } = setup()
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const next = await keyring.rotate(key.id)
    expect(codeOf(await keyring.verify(token))).toBe('ok')
    const ended = await keyring.endGrace(key.id)
    expect(ended.state).toBe('expired')
    expect(codeOf(await keyring.verify(token))).toBe('KEYROT_KEY_EXPIRED')
    expect(codeOf(await keyring.verify(next.token))).toBe('ok')
  })

  it('extendGrace moves the deadline from the current one', async () => {
    const { clock, keyring } = setup()
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const { previous } = await keyring.rotate(key.id)
    const deadline = previous.expiresAt as number
    expect(codeOf(await keyring.verify(token))).toBe('ok')
    const extended = await keyring.extendGrace(key.id, '30m')
    expect(extended.expiresAt).toBe(deadline + 1_800_000)
    clock.set(deadline)
    expect(codeOf(await keyring.verify(token))).toBe('ok')
    clock.set(deadline + 1_800_000)
    expect(codeOf(await keyring.verify(token))).toBe('KEYROT_KEY_EXPIRED')
  })

  it('extendGrace after the deadline counts from now', async () => {
    const { clock, keyring } = setup()
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const { previous } = await keyring.rotate(key.id)
    clock.set((previous.expiresAt as number) + 5_000)
    expect((await keyring.extendGrace(key.id, 60_000)).expiresAt).toBe(clock.now() + 60_000)
  })

  it('extendGrace refuses a bad duration', async () => {
    const { keyring } = setup()
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    await keyring.rotate(key.id)
    const error = await rejectionOf(keyring.extendGrace(key.id, 'longer'))
    expect(error).toBeInstanceOf(InvalidInputError)
    expect((error as InvalidInputError).field).toBe('by')
  })
})

/**
 * An in-process limiter whose `admit` or `consume` answers 30 ms later (as a shared one does after a round trip), with
 * no clientsClean() shortcut.
 */
function slowLimiter(clock: ManualClock, slow: 'admit' | 'consume'): RateLimiter {
  const inner = new MemoryRateLimiter()
  const later = async <T>(answer: () => T): Promise<T> => {
    clock.advance(30)
    return answer()
  }
  return {
    admit: (attempt, limits, now) => (slow === 'admit' ? later(() => inner.admit(attempt, limits, now)) : inner.admit(attempt, limits, now)),
    release: (charge, limits, now) => inner.release(charge, limits, now),
    consume: (keyId, quota, now) => (slow === 'consume' ? later(() => inner.consume(keyId, quota, now)) : inner.consume(keyId, quota, now)),
  }
}

describe('a deadline that passes while verify waits', () => {
  it('is believed even when the answer arrives later than the verify began', async () => {
    // As the Redis store does when Redis dropped the credential: expiresAt is
    // "just before the store was asked", which a slow admission or event loop
    // can put after the verify read its clock.
    const clock = new ManualClock()
    const store = new MemoryStore()
    const keyring = createKeyring({ clock, store, hasher: new FastTestHasher(), cache: { stateTtl: 0 } })
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'short-lived', expiresAt: clock.now() + HOUR })
    expect(codeOf(await keyring.verify(token))).toBe('ok')
    const read = store.get.bind(store)
    store.get = async (keyId) => {
      clock.advance(5)
      const record = await read(keyId)
      return record && { ...record, expiresAt: clock.now() - 1 }
    }
    const result = await keyring.verify(token)
    expect(codeOf(result)).toBe('KEYROT_KEY_EXPIRED')
    expect(key.expiresAt).toBeGreaterThan(clock.now())
  })

  it('refuses a key whose deadline passed while its secret was being proven (Argon2)', async () => {
    const clock = new ManualClock()
    class SlowHasher extends FastTestHasher {
      override async verify(hash: string, token: string): Promise<boolean> {
        clock.advance(50) // the proof's time, or its wait in the queue
        return super.verify(hash, token)
      }
    }
    const keyring = createKeyring({ clock, hasher: new SlowHasher(), proofKey: null })
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci', expiresAt: clock.now() + 20 })
    expect(codeOf(await keyring.verify(token))).toBe('KEYROT_KEY_EXPIRED')
    await keyring.close()
  })

  it.each([
    ['answered its admission', 'admit'],
    ['counted its quota', 'consume'],
  ] as const)('refuses a cached key whose deadline passed while a shared rate limiter %s', async (_waited, slow) => {
    const clock = new ManualClock()
    const keyring = createKeyring({ clock, hasher: new FastTestHasher(), proofKey: null, rateLimit: { limiter: slowLimiter(clock, slow) }, cache: { stateTtl: '1d' } })
    const deadline = clock.now() + 1_000
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci', expiresAt: deadline })
    // With a client IP, so admission asks the limiter (a proven token meets the IP limits).
    const client = { clientIp: '203.0.113.7' }
    expect(codeOf(await keyring.verify(token, client))).toBe('ok')
    // The verify begins 10 ms before the deadline; the limiter answers 20 ms after it.
    clock.set(deadline - 10)
    expect(codeOf(await keyring.verify(token, client))).toBe('KEYROT_KEY_EXPIRED')
    await keyring.close()
  })

  it("refuses a key whose deadline passed while its tenant's rotation policy was read", async () => {
    const clock = new ManualClock()
    const store = new MemoryStore()
    const keyring = createKeyring({ clock, store, hasher: new FastTestHasher(), proofKey: null, rateLimit: false, policy: { maxAge: '90d' } })
    const deadline = clock.now() + 1_000
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci', expiresAt: deadline })
    // The first sight of a tenant reads its policy from the store, after the key's state was judged.
    const read = store.getTenantPolicy.bind(store)
    store.getTenantPolicy = async (tenantId) => {
      clock.set(deadline + 5)
      return read(tenantId)
    }
    clock.set(deadline - 10)
    expect(codeOf(await keyring.verify(token))).toBe('KEYROT_KEY_EXPIRED')
    await keyring.close()
  })
})
