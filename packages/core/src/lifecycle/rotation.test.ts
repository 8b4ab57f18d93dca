import { describe, expect, it } from 'vitest'
import { ManualClock } from '../clock.js'
import { AlreadyRotatedError, InvalidInputError, KeyExpiredError, KeyNotFoundError, KeyRevokedError, type KeyrotError } from '../errors.js'
import type { KeyringEvents } from '../events.js'
import { FastTestHasher } from '../hash/hasher.js'
import type { KeyringOptions } from '../options.js'
import { MemoryStore } from '../store/memory-store.js'
import { createKeyring, type VerifyResult } from './keyring.js'

const HOUR = 3_600_000

function setup(options: KeyringOptions = {}) {
  const clock = new ManualClock()
  const store = new MemoryStore()
  const keyring = createKeyring({ clock, store, hasher: new FastTestHasher(), gracePeriod: '1h', ...options })
  return { clock, store, keyring }
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

describe.each([
  ['with the verification cache', {}],
  ['without the verification cache', { cache: { maxEntries: 0 } }],
] as const)('grace period %s', (_label, cacheOptions) => {
  it('keeps the old key valid until 1 ms before the deadline and refuses it from the deadline on', async () => {
    const { clock, keyring } = setup(cacheOptions)
    const { token: oldToken, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    clock.advance(5_000)
    const rotatedAt = clock.now()
    const { token: newToken, previous } = await keyring.rotate(key.id)
    const deadline = rotatedAt + HOUR
    expect(previous.expiresAt).toBe(deadline)
    expect(previous.state).toBe('grace')

    const during = await keyring.verify(oldToken)
    expect(during.ok && during.key.state).toBe('grace')

    clock.set(deadline - 1)
    expect(codeOf(await keyring.verify(oldToken))).toBe('ok')
    expect(codeOf(await keyring.verify(newToken))).toBe('ok')

    clock.set(deadline)
    const after = await keyring.verify(oldToken)
    expect(codeOf(after)).toBe('KEYROT_KEY_EXPIRED')
    expect(!after.ok && (after.error as KeyExpiredError).expiredAt).toBe(deadline)
    expect(codeOf(await keyring.verify(newToken))).toBe('ok')
    expect((await keyring.get(key.id))?.state).toBe('expired')
  })
})

describe('rotate', () => {
  it('issues a successor that works at once, in the same family, inheriting name, scopes and metadata', async () => {
    const { keyring } = setup()
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci', scopes: ['read', 'write'], metadata: { team: 'infra' } })
    const { token, key: next, previous } = await keyring.rotate(key.id)
    expect(next.familyId).toBe(key.familyId)
    expect(next.id).not.toBe(key.id)
    expect(next.rotatedFrom).toBe(key.id)
    expect(previous.rotatedTo).toBe(next.id)
    expect(next).toMatchObject({ tenantId: 'acme', name: 'ci', scopes: ['read', 'write'], metadata: { team: 'infra' }, state: 'active' })
    const result = await keyring.verify(token, { scopes: ['write'] })
    expect(result.ok && result.key.id).toBe(next.id)
  })

  it('applies overrides to the successor only', async () => {
    const { clock, keyring } = setup()
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci', scopes: ['read'] })
    const expiresAt = clock.now() + 30 * 24 * HOUR
    const { key: next, previous } = await keyring.rotate(key.id, { name: 'ci-2', scopes: ['admin'], metadata: { v: 2 }, expiresAt })
    expect(next).toMatchObject({ name: 'ci-2', scopes: ['admin'], metadata: { v: 2 }, expiresAt })
    expect(previous).toMatchObject({ name: 'ci', scopes: ['read'], metadata: {} })
  })

  it('gives the successor the old key’s lifetime again, counted from the rotation', async () => {
    const { clock, keyring } = setup()
    const lifetime = 90 * 24 * HOUR
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci', expiresAt: clock.now() + lifetime })
    clock.advance(10 * 24 * HOUR)
    const { key: next } = await keyring.rotate(key.id)
    expect(next.expiresAt).toBe(clock.now() + lifetime)
  })

  it('takes a per-rotation grace period, 0 ending the old key at once', async () => {
    const { clock, keyring } = setup()
    const a = await keyring.create({ tenantId: 'acme', name: 'a' })
    const b = await keyring.create({ tenantId: 'acme', name: 'b' })
    const { previous } = await keyring.rotate(a.key.id, { gracePeriod: '10m' })
    expect(previous.expiresAt).toBe(clock.now() + 600_000)
    await keyring.rotate(b.key.id, { gracePeriod: 0 })
    expect(codeOf(await keyring.verify(b.token))).toBe('KEYROT_KEY_EXPIRED')
  })

  it('never ends the grace period later than an expiry the key already had', async () => {
    const { clock, keyring } = setup({ gracePeriod: '24h' })
    const expiresAt = clock.now() + HOUR
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci', expiresAt })
    const { previous } = await keyring.rotate(key.id)
    expect(previous.expiresAt).toBe(expiresAt)
    clock.set(expiresAt)
    expect(codeOf(await keyring.verify(token))).toBe('KEYROT_KEY_EXPIRED')
  })

  it('refuses to rotate a key again while it is in grace, naming its successor', async () => {
    const { keyring } = setup()
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const { key: next } = await keyring.rotate(key.id)
    const error = await rejectionOf(keyring.rotate(key.id))
    expect(error).toBeInstanceOf(AlreadyRotatedError)
    expect(error.code).toBe('KEYROT_ALREADY_ROTATED')
    expect(error.status).toBe(409)
    expect((error as AlreadyRotatedError).rotatedTo).toBe(next.id)
    expect(await keyring.list()).toHaveLength(2)
  })

  it('rotates the successor while the old key is in grace without moving the old deadline', async () => {
    const { clock, keyring } = setup()
    const first = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const second = await keyring.rotate(first.key.id, { gracePeriod: '1h' })
    const firstDeadline = second.previous.expiresAt as number
    clock.advance(10 * 60_000)
    const third = await keyring.rotate(second.key.id, { gracePeriod: '24h' })
    expect(third.previous.expiresAt).toBe(clock.now() + 24 * HOUR)
    expect((await keyring.get(first.key.id))?.expiresAt).toBe(firstDeadline)

    clock.set(firstDeadline - 1)
    for (const token of [first.token, second.token, third.token]) expect(codeOf(await keyring.verify(token))).toBe('ok')
    clock.set(firstDeadline)
    expect(codeOf(await keyring.verify(first.token))).toBe('KEYROT_KEY_EXPIRED')
    expect(codeOf(await keyring.verify(second.token))).toBe('ok')
    expect(codeOf(await keyring.verify(third.token))).toBe('ok')
  })

  it('lets exactly one of 10 concurrent rotations of a key succeed', async () => {
    const { keyring, store } = setup()
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const outcomes = await Promise.allSettled(Array.from({ length: 10 }, () => keyring.rotate(key.id)))
    const fulfilled = outcomes.filter((outcome) => outcome.status === 'fulfilled')
    const rejected = outcomes.flatMap((outcome) => (outcome.status === 'rejected' ? [outcome.reason as unknown] : []))
    expect(fulfilled).toHaveLength(1)
    expect(rejected).toHaveLength(9)
    for (const reason of rejected) expect(reason).toBeInstanceOf(AlreadyRotatedError)
    expect(store.size).toBe(2)
    const winner = fulfilled[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof keyring.rotate>>>
    expect((await keyring.get(key.id))?.rotatedTo).toBe(winner.value.key.id)
    expect(codeOf(await keyring.verify(winner.value.token))).toBe('ok')
  })

  it('refuses to rotate a revoked, an expired or an unknown key', async () => {
    const { clock, keyring } = setup()
    const revoked = await keyring.create({ tenantId: 'acme', name: 'revoked' })
    await keyring.revoke(revoked.key.id)
    expect(await rejectionOf(keyring.rotate(revoked.key.id))).toBeInstanceOf(KeyRevokedError)
    const expiring = await keyring.create({ tenantId: 'acme', name: 'expiring', expiresAt: clock.now() + 1_000 })
    clock.advance(1_000)
    expect(await rejectionOf(keyring.rotate(expiring.key.id))).toBeInstanceOf(KeyExpiredError)
    expect(await rejectionOf(keyring.rotate('AAAAAAAAAAAAAAAA'))).toBeInstanceOf(KeyNotFoundError)
  })

  it('leaves the old key untouched when the rotation input is invalid', async () => {
    const { clock, keyring } = setup()
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const cases: [Parameters<typeof keyring.rotate>[1], string][] = [
      [{ gracePeriod: 'a while' }, 'gracePeriod'],
      [{ scopes: ['no spaces'] }, 'scopes'],
      [{ expiresAt: clock.now() - 1 }, 'expiresAt'],
      [{ name: '' }, 'name'],
      [{ metadata: [] as never }, 'metadata'],
    ]
    for (const [options, field] of cases) {
      const error = await rejectionOf(keyring.rotate(key.id, options))
      expect(error).toBeInstanceOf(InvalidInputError)
      expect((error as InvalidInputError).field).toBe(field)
    }
    expect((await keyring.get(key.id))?.state).toBe('active')
    expect(await keyring.list()).toHaveLength(1)
  })

  it('announces the rotation with both keys and the grace period', async () => {
    const { keyring } = setup()
    const events: KeyringEvents['key.rotated'][] = []
    keyring.on('key.rotated', (event) => events.push(event))
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const { key: next } = await keyring.rotate(key.id, { gracePeriod: '2h' })
    expect(events).toHaveLength(1)
    expect(events[0]).toMatchObject({ previous: { id: key.id, state: 'grace' }, next: { id: next.id }, gracePeriodMs: 2 * HOUR })
  })
})

describe('emergencyRotate', () => {
  it('revokes the old key at once, issues a working successor and records the incident', async () => {
    const { clock, keyring } = setup()
    const events: KeyringEvents['key.emergency_rotated'][] = []
    keyring.on('key.emergency_rotated', (event) => events.push(event))
    const { token: oldToken, key } = await keyring.create({ tenantId: 'acme', name: 'ci', scopes: ['read'] })
    expect(codeOf(await keyring.verify(oldToken))).toBe('ok') // now cached

    const { token, key: next, revoked } = await keyring.emergencyRotate(key.id, { incidentId: 'INC-42' })
    expect(revoked).toMatchObject({ id: key.id, state: 'revoked', revokedAt: clock.now(), incidentId: 'INC-42', rotatedTo: next.id })
    expect(revoked.revokedReason).toBe('emergency rotation (INC-42)')
    expect(codeOf(await keyring.verify(oldToken))).toBe('KEYROT_KEY_REVOKED')
    const fresh = await keyring.verify(token, { scopes: ['read'] })
    expect(fresh.ok && fresh.key.id).toBe(next.id)
    expect((await keyring.get(key.id))?.incidentId).toBe('INC-42')
    expect(events).toEqual([expect.objectContaining({ incidentId: 'INC-42', revoked: expect.objectContaining({ id: key.id }) })])
  })

  it('keeps a given reason', async () => {
    const { keyring } = setup()
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const { revoked } = await keyring.emergencyRotate(key.id, { incidentId: 'INC-1', reason: 'pasted in a public issue' })
    expect(revoked.revokedReason).toBe('pasted in a public issue')
  })

  it('requires an incident id', async () => {
    const { keyring } = setup()
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    for (const incidentId of [undefined, '', '   ', 42]) {
      const error = await rejectionOf(keyring.emergencyRotate(key.id, { incidentId } as never))
      expect(error).toBeInstanceOf(InvalidInputError)
      expect((error as InvalidInputError).field).toBe('incidentId')
    }
    expect((await keyring.get(key.id))?.state).toBe('active')
  })

  it('refuses a key in grace and points to revoke', async () => {
    const { keyring } = setup()
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    await keyring.rotate(key.id)
    const error = await rejectionOf(keyring.emergencyRotate(key.id, { incidentId: 'INC-7' }))
    expect(error).toBeInstanceOf(AlreadyRotatedError)
    expect(error.message).toMatch(/revoke it/)
  })
})
