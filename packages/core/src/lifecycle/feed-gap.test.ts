import { describe, expect, it } from 'vitest'
import { ManualClock } from '../clock.js'
import { FastTestHasher } from '../hash/hasher.js'
import { MemoryStore } from '../store/memory-store.js'
import type { KeyRecord } from '../types.js'
import { createKeyring } from './keyring.js'

/** A MemoryStore whose invalidation feed can be switched off, counting reads. */
class GappyStore extends MemoryStore {
  live = true
  reads = 0
  override async get(keyId: string): Promise<KeyRecord | null> {
    this.reads++
    return super.get(keyId)
  }
  invalidationLive(): boolean {
    return this.live
  }
}

function setup() {
  const clock = new ManualClock()
  const store = new GappyStore()
  const keyring = createKeyring({ store, clock, hasher: new FastTestHasher(), rateLimit: false, cache: { stateTtl: '5s' } })
  return { clock, store, keyring }
}

describe('verification cache while the invalidation feed is down', () => {
  it('caches no state read during the gap, so every verify reads the store', async () => {
    const { store, keyring } = setup()
    const { token } = await keyring.create({ tenantId: 'acme', name: 'gap' })
    store.live = false
    store.reads = 0
    for (let i = 0; i < 3; i++) expect(await keyring.verify(token)).toMatchObject({ ok: true, cached: false })
    expect(store.reads).toBe(3)
  })

  it('sees a change made during the gap on the next verify, with no invalidation message', async () => {
    const { store, keyring } = setup()
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'gap' })
    store.live = false
    expect(await keyring.verify(token)).toMatchObject({ ok: true })
    // Another replica revokes; this replica never hears of it.
    await MemoryStore.prototype.revoke.call(store, { keyId: key.id, at: Date.UTC(2030, 0, 1), reason: 'leaked' })
    const refused = await keyring.verify(token)
    expect(refused.ok === false && refused.error.code).toBe('KEYROT_KEY_REVOKED')
  })

  it('keeps trusting a state cached before the gap for at most stateTtl', async () => {
    const { clock, store, keyring } = setup()
    const { token } = await keyring.create({ tenantId: 'acme', name: 'gap' })
    expect(await keyring.verify(token)).toMatchObject({ ok: true })
    store.live = false
    store.reads = 0
    expect(await keyring.verify(token)).toMatchObject({ ok: true, cached: true })
    expect(store.reads).toBe(0)
    clock.advance(5_001)
    expect(await keyring.verify(token)).toMatchObject({ ok: true, cached: false })
    expect(store.reads).toBe(1)
  })

  it('caches again once the feed is live', async () => {
    const { store, keyring } = setup()
    const { token } = await keyring.create({ tenantId: 'acme', name: 'gap' })
    store.live = false
    await keyring.verify(token)
    store.live = true
    store.reads = 0
    await keyring.verify(token)
    expect(await keyring.verify(token)).toMatchObject({ ok: true, cached: true })
    expect(store.reads).toBe(1)
  })
})
