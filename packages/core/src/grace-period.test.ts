import { describe, expect, it } from 'vitest'
import { createKeyring, FastTestHasher, InvalidInputError, ManualClock } from './index.js'

// Bare numbers are milliseconds, but a grace period of a few ms is almost
// surely seconds meant: refused unless written with a unit.

describe('grace periods under 1 s', () => {
  const clock = new ManualClock(Date.UTC(2030, 0, 1))
  const keyring = createKeyring({ hasher: new FastTestHasher(), clock })

  it.each([5, 1, 999, 0.5])('rotate(id, { gracePeriod: %s }) is refused, suggesting a unit', async (gracePeriod) => {
    const { key } = await keyring.create({ tenantId: 'acme', name: 'short' })
    const refused = keyring.rotate(key.id, { gracePeriod })
    await expect(refused).rejects.toBeInstanceOf(InvalidInputError)
    await expect(keyring.rotate(key.id, { gracePeriod })).rejects.toThrow(`Invalid gracePeriod: ${gracePeriod} means ${gracePeriod} ms`)
    await expect(keyring.rotate(key.id, { gracePeriod })).rejects.toThrow(`'${gracePeriod}s'`)
    // Nothing was rotated.
    expect((await keyring.get(key.id))?.rotatedTo).toBeNull()
  })

  it.each<[number | string, number]>([
    [0, 0],
    [1_000, 1_000],
    ['500ms', 500],
    ['5s', 5_000],
    [60_000, 60_000],
  ])('rotate(id, { gracePeriod: %j }) is accepted (%i ms)', async (gracePeriod, ms) => {
    const { key } = await keyring.create({ tenantId: 'acme', name: 'fine' })
    const { previous } = await keyring.rotate(key.id, { gracePeriod })
    expect(previous.expiresAt).toBe(clock.now() + ms)
  })

  it('createKeyring({ gracePeriod: 5 }) throws a TypeError naming the option; with a unit it is taken', () => {
    expect(() => createKeyring({ hasher: new FastTestHasher(), gracePeriod: 5 })).toThrow(TypeError)
    expect(() => createKeyring({ hasher: new FastTestHasher(), gracePeriod: 5 })).toThrow(/^gracePeriod: 5 means 5 ms/)
    expect(createKeyring({ hasher: new FastTestHasher(), gracePeriod: '5ms' }).options.gracePeriodMs).toBe(5)
    expect(createKeyring({ hasher: new FastTestHasher(), gracePeriod: 0 }).options.gracePeriodMs).toBe(0)
  })

  it('extendGrace names its parameter and the call when the value is refused', async () => {
    const { key } = await keyring.create({ tenantId: 'acme', name: 'extend' })
    await keyring.rotate(key.id)
    await expect(keyring.extendGrace(key.id, '5 minutes')).rejects.toThrow(/^Invalid by: extendGrace\(keyId, by\) takes the time to add: must be .*got "5 minutes"/)
    await expect(keyring.extendGrace(key.id, 5)).rejects.toThrow(/^Invalid by: extendGrace\(keyId, by\) takes the time to add: 5 means 5 ms/)
    await expect(keyring.extendGrace(key.id, '5m')).resolves.toMatchObject({ id: key.id })
  })
})
