import { afterEach, describe, expect, it } from 'vitest'
import { ManualClock } from '../clock.js'
import { FastTestHasher } from '../hash/hasher.js'
import { createKeyring, type Keyring } from './keyring.js'

const MINUTE = 60_000
const DAY = 86_400_000

const keyrings: Keyring[] = []
afterEach(async () => {
  for (const keyring of keyrings.splice(0)) await keyring.close()
})

function setup() {
  const clock = new ManualClock()
  const keyring = createKeyring({ hasher: new FastTestHasher(), clock, gracePeriod: '3d' })
  keyrings.push(keyring)
  return { clock, keyring }
}

describe('monitoring a migration', () => {
  it('tells from per-key usage whether a client moved to the new key before the grace period ends', async () => {
    const { clock, keyring } = setup()
    const old = await keyring.create({ tenantId: 'acme', name: 'billing' })
    const idle = await keyring.create({ tenantId: 'acme', name: 'forgotten' })
    const start = clock.now()

    clock.advance(MINUTE)
    await keyring.verify(old.token)
    await keyring.verify(old.token) // served from the cache: still counted
    await keyring.verify(old.token, { scopes: ['admin'] }) // refused: not a use
    const beforeRotation = clock.now()
    expect(await keyring.get(old.key.id)).toMatchObject({ usageCount: 2, lastUsedAt: beforeRotation, lastUsedInGraceAt: null })

    const next = await keyring.rotate(old.key.id)
    clock.advance(DAY)
    await keyring.verify(old.token) // the client has not migrated yet
    const lastGraceUse = clock.now()
    clock.advance(MINUTE)
    await keyring.verify(next.token) // now it has
    clock.advance(DAY)
    await keyring.verify(next.token)

    expect(await keyring.get(old.key.id)).toMatchObject({ state: 'grace', usageCount: 3, lastUsedAt: lastGraceUse, lastUsedInGraceAt: lastGraceUse })
    expect(await keyring.get(next.key.id)).toMatchObject({ state: 'active', usageCount: 2, lastUsedAt: clock.now(), lastUsedInGraceAt: null })

    // The old key stops within 7 days; the others have no expiry.
    expect((await keyring.expiringWithin('7d')).map((key) => key.id)).toEqual([old.key.id])
    const remaining = beforeRotation + 3 * DAY - clock.now()
    expect((await keyring.expiringWithin(remaining)).map((key) => key.id)).toEqual([old.key.id])
    expect(await keyring.expiringWithin(remaining - 1)).toEqual([])
    // Keys nobody used in the last day: the old one (migrated) and the one never used.
    expect((await keyring.unusedSince(clock.now() - DAY)).map((key) => key.id).sort()).toEqual([idle.key.id, old.key.id].sort())
    expect((await keyring.unusedSince(start)).map((key) => key.id)).toEqual([])
  })
})
