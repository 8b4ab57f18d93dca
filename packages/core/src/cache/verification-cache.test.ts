import { describe, expect, it, vi } from 'vitest'
import { ManualClock } from '../clock.js'
import type { KeyringEvents } from '../events.js'
import { Argon2Hasher, FastTestHasher, type Hasher } from '../hash/hasher.js'
import { createKeyring, type VerifyResult } from '../lifecycle/keyring.js'
import type { KeyringOptions } from '../options.js'
import { MemoryStore } from '../store/memory-store.js'
import type { EmergencyRotateInput, InvalidationEvent, InvalidationListener, KeyStore, ListQuery, RevokeInput, RotateInput } from '../store/store.js'
import { generateToken } from '../token/format.js'
import type { KeyRecord } from '../types.js'

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void
  const promise = new Promise<void>((done) => (resolve = done))
  return { promise, resolve }
}

/** Counts Argon2 (or test) hash checks; `gate`, when set, holds every check until it resolves. */
class CountingHasher implements Hasher {
  verifyCalls = 0
  gate: Promise<void> | null = null
  constructor(readonly inner: Hasher = new FastTestHasher()) {}
  hash(token: string): Promise<string> {
    return this.inner.hash(token)
  }
  async verify(hash: string, token: string): Promise<boolean> {
    this.verifyCalls++
    if (this.gate) await this.gate
    return this.inner.verify(hash, token)
  }
  needsRehash(hash: string): boolean {
    return this.inner.needsRehash?.(hash) ?? false
  }
}

/**
 * A MemoryStore seen through a window: counts reads, can hold the reply of the
 * next `get()` (a slow store), can emit invalidation events as a shared store
 * would, and can drop the inner store's notifications (a lost message).
 */
class ObservedStore implements KeyStore {
  reads = 0
  /** The next `get()` reads now but answers only when this resolves. */
  holdNextRead: Promise<void> | null = null
  readonly inner = new MemoryStore()
  readonly #listeners = new Set<InvalidationListener>()

  constructor(options: { forwardNotifications: boolean } = { forwardNotifications: true }) {
    if (options.forwardNotifications) this.inner.subscribe((event) => this.emit(event))
  }

  async get(keyId: string): Promise<KeyRecord | null> {
    this.reads++
    const hold = this.holdNextRead
    this.holdNextRead = null
    const record = await this.inner.get(keyId)
    if (hold) await hold
    return record
  }
  insert(record: KeyRecord): Promise<void> {
    return this.inner.insert(record)
  }
  rotate(input: RotateInput) {
    return this.inner.rotate(input)
  }
  revoke(input: RevokeInput) {
    return this.inner.revoke(input)
  }
  emergencyRotate(input: EmergencyRotateInput) {
    return this.inner.emergencyRotate(input)
  }
  setExpiry(keyId: string, expiresAt: number | null) {
    return this.inner.setExpiry(keyId, expiresAt)
  }
  updateHash(keyId: string, hash: string) {
    return this.inner.updateHash(keyId, hash)
  }
  recordUsage(keyId: string, at: number, inGrace: boolean): void {
    this.inner.recordUsage(keyId, at, inGrace)
  }
  list(query: ListQuery) {
    return this.inner.list(query)
  }
  subscribe(listener: InvalidationListener): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }
  emit(event: InvalidationEvent): void {
    for (const listener of this.#listeners) listener(event)
  }
  close(): Promise<void> {
    return this.inner.close()
  }
}

function setup(options: KeyringOptions & { store?: ObservedStore } = {}) {
  const clock = new ManualClock()
  const store = options.store ?? new ObservedStore()
  const hasher = new CountingHasher()
  const keyring = createKeyring({ clock, hasher, gracePeriod: '1h', ...options, store })
  /** Counts from now on. */
  const reset = () => {
    hasher.verifyCalls = 0
    store.reads = 0
  }
  return { clock, store, hasher, keyring, reset }
}

function codeOf(result: VerifyResult): string {
  return result.ok ? 'ok' : result.error.code
}

describe('verification cache', () => {
  it('answers a proven token with no hash check and no store read', async () => {
    const { keyring, hasher, store, reset } = setup()
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const first = await keyring.verify(token)
    expect(first).toMatchObject({ ok: true, cached: false })
    expect(hasher.verifyCalls).toBe(1)
    expect(store.reads).toBe(1)

    reset()
    for (let i = 0; i < 5; i++) expect(await keyring.verify(token)).toMatchObject({ ok: true, cached: true })
    expect(hasher.verifyCalls).toBe(0)
    expect(store.reads).toBe(0)
    expect(keyring.cacheStats()).toMatchObject({ proofs: 1, states: 1 })
  })

  it('never trusts a cached state past the key’s deadline, even with a longer state TTL', async () => {
    const { clock, keyring, store, reset } = setup({ cache: { stateTtl: '1d' } })
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const { previous } = await keyring.rotate(key.id, { gracePeriod: '10m' })
    const deadline = previous.expiresAt as number
    expect(codeOf(await keyring.verify(token))).toBe('ok')

    reset()
    clock.set(deadline - 1)
    expect(await keyring.verify(token)).toMatchObject({ ok: true, cached: true })
    expect(store.reads).toBe(0)
    clock.set(deadline)
    expect(codeOf(await keyring.verify(token))).toBe('KEYROT_KEY_EXPIRED')
    clock.set(deadline + 86_400_000 - 1)
    expect(codeOf(await keyring.verify(token))).toBe('KEYROT_KEY_EXPIRED')
  })

  it.each([
    ['revoke', 'KEYROT_KEY_REVOKED'],
    ['rotate with no grace', 'KEYROT_KEY_EXPIRED'],
    ['endGrace', 'KEYROT_KEY_EXPIRED'],
    ['emergencyRotate', 'KEYROT_KEY_REVOKED'],
  ] as const)('%s takes effect on the very next verify of a cached key', async (change, code) => {
    const { keyring, hasher, reset } = setup({ cache: { stateTtl: '1d' } })
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    expect(await keyring.verify(token)).toMatchObject({ ok: true })
    expect(await keyring.verify(token)).toMatchObject({ ok: true, cached: true })
    if (change === 'revoke') await keyring.revoke(key.id)
    if (change === 'rotate with no grace') await keyring.rotate(key.id, { gracePeriod: 0 })
    if (change === 'endGrace') {
      await keyring.rotate(key.id)
      expect(await keyring.verify(token)).toMatchObject({ ok: true })
      await keyring.endGrace(key.id)
    }
    if (change === 'emergencyRotate') await keyring.emergencyRotate(key.id, { incidentId: 'INC-1' })
    reset()
    expect(codeOf(await keyring.verify(token))).toBe(code)
    expect(hasher.verifyCalls).toBe(0)
  })

  it('does not put back a state read before a revoke that finished while the read was in flight', async () => {
    const { keyring, store } = setup({ cache: { stateTtl: '1d' } })
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const slowRead = deferred()
    store.holdNextRead = slowRead.promise
    const inFlight = keyring.verify(token)
    await keyring.revoke(key.id)
    slowRead.resolve()
    // It started before the revoke and may still pass; what matters is what it leaves in the cache.
    await inFlight

    const next = await keyring.verify(token)
    expect(codeOf(next)).toBe('KEYROT_KEY_REVOKED')
    expect(codeOf(await keyring.verify(token))).toBe('KEYROT_KEY_REVOKED')
  })

  it('does not put back a state read before a rotation that finished while the read was in flight', async () => {
    const { keyring, store } = setup({ cache: { stateTtl: '1d' } })
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const slowRead = deferred()
    store.holdNextRead = slowRead.promise
    const inFlight = keyring.verify(token)
    await keyring.rotate(key.id, { gracePeriod: 0 })
    slowRead.resolve()
    await inFlight
    expect(codeOf(await keyring.verify(token))).toBe('KEYROT_KEY_EXPIRED')
  })

  it('shares one hash check and one store read among 20 concurrent verifies of a new token', async () => {
    const { keyring, hasher, store, reset } = setup()
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    reset()
    const gate = deferred()
    hasher.gate = gate.promise
    const results = Array.from({ length: 20 }, () => keyring.verify(token))
    // Let every verify reach the hash check before it is allowed to finish.
    await new Promise((resolve) => setImmediate(resolve))
    gate.resolve()
    for (const result of await Promise.all(results)) expect(result.ok).toBe(true)
    expect(hasher.verifyCalls).toBe(1)
    expect(store.reads).toBe(1)
  })

  it('does not share a failed check: a wrong secret and the right one are checked apart', async () => {
    // Unpaced: with paced proofs (the default) the second unproven token of one key id would wait its turn (a 429).
    const { keyring, hasher, reset } = setup({ rateLimit: { proofsPerKey: false } })
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    reset()
    const [forged, real] = await Promise.all([keyring.verify(generateToken(key.prefix, key.id)), keyring.verify(token)])
    expect(codeOf(forged)).toBe('KEYROT_INVALID_SECRET')
    expect(codeOf(real)).toBe('ok')
    expect(hasher.verifyCalls).toBe(2)
    // A wrong secret is never remembered as proven.
    expect(codeOf(await keyring.verify(generateToken(key.prefix, key.id)))).toBe('KEYROT_INVALID_SECRET')
    expect(hasher.verifyCalls).toBe(3)
  })

  it('re-reads state but runs no new hash check after a rotation, a key message or a feed reset', async () => {
    const { keyring, hasher, store, reset } = setup({ cache: { stateTtl: '1d' } })
    const resets: KeyringEvents['cache.reset'][] = []
    keyring.on('cache.reset', (event) => resets.push(event))
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    expect(await keyring.verify(token)).toMatchObject({ ok: true, cached: false })

    await keyring.rotate(key.id)
    reset()
    expect(await keyring.verify(token)).toMatchObject({ ok: true, cached: false, key: { state: 'grace' } })
    expect([store.reads, hasher.verifyCalls]).toEqual([1, 0])

    store.emit({ type: 'key', keyId: key.id })
    reset()
    expect(await keyring.verify(token)).toMatchObject({ ok: true, cached: false })
    expect([store.reads, hasher.verifyCalls]).toEqual([1, 0])

    store.emit({ type: 'reset', reason: 'reconnected' })
    reset()
    expect(await keyring.verify(token)).toMatchObject({ ok: true, cached: false })
    expect([store.reads, hasher.verifyCalls]).toEqual([1, 0])
    expect(resets).toEqual([expect.objectContaining({ reason: 'reconnected' })])

    reset()
    expect(await keyring.verify(token)).toMatchObject({ ok: true, cached: true })
    expect([store.reads, hasher.verifyCalls]).toEqual([0, 0])
  })

  it('trusts a cached state for at most stateTtl when no invalidation arrives', async () => {
    // The store's own notifications are lost: only the TTL bounds how long a revoke goes unseen.
    const store = new ObservedStore({ forwardNotifications: false })
    const { clock, keyring, hasher, reset } = setup({ store, cache: { stateTtl: '5s' } })
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    expect(codeOf(await keyring.verify(token))).toBe('ok')
    const cachedAt = clock.now()
    await store.inner.revoke({ keyId: key.id, at: clock.now(), reason: 'revoked elsewhere' })

    reset()
    clock.set(cachedAt + 4_999)
    expect(await keyring.verify(token)).toMatchObject({ ok: true, cached: true })
    expect(store.reads).toBe(0)
    clock.set(cachedAt + 5_001)
    expect(codeOf(await keyring.verify(token))).toBe('KEYROT_KEY_REVOKED')
    expect(store.reads).toBe(1)
    expect(hasher.verifyCalls).toBe(0)
  })

  it('reads the store on every verify with stateTtl 0, still without a new hash check', async () => {
    const { keyring, hasher, store, reset } = setup({ cache: { stateTtl: 0 } })
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    expect(codeOf(await keyring.verify(token))).toBe('ok')
    reset()
    for (let i = 0; i < 3; i++) expect(codeOf(await keyring.verify(token))).toBe('ok')
    expect([store.reads, hasher.verifyCalls]).toEqual([3, 0])
  })

  it('keeps at most maxEntries proofs and states', async () => {
    const { keyring } = setup({ cache: { maxEntries: 3 } })
    for (let i = 0; i < 10; i++) {
      const { token } = await keyring.create({ tenantId: 'acme', name: `k${i}` })
      expect(codeOf(await keyring.verify(token))).toBe('ok')
    }
    const stats = keyring.cacheStats()
    expect(stats.proofs).toBe(3)
    expect(stats.states).toBe(3)
  })
})

describe('re-hashing', () => {
  it('replaces a hash made with old Argon2 parameters after a successful verify, without a new check afterwards', async () => {
    const store = new ObservedStore()
    const before = createKeyring({ store, hasher: new Argon2Hasher({ memoryCost: 1024, timeCost: 1 }) })
    const { token, key } = await before.create({ tenantId: 'acme', name: 'ci' })
    const oldHash = (await store.inner.get(key.id))?.hash as string
    expect(oldHash.startsWith('$argon2id$v=19$m=1024,t=1,p=1$')).toBe(true)

    const hasher = new CountingHasher(new Argon2Hasher({ memoryCost: 2048, timeCost: 1 }))
    const after = createKeyring({ store, hasher })
    expect(codeOf(await after.verify(token))).toBe('ok')
    await vi.waitFor(
      async () => {
        const hash = (await store.inner.get(key.id))?.hash as string
        expect(hash.startsWith('$argon2id$v=19$m=2048,t=1,p=1$')).toBe(true)
      },
      { timeout: 5_000, interval: 10 },
    )
    expect(hasher.verifyCalls).toBe(1)
    expect(codeOf(await after.verify(token))).toBe('ok')
    expect(hasher.verifyCalls).toBe(1)

    // A fresh process with the new parameters proves the token against the new hash.
    const fresh = new CountingHasher(new Argon2Hasher({ memoryCost: 2048, timeCost: 1 }))
    const restarted = createKeyring({ store, hasher: fresh })
    expect(codeOf(await restarted.verify(token))).toBe('ok')
    expect(fresh.verifyCalls).toBe(1)
    expect(fresh.needsRehash((await store.inner.get(key.id))?.hash as string)).toBe(false)
  })
})
