import { describe, expect, it } from 'vitest'
import { ManualClock } from '../clock.js'
import type { KeyrotError } from '../errors.js'
import type { KeyringEvents } from '../events.js'
import { FastTestHasher } from '../hash/hasher.js'
import { MemoryStore } from '../store/memory-store.js'
import type { InvalidationListener, KeyStore, StoreResetCause } from '../store/store.js'
import type { KeyRecord } from '../types.js'
import { createKeyring, type VerifyResult } from './keyring.js'

const HOUR = 3_600_000

/**
 * A store that can be rolled back to a snapshot or emptied, as Redis can, and
 * reports it like RedisStore does: a `store-reset` event and `resetPending()`
 * until accepted.
 */
class ResettableStore implements KeyStore {
  inner = new MemoryStore()
  readonly listeners = new Set<InvalidationListener>()
  pending = false
  /** Delay (ms of real time) before revoke() reaches the inner store. */
  revokeDelayMs = 0
  closed = false

  async snapshot(): Promise<KeyRecord[]> {
    return this.inner.list({})
  }

  async reset(cause: StoreResetCause, records: KeyRecord[] = []): Promise<void> {
    this.inner = new MemoryStore()
    for (const record of records) await this.inner.insert(record)
    this.pending = true
    for (const listener of this.listeners) listener({ type: 'store-reset', cause, detail: 'test', at: 0 })
  }

  insert = (record: KeyRecord) => this.inner.insert(record)
  get = (keyId: string) => this.inner.get(keyId)
  rotate: KeyStore['rotate'] = (input) => this.inner.rotate(input)
  revoke: KeyStore['revoke'] = async (input) => {
    if (this.revokeDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.revokeDelayMs))
    if (this.closed) throw new Error('The store is closed')
    return this.inner.revoke(input)
  }
  emergencyRotate: KeyStore['emergencyRotate'] = (input) => this.inner.emergencyRotate(input)
  setExpiry: KeyStore['setExpiry'] = (keyId, expiresAt) => this.inner.setExpiry(keyId, expiresAt)
  updateHash: KeyStore['updateHash'] = (keyId, hash) => this.inner.updateHash(keyId, hash)
  recordUsage: KeyStore['recordUsage'] = (keyId, at, inGrace) => this.inner.recordUsage(keyId, at, inGrace)
  list: KeyStore['list'] = (query) => this.inner.list(query)
  restoreRevocation = (record: KeyRecord) => this.inner.restoreRevocation(record)
  resetPending = () => this.pending
  acceptReset = async () => {
    this.pending = false
  }
  subscribe(listener: InvalidationListener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }
  async close(): Promise<void> {
    this.closed = true
  }
}

function setup() {
  const clock = new ManualClock()
  const store = new ResettableStore()
  // stateTtl 0: every verify reads the store, so what the store says is what is checked.
  const keyring = createKeyring({ clock, store, hasher: new FastTestHasher(), gracePeriod: '1h', cache: { stateTtl: 0 } })
  return { clock, store, keyring }
}

function codeOf(result: VerifyResult): string {
  return result.ok ? 'ok' : result.error.code
}

async function codeOfVerify(promise: Promise<VerifyResult>): Promise<string> {
  try {
    return codeOf(await promise)
  } catch (error) {
    return (error as KeyrotError).code
  }
}

/** Lets the reset recovery (write-back, lost-key reads) run. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 20))

describe('tombstones', () => {
  it('keep a key revoked after the store rolls back to before the revocation', async () => {
    const { store, keyring } = setup()
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const before = await store.snapshot()
    await keyring.revoke(key.id, { reason: 'leaked' })
    // Rolled back, and not reported yet: the store serves the key unrevoked.
    store.inner = new MemoryStore()
    for (const record of before) await store.inner.insert(record)
    expect((await store.get(key.id))?.revokedAt).toBeNull()
    expect(await codeOfVerify(keyring.verify(token))).toBe('KEYROT_KEY_REVOKED')
  })

  it('keep a grace period ended early after a rollback restores the later deadline', async () => {
    const { clock, store, keyring } = setup()
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    await keyring.rotate(key.id)
    const inGrace = await store.snapshot()
    await keyring.endGrace(key.id)
    clock.advance(1_000)
    await store.reset('rollback', inGrace)
    expect(await codeOfVerify(keyring.verify(token))).toBe('KEYROT_KEY_EXPIRED')
  })

  it('never loosen on a plain read, but follow this replica’s own extension', async () => {
    const { clock, store, keyring } = setup()
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci', expiresAt: clock.now() + HOUR })
    clock.advance(2 * HOUR)
    // Read expired: remembered.
    expect(await codeOfVerify(keyring.verify(token))).toBe('KEYROT_KEY_EXPIRED')
    // A store that now says "no deadline" without any change notice is not believed...
    const record = (await store.inner.get(key.id)) as KeyRecord
    store.inner = new MemoryStore()
    await store.inner.insert({ ...record, expiresAt: null })
    expect(await codeOfVerify(keyring.verify(token))).toBe('KEYROT_KEY_EXPIRED')
    // ...but this replica's own extension is.
    await keyring.setExpiry(key.id, clock.now() + HOUR)
    expect(await codeOfVerify(keyring.verify(token))).toBe('ok')
  })

  it('follow an extension made by another replica once its change notice arrives', async () => {
    const clock = new ManualClock()
    const shared = new MemoryStore()
    const options = { clock, store: shared, hasher: new FastTestHasher(), cache: { stateTtl: 0 } }
    const a = createKeyring(options)
    const b = createKeyring(options)
    const { token, key } = await a.create({ tenantId: 'acme', name: 'ci' })
    await a.rotate(key.id)
    await a.endGrace(key.id)
    expect(await codeOfVerify(b.verify(token))).toBe('KEYROT_KEY_EXPIRED')
    await a.extendGrace(key.id, '1h')
    await settle()
    expect(await codeOfVerify(b.verify(token))).toBe('ok')
  })
})

describe('a store reset', () => {
  it('reports itself, answers KEYROT_STORE_RESET for keys the store lacks, and reports the keys it lost', async () => {
    const { clock, store, keyring } = setup()
    const resets: KeyringEvents['store.reset'][] = []
    const lost: KeyringEvents['keys.lost'][] = []
    keyring.on('store.reset', (event) => resets.push(event))
    keyring.on('keys.lost', (event) => lost.push(event))
    const kept = await keyring.create({ tenantId: 'acme', name: 'kept' })
    const snapshot = await store.snapshot()
    const gone = await keyring.create({ tenantId: 'acme', name: 'created after the snapshot' })
    expect(await codeOfVerify(keyring.verify(gone.token))).toBe('ok')

    await store.reset('rollback', snapshot)
    await settle()
    expect(resets).toEqual([{ cause: 'rollback', detail: 'test', at: 0 }])
    expect(lost).toMatchObject([{ keyIds: [gone.key.id], count: 1, cause: 'rollback' }])
    // A key this replica proved and confirmed keeps working from its last confirmed state for cache.staleIfError...
    expect(await codeOfVerify(keyring.verify(gone.token))).toBe('ok')
    // ...then its client hears 503 KEYROT_STORE_RESET (retry later), never 401 "invalid key".
    clock.advance(30_001)
    expect(await codeOfVerify(keyring.verify(gone.token))).toBe('KEYROT_STORE_RESET')
    expect(await codeOfVerify(keyring.verify(kept.token))).toBe('ok')

    await keyring.acceptStoreReset()
    expect(await codeOfVerify(keyring.verify(gone.token))).toBe('KEYROT_KEY_NOT_FOUND')
  })

  it('answers KEYROT_STORE_RESET for a working key it read before that vanished, before the store reports a reset', async () => {
    const { clock, store, keyring } = setup()
    const working = await keyring.create({ tenantId: 'acme', name: 'working' })
    const ended = await keyring.create({ tenantId: 'acme', name: 'ended', expiresAt: clock.now() + HOUR })
    expect(await codeOfVerify(keyring.verify(working.token))).toBe('ok')
    expect(await codeOfVerify(keyring.verify(ended.token))).toBe('ok')
    clock.advance(2 * HOUR)
    store.inner = new MemoryStore()
    expect(await codeOfVerify(keyring.verify(working.token))).toBe('KEYROT_STORE_RESET')
    // A key past its deadline may leave the store (retention 0): "not found" is the truth for it.
    expect(await codeOfVerify(keyring.verify(ended.token))).toBe('KEYROT_KEY_NOT_FOUND')
  })

  it('writes back every revocation this replica knows, whether the store lost the key or only the revocation', async () => {
    const { store, keyring } = setup()
    const a = await keyring.create({ tenantId: 'acme', name: 'a' })
    const snapshot = await store.snapshot()
    const b = await keyring.create({ tenantId: 'acme', name: 'b' })
    await keyring.revoke(a.key.id, { reason: 'leaked' })
    await keyring.revoke(b.key.id, { reason: 'left' })

    await store.reset('rollback', snapshot)
    await settle()
    expect(await store.get(a.key.id)).toMatchObject({ revokedReason: 'leaked', revokedAt: expect.any(Number) })
    expect(await store.get(b.key.id)).toMatchObject({ revokedReason: 'left', tenantId: 'acme' })
    // A keyring that never saw the revocations (a replica started after the heal) refuses both keys too.
    const fresh = createKeyring({ store: store.inner, hasher: new FastTestHasher() })
    expect(await codeOfVerify(fresh.verify(a.token))).toBe('KEYROT_KEY_REVOKED')
    expect(await codeOfVerify(fresh.verify(b.token))).toBe('KEYROT_KEY_REVOKED')
  })
})

describe('close()', () => {
  it('lets a revoke that started before it land in the store', async () => {
    const { store, keyring } = setup()
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    store.revokeDelayMs = 50
    const revoking = keyring.revoke(key.id, { reason: 'offboarding' })
    await keyring.close()
    await expect(revoking).resolves.toMatchObject({ state: 'revoked' })
    expect((await store.inner.get(key.id))?.revokedReason).toBe('offboarding')
    expect(store.closed).toBe(true)
  })

  it('stops waiting after its timeout', async () => {
    const { store, keyring } = setup()
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    store.revokeDelayMs = 300
    const revoking = keyring.revoke(key.id).catch((error: Error) => error)
    const started = performance.now()
    await keyring.close({ timeout: 20 })
    expect(performance.now() - started).toBeLessThan(250)
    expect(await revoking).toBeInstanceOf(Error)
  })
})
