import { afterEach, describe, expect, it, vi } from 'vitest'
import { ManualClock } from '../clock.js'
import { StoreUnavailableError } from '../errors.js'
import type { KeyringEvents } from '../events.js'
import { FastTestHasher } from '../hash/hasher.js'
import type { Logger } from '../logger.js'
import { MemoryStore } from '../store/memory-store.js'
import { watchExpiry, type ExpiryWatcher } from './expiry-watcher.js'
import { createKeyring, type Keyring } from './keyring.js'

const HOUR = 3_600_000
const DAY = 24 * HOUR

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  vi.useRealTimers()
})

function setup(options: { logger?: Logger } = {}) {
  const clock = new ManualClock()
  const store = new MemoryStore()
  const keyring = createKeyring({ store, hasher: new FastTestHasher(), clock, gracePeriod: '24h', ...options })
  cleanups.push(() => keyring.close())
  const graceEnding: Array<KeyringEvents['key.grace_ending_soon']> = []
  const expiring: Array<KeyringEvents['key.expiring_soon']> = []
  keyring.on('key.grace_ending_soon', (e) => graceEnding.push(e))
  keyring.on('key.expiring_soon', (e) => expiring.push(e))
  return { clock, store, keyring, graceEnding, expiring }
}

function watch(keyring: Keyring, options: Parameters<typeof watchExpiry>[1] = {}): ExpiryWatcher {
  const watcher = watchExpiry(keyring, { interval: 0, ...options })
  cleanups.push(() => watcher.stop())
  return watcher
}

describe('watchExpiry', () => {
  it('announces a grace period ending within the threshold, once per key and deadline', async () => {
    const { clock, keyring, graceEnding } = setup()
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const next = await keyring.rotate(key.id)
    await keyring.verify(token)
    const watcher = watch(keyring, { graceEndingWithin: '1h' })

    await watcher.tick()
    expect(graceEnding).toEqual([])

    clock.advance(23 * HOUR - 1)
    await watcher.tick()
    expect(graceEnding).toEqual([])

    clock.advance(1)
    await watcher.tick()
    await watcher.tick()
    clock.advance(30 * 60_000)
    await watcher.tick()
    expect(graceEnding).toEqual([
      {
        keyId: key.id,
        tenantId: 'acme',
        rotatedTo: next.key.id,
        expiresAt: key.createdAt + DAY,
        remainingMs: HOUR,
        lastUsedInGraceAt: key.createdAt,
        at: key.createdAt + 23 * HOUR,
      },
    ])
  })

  it('announces again after the deadline moves, and never for an expired or revoked key', async () => {
    const { clock, keyring, graceEnding } = setup()
    const a = await keyring.create({ tenantId: 'acme', name: 'a' })
    const b = await keyring.create({ tenantId: 'acme', name: 'b' })
    await keyring.rotate(a.key.id, { gracePeriod: '30m' })
    await keyring.rotate(b.key.id, { gracePeriod: '30m' })
    await keyring.revoke(b.key.id)
    const watcher = watch(keyring, { graceEndingWithin: '1h' })

    await watcher.tick()
    expect(graceEnding.map((e) => e.keyId)).toEqual([a.key.id])
    expect(graceEnding[0]?.lastUsedInGraceAt).toBeNull()

    await keyring.extendGrace(a.key.id, '2h') // now 2h30m away: out of the window
    await watcher.tick()
    clock.advance(90 * 60_000 + 1) // back within 1h of the new deadline
    await watcher.tick()
    expect(graceEnding.map((e) => e.expiresAt)).toEqual([a.key.createdAt + 30 * 60_000, a.key.createdAt + 150 * 60_000])

    clock.advance(2 * HOUR)
    await watcher.tick()
    expect(graceEnding).toHaveLength(2)
  })

  it('announces active keys expiring within the threshold, not keys in grace', async () => {
    const { clock, keyring, expiring, graceEnding } = setup()
    const soon = await keyring.create({ tenantId: 'acme', name: 'soon', expiresAt: clock.now() + 5 * DAY })
    await keyring.create({ tenantId: 'acme', name: 'later', expiresAt: clock.now() + 30 * DAY })
    await keyring.create({ tenantId: 'acme', name: 'never' })
    const watcher = watch(keyring, { expiringWithin: '7d', graceEndingWithin: 0 })

    await watcher.tick()
    expect(expiring).toEqual([
      { keyId: soon.key.id, tenantId: 'acme', expiresAt: soon.key.expiresAt, remainingMs: 5 * DAY, lastUsedAt: null, at: soon.key.createdAt },
    ])
    const next = await keyring.rotate(soon.key.id, { gracePeriod: '1h' })
    await watcher.tick()
    // The successor inherits the 5-day lifetime; the old key, now in grace, is not announced again.
    expect(expiring.map((e) => e.keyId)).toEqual([soon.key.id, next.key.id])
    expect(graceEnding).toEqual([]) // graceEndingWithin: 0 disables grace notices
  })

  it('watches one tenant when asked', async () => {
    const { clock, keyring, expiring } = setup()
    await keyring.create({ tenantId: 'acme', name: 'a', expiresAt: clock.now() + DAY })
    const g = await keyring.create({ tenantId: 'globex', name: 'g', expiresAt: clock.now() + DAY })
    await watch(keyring, { tenantId: 'globex' }).tick()
    expect(expiring.map((e) => e.keyId)).toEqual([g.key.id])
  })

  it('does not read the store while nobody listens', async () => {
    const clock = new ManualClock()
    const store = new MemoryStore()
    const keyring = createKeyring({ store, hasher: new FastTestHasher(), clock })
    cleanups.push(() => keyring.close())
    const list = vi.spyOn(store, 'list')
    const watcher = watch(keyring)
    await watcher.tick()
    expect(list).not.toHaveBeenCalled()
    const seen: string[] = []
    keyring.on('key.expiring_soon', (e) => seen.push(e.keyId))
    const { key } = await keyring.create({ tenantId: 'acme', name: 'a', expiresAt: clock.now() + DAY })
    await watcher.tick()
    expect(list).toHaveBeenCalledTimes(1)
    expect(seen).toEqual([key.id])
  })

  it('runs on an unref’d timer that stop() ends, and logs a failed check', async () => {
    vi.useFakeTimers()
    const warnings: object[] = []
    const logger: Logger = { info() {}, warn: (obj) => warnings.push(obj), error() {} }
    const { clock, store, keyring, expiring } = setup({ logger })
    const { key } = await keyring.create({ tenantId: 'acme', name: 'a', expiresAt: clock.now() + DAY })
    const unref = vi.spyOn(globalThis, 'setInterval')
    const watcher = watchExpiry(keyring, { interval: '1m' })
    cleanups.push(() => watcher.stop())
    const timer = unref.mock.results[0]?.value as NodeJS.Timeout
    expect(timer.hasRef()).toBe(false)

    await vi.advanceTimersByTimeAsync(0) // the first check runs at once
    expect(expiring.map((e) => e.keyId)).toEqual([key.id])

    const list = store.list.bind(store)
    store.list = async () => {
      throw new StoreUnavailableError('down for the test')
    }
    await vi.advanceTimersByTimeAsync(60_000)
    expect(warnings).toMatchObject([{ event: 'expiry_watcher.check_failed', err: { code: 'KEYROT_STORE_UNAVAILABLE' } }])
    store.list = list

    watcher.stop()
    const calls = vi.spyOn(store, 'list')
    await vi.advanceTimersByTimeAsync(10 * 60_000)
    expect(calls).not.toHaveBeenCalled()
  })

  it('rejects impossible options with a TypeError naming the option', () => {
    const { keyring } = setup()
    expect(() => watchExpiry(keyring, { interval: '1 fortnight' })).toThrow(/interval/)
    expect(() => watchExpiry(keyring, { interval: '30d' })).toThrow(/interval/)
    expect(() => watchExpiry(keyring, { graceEndingWithin: -1 })).toThrow(/graceEndingWithin/)
    expect(() => watchExpiry(keyring, { graceEndingWithin: 0, expiringWithin: 0 })).toThrow(/both be 0/)
    expect(() => watchExpiry(keyring, { tenantId: '' })).toThrow(/tenantId/)
  })
})
