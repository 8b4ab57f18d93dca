import { Registry } from 'prom-client'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { ManualClock } from '../clock.js'
import { StoreUnavailableError } from '../errors.js'
import type { KeyringEvents } from '../events.js'
import { FastTestHasher } from '../hash/hasher.js'
import { createMetrics } from '../metrics/metrics.js'
import type { KeyringOptions } from '../options.js'
import { MemoryStore } from '../store/memory-store.js'
import type { InvalidationEvent, InvalidationListener, KeyStore } from '../store/store.js'
import type { KeyRecord } from '../types.js'
import { createKeyring, type VerifyResult } from './keyring.js'

/** A MemoryStore whose reads can fail like an unreachable Redis, with a feed the test drives. */
class OutageStore implements KeyStore {
  readonly inner = new MemoryStore()
  down = false
  live = true
  reads = 0
  /** Called at each read before it answers or fails: a test advances its clock here, as a slow read or a timeout takes time. */
  onRead: () => void = () => undefined
  readonly #listeners = new Set<InvalidationListener>()

  async get(keyId: string): Promise<KeyRecord | null> {
    this.reads++
    this.onRead()
    if (this.down) throw new StoreUnavailableError('The Redis store did not read a key within 500 ms.', { keyId })
    return this.inner.get(keyId)
  }
  insert = (record: KeyRecord) => this.inner.insert(record)
  rotate: KeyStore['rotate'] = (input) => this.inner.rotate(input)
  revoke: KeyStore['revoke'] = (input) => this.inner.revoke(input)
  emergencyRotate: KeyStore['emergencyRotate'] = (input) => this.inner.emergencyRotate(input)
  setExpiry: KeyStore['setExpiry'] = (keyId, at) => this.inner.setExpiry(keyId, at)
  updateHash: KeyStore['updateHash'] = (keyId, hash) => this.inner.updateHash(keyId, hash)
  recordUsage: KeyStore['recordUsage'] = (keyId, at, inGrace) => this.inner.recordUsage(keyId, at, inGrace)
  list: KeyStore['list'] = (query) => this.inner.list(query)
  close = () => this.inner.close()
  subscribe(listener: InvalidationListener): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }
  invalidationLive(): boolean {
    return this.live
  }
  /** A message of the feed, as another replica's change would arrive. */
  publish(event: InvalidationEvent): void {
    for (const listener of this.#listeners) listener(event)
  }
}

function setup(cache: KeyringOptions['cache'] = {}) {
  const clock = new ManualClock()
  const store = new OutageStore()
  const keyring = createKeyring({ clock, store, hasher: new FastTestHasher(), rateLimit: false, cache: { stateTtl: '5s', staleIfError: '30s', ...cache } })
  return { clock, store, keyring }
}

async function outcome(promise: Promise<VerifyResult>): Promise<string> {
  try {
    const result = await promise
    return result.ok ? 'ok' : result.error.code
  } catch (error) {
    return `throws ${(error as StoreUnavailableError).code}`
  }
}

afterEach(() => {
  vi.useRealTimers()
})

describe('stale-if-error', () => {
  it('keeps a confirmed key verifying for staleIfError after its last store read, then fails closed', async () => {
    const { clock, store, keyring } = setup()
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    expect(await outcome(keyring.verify(token))).toBe('ok')
    store.down = true
    clock.advance(6_000) // past cache.stateTtl: a store read is needed
    const stale = await keyring.verify(token)
    expect(stale.ok && stale.cached).toBe(true)
    clock.advance(24_000) // 30 s after the read
    expect(await outcome(keyring.verify(token))).toBe('ok')
    clock.advance(1)
    expect(await outcome(keyring.verify(token))).toBe('throws KEYROT_STORE_UNAVAILABLE')
    expect(keyring.outageStats()).toMatchObject({ storeUp: false, storeOutages: 1, staleVerifications: 2 })
    await keyring.close()
  })

  it('counts a cache hit while the invalidation feed is live as a confirmation, and one while it is down as none', async () => {
    for (const live of [true, false]) {
      const { clock, store, keyring } = setup()
      const { token } = await keyring.create({ tenantId: 'acme', name: 'ci' })
      expect(await outcome(keyring.verify(token))).toBe('ok')
      clock.advance(4_000)
      store.live = live
      expect(await outcome(keyring.verify(token))).toBe('ok') // a cache hit, no read
      store.down = true
      clock.advance(30_000) // 34 s after the read, 30 s after the hit
      expect(await outcome(keyring.verify(token))).toBe(live ? 'ok' : 'throws KEYROT_STORE_UNAVAILABLE')
      await keyring.close()
    }
  })

  it("never verifies past the key's own expiresAt: a grace deadline stays exact during an outage", async () => {
    const { clock, store, keyring } = setup()
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci', expiresAt: clock.now() + 10_000 })
    expect(await outcome(keyring.verify(token))).toBe('ok')
    store.down = true
    clock.advance(9_999)
    expect(await outcome(keyring.verify(token))).toBe('ok')
    clock.advance(1)
    expect(await outcome(keyring.verify(token))).toBe('KEYROT_KEY_EXPIRED')
    await keyring.close()
  })

  it('judges a stale state at the time the failed read gave up: a deadline that passed while it waited has passed', async () => {
    const { clock, store, keyring } = setup()
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci', expiresAt: clock.now() + 10_000 })
    expect(await outcome(keyring.verify(token))).toBe('ok')
    clock.advance(9_900) // past the 5 s state TTL: the next verify reads the store
    store.down = true
    // The read times out 500 ms later, after the key's deadline.
    store.onRead = () => clock.advance(500)
    expect(await outcome(keyring.verify(token))).toBe('KEYROT_KEY_EXPIRED')
    await keyring.close()
  })

  it('never verifies after this replica received an invalidation for the key; a feed reset keeps the stale copy', async () => {
    const { clock, store, keyring } = setup()
    const revoked = await keyring.create({ tenantId: 'acme', name: 'revoked elsewhere' })
    const kept = await keyring.create({ tenantId: 'acme', name: 'kept' })
    for (const issued of [revoked, kept]) expect(await outcome(keyring.verify(issued.token))).toBe('ok')
    store.down = true
    store.publish({ type: 'key', keyId: revoked.key.id })
    store.publish({ type: 'reset', reason: 'invalidation heartbeat missed' })
    clock.advance(1_000)
    expect(await outcome(keyring.verify(revoked.token))).toBe('throws KEYROT_STORE_UNAVAILABLE')
    expect(await outcome(keyring.verify(kept.token))).toBe('ok')
    await keyring.close()
  })

  it('refuses a key this replica revoked (the write landed, the reads fail) and answers 503 for a token never proven here', async () => {
    const { store, keyring } = setup()
    const revoked = await keyring.create({ tenantId: 'acme', name: 'revoked here' })
    const unseen = await keyring.create({ tenantId: 'acme', name: 'never verified' })
    expect(await outcome(keyring.verify(revoked.token))).toBe('ok')
    await keyring.revoke(revoked.key.id)
    store.down = true
    expect(await outcome(keyring.verify(revoked.token))).toBe('throws KEYROT_STORE_UNAVAILABLE')
    expect(await outcome(keyring.verify(unseen.token))).toBe('throws KEYROT_STORE_UNAVAILABLE')
    await keyring.close()
  })

  it('exports the outage as keyrot_store_up, keyrot_store_outages_total and keyrot_stale_verifications_total', async () => {
    const { clock, store, keyring } = setup()
    const registry = new Registry()
    const metrics = createMetrics({ keyring, registry })
    const value = async (name: string) => (await registry.getSingleMetric(name)?.get())?.values[0]?.value
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    await keyring.verify(token)
    expect(await value('keyrot_store_up')).toBe(1)
    store.down = true
    clock.advance(6_000)
    for (let i = 0; i < 3; i++) await keyring.verify(token)
    expect(await value('keyrot_store_up')).toBe(0)
    expect(await value('keyrot_store_outages_total')).toBe(1)
    expect(await value('keyrot_stale_verifications_total')).toBe(3)
    expect(await value('keyrot_ratelimit_fallbacks_total')).toBe(0)
    metrics.close()
    await keyring.close()
  })

  it('staleIfError: 0 keeps the fail-closed behaviour', async () => {
    const { clock, store, keyring } = setup({ staleIfError: 0 })
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    expect(await outcome(keyring.verify(token))).toBe('ok')
    store.down = true
    clock.advance(5_001)
    expect(await outcome(keyring.verify(token))).toBe('throws KEYROT_STORE_UNAVAILABLE')
    expect(keyring.outageStats().staleVerifications).toBe(0)
    await keyring.close()
  })

  it('reads the store once per outage: later verifies answer at once, a background probe closes the circuit', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] })
    const { clock, store, keyring } = setup()
    const events: string[] = []
    keyring.on('store.down', (event: KeyringEvents['store.down']) => events.push(`down ${event.code}`))
    keyring.on('store.up', (event: KeyringEvents['store.up']) => events.push(`up after ${event.downtimeMs} ms`))
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    expect(await outcome(keyring.verify(token))).toBe('ok')
    store.down = true
    clock.advance(6_000)
    const readsBefore = store.reads
    for (let i = 0; i < 20; i++) expect(await outcome(keyring.verify(token))).toBe('ok')
    expect(store.reads - readsBefore).toBe(1)
    await vi.advanceTimersByTimeAsync(250) // one probe, still down
    expect(keyring.outageStats().storeUp).toBe(false)
    store.down = false
    clock.advance(2_000)
    await vi.advanceTimersByTimeAsync(250)
    expect(keyring.outageStats()).toMatchObject({ storeUp: true, storeOutages: 1 })
    expect(events).toEqual(['down KEYROT_STORE_UNAVAILABLE', 'up after 2000 ms'])
    const after = store.reads
    expect(await outcome(keyring.verify(token))).toBe('ok')
    expect(store.reads).toBe(after + 1)
    await keyring.close()
  })
})
