import { describe, expect, it } from 'vitest'
import { ManualClock } from '../clock.js'
import { InvalidInputError } from '../errors.js'
import { FastTestHasher } from '../hash/hasher.js'
import { createKeyring } from './keyring.js'

const HOUR = 3_600_000

/** Four keys of acme (active, grace, revoked, expired) plus one of globex, one hour apart. */
async function fleet() {
  const clock = new ManualClock()
  const keyring = createKeyring({ clock, hasher: new FastTestHasher(), gracePeriod: '6h' })
  const active = await keyring.create({ tenantId: 'acme', name: 'active', expiresAt: clock.now() + 48 * HOUR })
  clock.advance(HOUR)
  const rotated = await keyring.create({ tenantId: 'acme', name: 'rotated' })
  clock.advance(HOUR)
  const revoked = await keyring.create({ tenantId: 'acme', name: 'revoked' })
  clock.advance(HOUR)
  const expiring = await keyring.create({ tenantId: 'acme', name: 'expiring', expiresAt: clock.now() + HOUR })
  clock.advance(HOUR)
  const other = await keyring.create({ tenantId: 'globex', name: 'other' })
  clock.advance(HOUR)
  const successor = await keyring.rotate(rotated.key.id)
  await keyring.revoke(revoked.key.id)
  return { clock, keyring, active, rotated, revoked, expiring, other, successor }
}

describe('reading keys', () => {
  it('get returns the key with its current state and never its hash', async () => {
    const { keyring, rotated } = await fleet()
    const key = await keyring.get(rotated.key.id)
    expect(key).toMatchObject({ id: rotated.key.id, state: 'grace', tenantId: 'acme' })
    expect(key).not.toHaveProperty('hash')
  })

  it('get returns null for an unknown or absurd id', async () => {
    const { keyring } = await fleet()
    expect(await keyring.get('AAAAAAAAAAAAAAAA')).toBeNull()
    expect(await keyring.get('x'.repeat(10_000))).toBeNull()
    expect(await keyring.get(42 as never)).toBeNull()
  })

  it('list returns a tenant’s keys newest first, filtered by state and limited', async () => {
    const { keyring, active, rotated, revoked, expiring, successor } = await fleet()
    const acme = await keyring.list({ tenantId: 'acme' })
    expect(acme.map((key) => key.id)).toEqual([successor.key.id, expiring.key.id, revoked.key.id, rotated.key.id, active.key.id])
    expect(acme.map((key) => key.state)).toEqual(['active', 'expired', 'revoked', 'grace', 'active'])
    expect((await keyring.list({ tenantId: 'acme', state: 'active' })).map((key) => key.id)).toEqual([successor.key.id, active.key.id])
    expect(await keyring.list({ tenantId: 'acme', limit: 2 })).toHaveLength(2)
    expect(await keyring.list()).toHaveLength(6)
    for (const key of await keyring.list()) expect(key).not.toHaveProperty('hash')
  })

  it('list refuses an invalid tenant id', async () => {
    const { keyring } = await fleet()
    await expect(keyring.list({ tenantId: 'not a tenant' })).rejects.toBeInstanceOf(InvalidInputError)
  })

  it('expiringWithin lists working keys that stop within the window, soonest first', async () => {
    const { clock, keyring, active, rotated } = await fleet()
    // rotated ends in 6h (grace), active in 48h - 5h = 43h; expiring already ended, revoked and no-expiry keys never show.
    expect((await keyring.expiringWithin('6h')).map((key) => key.id)).toEqual([rotated.key.id])
    expect((await keyring.expiringWithin('2d')).map((key) => key.id)).toEqual([rotated.key.id, active.key.id])
    expect(await keyring.expiringWithin('2d', { tenantId: 'globex' })).toEqual([])
    expect(await keyring.expiringWithin(6 * HOUR - 1)).toEqual([])
    clock.advance(6 * HOUR)
    expect((await keyring.expiringWithin('2d')).map((key) => key.id)).toEqual([active.key.id])
  })

  it('expiringWithin refuses a bad window', async () => {
    const { keyring } = await fleet()
    const error = await keyring.expiringWithin('soon').catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(InvalidInputError)
    expect((error as InvalidInputError).field).toBe('window')
  })

  it('unusedSince lists working keys not used since a time', async () => {
    const { clock, keyring, active, rotated, other, successor } = await fleet()
    const since = clock.now()
    clock.advance(1_000)
    expect((await keyring.verify(active.token)).ok).toBe(true)
    expect((await keyring.verify(rotated.token)).ok).toBe(true)
    const unused = (await keyring.unusedSince(since)).map((key) => key.id)
    // successor was created exactly at `since`, which is not before it.
    expect(unused).toEqual([other.key.id])
    expect((await keyring.unusedSince(new Date(clock.now() + 1), { tenantId: 'acme' })).map((key) => key.id).sort()).toEqual(
      [active.key.id, rotated.key.id, successor.key.id].sort(),
    )
  })
})
