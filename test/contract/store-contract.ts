import {
  AlreadyRotatedError,
  FastTestHasher,
  familyOf,
  generateToken,
  InvalidInputError,
  KeyExpiredError,
  KeyNotFoundError,
  KeyRevokedError,
  newKeyId,
  type InvalidationEvent,
  type KeyRecord,
  type KeyStore,
} from '@keyrot/core'
import { describeCreditsContract } from './credits-contract.js'
import { describeRotationUsageContract } from './rotation-usage-contract.js'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { describeSharedProofContract } from './shared-proof-contract.js'
import { describePolicyContract } from './policy-contract.js'

/**
 * What a store under test offers the suite. Every store passes the same
 * tests; the optional parts only add tests for what a store can do.
 */
export interface StoreContractHarness {
  /** A fresh, empty store (or a store on a fresh key prefix). */
  store: KeyStore
  /**
   * Another store on the same backend (another replica). Given: the suite
   * checks that changes made through `store` reach the peer's `subscribe()`.
   */
  peer?: KeyStore
  /**
   * Flushes usage counts and returns a store that reads what was persisted
   * (a new instance on the same backend, or the same one).
   */
  reopen?: () => Promise<KeyStore>
  /** Releases whatever the harness opened besides `store` and `peer`. */
  dispose?: () => Promise<void>
}

export interface StoreContractOptions {
  /** Called with every plaintext token the suite mints (to scan the backend for leaks afterwards). */
  onToken?: (token: string) => void
  /** Longest wait for an invalidation message (ms). Default 3000. */
  notificationTimeoutMs?: number
  /** How many rotations race in the concurrency test. Default 8. */
  concurrency?: number
  /**
   * Whether the store implements `subscribe()` (default true). A store that
   * does not gets no subscription tests, rather than skipped ones.
   */
  subscribe?: boolean
}

const hasher = new FastTestHasher()

/** Polls `check` until it passes or `timeoutMs` elapses (then its last error is thrown). */
export async function eventually(check: () => void | Promise<void>, timeoutMs = 3000, stepMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      await check()
      return
    } catch (error) {
      if (Date.now() >= deadline) throw error
      await new Promise((resolve) => setTimeout(resolve, stepMs))
    }
  }
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('expected the promise to reject, but it resolved')
}

/**
 * The store conformance suite: every `KeyStore` method, every error it
 * throws, atomicity under concurrency and the grace `min()` rule.
 *
 * Times are real epoch ms around `Date.now()`, because a store may hand
 * deadlines to a backend with its own clock (Redis `PEXPIREAT`).
 */
export function describeStoreContract(
  name: string,
  makeHarness: () => Promise<StoreContractHarness>,
  options: StoreContractOptions = {},
): void {
  const notificationTimeoutMs = options.notificationTimeoutMs ?? 3000
  const concurrency = options.concurrency ?? 8

  describe(`KeyStore contract: ${name}`, () => {
    let harness: StoreContractHarness
    let store: KeyStore

    beforeEach(async () => {
      harness = await makeHarness()
      store = harness.store
    })

    afterEach(async () => {
      await harness.store.close()
      await harness.peer?.close()
      await harness.dispose?.()
    })

    async function makeRecord(overrides: Partial<KeyRecord> = {}): Promise<KeyRecord> {
      const id = overrides.id ?? newKeyId()
      const prefix = overrides.prefix ?? 'sk_test'
      const token = generateToken(prefix, id)
      options.onToken?.(token)
      const now = Date.now()
      return {
        id,
        familyId: familyOf(id),
        tenantId: 'acme',
        name: 'ci deploy',
        prefix,
        scopes: ['read', 'write'],
        metadata: { team: 'platform', nested: { level: 2, tags: ['a', 'b'] } },
        createdAt: now,
        expiresAt: null,
        revokedAt: null,
        revokedReason: null,
        incidentId: null,
        rotatedFrom: null,
        rotatedTo: null,
        rotatedAt: null,
        rateLimit: null,
        usageCount: 0,
        lastUsedAt: null,
        lastUsedInGraceAt: null,
        hash: await hasher.hash(token),
        ...overrides,
      }
    }

    async function successorOf(old: KeyRecord, overrides: Partial<KeyRecord> = {}): Promise<KeyRecord> {
      return makeRecord({
        id: newKeyId(old.familyId),
        tenantId: old.tenantId,
        rotatedFrom: old.id,
        createdAt: Date.now(),
        ...overrides,
      })
    }

    describe('insert and get', () => {
      it('returns an inserted record field for field', async () => {
        const record = await makeRecord({
          name: 'ünïcödé key: "quotes" & \\ backslash',
          scopes: [],
          metadata: { empty: {}, list: [1, 'two', null, true], nested: { deep: { deeper: 'x' } } },
          rateLimit: { limit: 100, windowMs: 60_000 },
          expiresAt: Date.now() + 3_600_000,
        })
        await store.insert(record)
        expect(await store.get(record.id)).toEqual(record)
      })

      it('returns null for an id it never saw', async () => {
        expect(await store.get(newKeyId())).toBeNull()
      })

      it('returns a copy that the caller cannot change the stored record through', async () => {
        const record = await makeRecord()
        await store.insert(record)
        const read = (await store.get(record.id)) as KeyRecord
        read.scopes.push('admin')
        ;(read.metadata as { team: string }).team = 'intruder'
        const again = (await store.get(record.id)) as KeyRecord
        expect(again.scopes).toEqual(['read', 'write'])
        expect(again.metadata).toEqual(record.metadata)
      })

      it('refuses a second insert of the same id with InvalidInputError on the id field', async () => {
        const record = await makeRecord()
        await store.insert(record)
        const error = await rejection(store.insert({ ...record, name: 'other', tenantId: 'intruder' }))
        expect(error).toBeInstanceOf(InvalidInputError)
        expect((error as InvalidInputError).field).toBe('id')
        expect((await store.get(record.id))?.name).toBe('ci deploy')
        expect(await store.list({ tenantId: 'intruder' })).toEqual([])
        expect((await store.list({})).map((r) => r.id)).toEqual([record.id])
      })

      it('lets exactly one of concurrent inserts of one id win', async () => {
        const record = await makeRecord()
        const results = await Promise.allSettled(
          Array.from({ length: concurrency }, (_, i) => store.insert({ ...record, name: `racer ${i}` })),
        )
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
        for (const result of results) {
          if (result.status === 'rejected') expect(result.reason).toBeInstanceOf(InvalidInputError)
        }
      })

      it('keeps an already expired record readable, with its deadline', async () => {
        const expiresAt = Date.now() - 1_000
        const record = await makeRecord({ expiresAt, createdAt: expiresAt - 60_000 })
        await store.insert(record)
        const read = await store.get(record.id)
        expect(read?.expiresAt).toBe(expiresAt)
        expect(read?.hash).toBe(record.hash)
      })
    })

    describe('rotate', () => {
      it('adds the successor and links both keys', async () => {
        const old = await makeRecord()
        await store.insert(old)
        const next = await successorOf(old)
        const now = Date.now()
        const { previous, next: stored } = await store.rotate({ oldKeyId: old.id, newKey: next, graceDeadline: now + 60_000, now })
        expect(stored).toEqual(next)
        expect(previous).toMatchObject({ id: old.id, rotatedTo: next.id, rotatedAt: now, expiresAt: now + 60_000, revokedAt: null })
        expect(await store.get(old.id)).toEqual(previous)
        expect(await store.get(next.id)).toEqual(next)
      })

      it('keeps an earlier deadline the old key already had (grace min rule)', async () => {
        const now = Date.now()
        const old = await makeRecord({ expiresAt: now + 10_000 })
        await store.insert(old)
        const { previous } = await store.rotate({ oldKeyId: old.id, newKey: await successorOf(old), graceDeadline: now + 3_600_000, now })
        expect(previous.expiresAt).toBe(now + 10_000)
      })

      it('moves a later deadline forward to the grace deadline', async () => {
        const now = Date.now()
        const old = await makeRecord({ expiresAt: now + 3_600_000 })
        await store.insert(old)
        const { previous } = await store.rotate({ oldKeyId: old.id, newKey: await successorOf(old), graceDeadline: now + 10_000, now })
        expect(previous.expiresAt).toBe(now + 10_000)
        expect((await store.get(old.id))?.expiresAt).toBe(now + 10_000)
      })

      it('ends the old key at once with a grace deadline of now', async () => {
        const now = Date.now()
        const old = await makeRecord()
        await store.insert(old)
        const { previous } = await store.rotate({ oldKeyId: old.id, newKey: await successorOf(old), graceDeadline: now, now })
        expect(previous.expiresAt).toBe(now)
        const read = await store.get(old.id)
        expect(read?.expiresAt).toBeLessThanOrEqual(now)
        expect(read?.rotatedTo).toBe(previous.rotatedTo)
      })

      it('throws KeyNotFoundError for an unknown key', async () => {
        const ghost = await makeRecord()
        const now = Date.now()
        const error = await rejection(store.rotate({ oldKeyId: ghost.id, newKey: await successorOf(ghost), graceDeadline: now, now }))
        expect(error).toBeInstanceOf(KeyNotFoundError)
      })

      it('refuses a second rotation of the same key with AlreadyRotatedError naming the successor', async () => {
        const old = await makeRecord()
        await store.insert(old)
        const now = Date.now()
        const first = await successorOf(old)
        await store.rotate({ oldKeyId: old.id, newKey: first, graceDeadline: now + 60_000, now })
        const second = await successorOf(old)
        const error = await rejection(store.rotate({ oldKeyId: old.id, newKey: second, graceDeadline: now + 60_000, now }))
        expect(error).toBeInstanceOf(AlreadyRotatedError)
        expect((error as AlreadyRotatedError).rotatedTo).toBe(first.id)
        expect(await store.get(second.id)).toBeNull()
      })

      it(`lets exactly one of ${concurrency} concurrent rotations of one key win`, async () => {
        const old = await makeRecord()
        await store.insert(old)
        const now = Date.now()
        const candidates = await Promise.all(Array.from({ length: concurrency }, () => successorOf(old)))
        const results = await Promise.allSettled(
          candidates.map((newKey) => store.rotate({ oldKeyId: old.id, newKey, graceDeadline: now + 60_000, now })),
        )
        const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [candidates[i] as KeyRecord] : []))
        expect(winners).toHaveLength(1)
        for (const result of results) {
          if (result.status === 'rejected') expect(result.reason).toBeInstanceOf(AlreadyRotatedError)
        }
        const winner = winners[0] as KeyRecord
        expect((await store.get(old.id))?.rotatedTo).toBe(winner.id)
        for (const candidate of candidates) {
          if (candidate.id !== winner.id) expect(await store.get(candidate.id)).toBeNull()
        }
        const listed = await store.list({ tenantId: old.tenantId })
        expect(listed.map((r) => r.id).sort()).toEqual([old.id, winner.id].sort())
      })

      it('throws KeyRevokedError for a revoked key', async () => {
        const old = await makeRecord()
        await store.insert(old)
        const now = Date.now()
        await store.revoke({ keyId: old.id, at: now, reason: 'leaked' })
        const error = await rejection(store.rotate({ oldKeyId: old.id, newKey: await successorOf(old), graceDeadline: now, now }))
        expect(error).toBeInstanceOf(KeyRevokedError)
        expect((error as KeyRevokedError).reason).toBe('leaked')
      })

      it('throws KeyExpiredError for a key past its deadline', async () => {
        const now = Date.now()
        const old = await makeRecord({ createdAt: now - 60_000, expiresAt: now - 1_000 })
        await store.insert(old)
        const error = await rejection(store.rotate({ oldKeyId: old.id, newKey: await successorOf(old), graceDeadline: now + 60_000, now }))
        expect(error).toBeInstanceOf(KeyExpiredError)
        expect((error as KeyExpiredError).expiredAt).toBe(now - 1_000)
      })

      it('refuses a successor whose id is taken and leaves the old key untouched', async () => {
        const old = await makeRecord()
        const other = await makeRecord({ id: newKeyId(old.familyId) })
        await store.insert(old)
        await store.insert(other)
        const now = Date.now()
        const error = await rejection(store.rotate({ oldKeyId: old.id, newKey: { ...other, name: 'clash' }, graceDeadline: now, now }))
        expect(error).toBeInstanceOf(InvalidInputError)
        expect(await store.get(old.id)).toEqual(old)
        expect(await store.get(other.id)).toEqual(other)
      })
    })

    describe('revoke', () => {
      it('marks the key revoked with time, reason and incident', async () => {
        const record = await makeRecord()
        await store.insert(record)
        const at = Date.now()
        const revoked = await store.revoke({ keyId: record.id, at, reason: 'leaked in a log', incidentId: 'INC-7' })
        expect(revoked).toEqual({ ...record, revokedAt: at, revokedReason: 'leaked in a log', incidentId: 'INC-7' })
        expect(await store.get(record.id)).toEqual(revoked)
      })

      it('is idempotent: a second revoke keeps the first time and reason', async () => {
        const record = await makeRecord()
        await store.insert(record)
        const at = Date.now()
        await store.revoke({ keyId: record.id, at, reason: 'first' })
        const again = await store.revoke({ keyId: record.id, at: at + 5_000, reason: 'second' })
        expect(again.revokedAt).toBe(at)
        expect(again.revokedReason).toBe('first')
      })

      it('stores a null reason and no incident when none is given', async () => {
        const record = await makeRecord()
        await store.insert(record)
        const revoked = await store.revoke({ keyId: record.id, at: Date.now(), reason: null })
        expect(revoked.revokedReason).toBeNull()
        expect(revoked.incidentId).toBeNull()
      })

      it('revokes a key in its grace period, keeping the rotation link', async () => {
        const old = await makeRecord()
        await store.insert(old)
        const now = Date.now()
        const next = await successorOf(old)
        await store.rotate({ oldKeyId: old.id, newKey: next, graceDeadline: now + 60_000, now })
        const revoked = await store.revoke({ keyId: old.id, at: now + 1, reason: 'grace cut' })
        expect(revoked).toMatchObject({ revokedAt: now + 1, rotatedTo: next.id, expiresAt: now + 60_000 })
      })

      it('keeps an expired key revocable and readable', async () => {
        const now = Date.now()
        const record = await makeRecord({ createdAt: now - 60_000, expiresAt: now - 1_000 })
        await store.insert(record)
        const revoked = await store.revoke({ keyId: record.id, at: now, reason: 'cleanup' })
        expect(revoked).toMatchObject({ revokedAt: now, expiresAt: now - 1_000, hash: record.hash })
      })

      it('throws KeyNotFoundError for an unknown key', async () => {
        expect(await rejection(store.revoke({ keyId: newKeyId(), at: Date.now(), reason: null }))).toBeInstanceOf(KeyNotFoundError)
      })
    })

    describe('emergencyRotate', () => {
      it('revokes the old key and adds the successor in one step', async () => {
        const old = await makeRecord()
        await store.insert(old)
        const next = await successorOf(old)
        const at = Date.now()
        const { revoked, next: stored } = await store.emergencyRotate({ oldKeyId: old.id, newKey: next, at, reason: 'leak', incidentId: 'INC-1' })
        expect(revoked).toEqual({ ...old, revokedAt: at, revokedReason: 'leak', incidentId: 'INC-1', rotatedTo: next.id, rotatedAt: at })
        expect(stored).toEqual(next)
        expect(await store.get(old.id)).toEqual(revoked)
        expect(await store.get(next.id)).toEqual(next)
      })

      it('throws AlreadyRotatedError for a key in its grace period', async () => {
        const old = await makeRecord()
        await store.insert(old)
        const now = Date.now()
        await store.rotate({ oldKeyId: old.id, newKey: await successorOf(old), graceDeadline: now + 60_000, now })
        const late = await successorOf(old)
        const error = await rejection(store.emergencyRotate({ oldKeyId: old.id, newKey: late, at: now, reason: 'leak', incidentId: 'INC-2' }))
        expect(error).toBeInstanceOf(AlreadyRotatedError)
        expect((await store.get(old.id))?.revokedAt).toBeNull()
        expect(await store.get(late.id)).toBeNull()
      })

      it('throws KeyRevokedError, KeyExpiredError and KeyNotFoundError like rotate', async () => {
        const now = Date.now()
        const revoked = await makeRecord()
        await store.insert(revoked)
        await store.revoke({ keyId: revoked.id, at: now, reason: null })
        const expired = await makeRecord({ createdAt: now - 60_000, expiresAt: now - 1 })
        await store.insert(expired)
        const ghost = await makeRecord()
        const input = async (old: KeyRecord) => ({ oldKeyId: old.id, newKey: await successorOf(old), at: now, reason: 'r', incidentId: 'i' })
        expect(await rejection(store.emergencyRotate(await input(revoked)))).toBeInstanceOf(KeyRevokedError)
        expect(await rejection(store.emergencyRotate(await input(expired)))).toBeInstanceOf(KeyExpiredError)
        expect(await rejection(store.emergencyRotate(await input(ghost)))).toBeInstanceOf(KeyNotFoundError)
      })

      it(`lets exactly one of concurrent emergency rotations and rotations win`, async () => {
        const old = await makeRecord()
        await store.insert(old)
        const now = Date.now()
        const attempts = await Promise.allSettled(
          Array.from({ length: concurrency }, async (_, i) => {
            const newKey = await successorOf(old)
            return i % 2 === 0
              ? store.rotate({ oldKeyId: old.id, newKey, graceDeadline: now + 60_000, now })
              : store.emergencyRotate({ oldKeyId: old.id, newKey, at: now, reason: 'leak', incidentId: 'INC-3' })
          }),
        )
        expect(attempts.filter((a) => a.status === 'fulfilled')).toHaveLength(1)
        for (const attempt of attempts) {
          if (attempt.status === 'rejected') {
            expect([AlreadyRotatedError, KeyRevokedError].some((type) => attempt.reason instanceof type)).toBe(true)
          }
        }
      })
    })

    describe('setExpiry', () => {
      it('sets, moves and removes a deadline', async () => {
        const record = await makeRecord()
        await store.insert(record)
        const soon = Date.now() + 60_000
        expect((await store.setExpiry(record.id, soon)).expiresAt).toBe(soon)
        expect((await store.get(record.id))?.expiresAt).toBe(soon)
        expect((await store.setExpiry(record.id, null)).expiresAt).toBeNull()
        expect((await store.get(record.id))?.expiresAt).toBeNull()
      })

      it('ends a key now and brings an expired key back when extended', async () => {
        const record = await makeRecord()
        await store.insert(record)
        const now = Date.now()
        expect((await store.setExpiry(record.id, now - 1)).expiresAt).toBe(now - 1)
        expect((await store.get(record.id))?.expiresAt).toBe(now - 1)
        const later = now + 60_000
        const back = await store.setExpiry(record.id, later)
        expect(back).toEqual({ ...record, expiresAt: later })
        expect(await store.get(record.id)).toEqual({ ...record, expiresAt: later })
      })

      it('throws KeyNotFoundError for an unknown key', async () => {
        expect(await rejection(store.setExpiry(newKeyId(), Date.now()))).toBeInstanceOf(KeyNotFoundError)
      })
    })

    describe('updateHash', () => {
      it('replaces the hash and nothing else', async () => {
        const record = await makeRecord()
        await store.insert(record)
        const rehashed = await hasher.hash(generateToken('sk_test', record.id))
        await store.updateHash(record.id, rehashed)
        expect(await store.get(record.id)).toEqual({ ...record, hash: rehashed })
      })

      it('throws KeyNotFoundError for an unknown key', async () => {
        expect(await rejection(store.updateHash(newKeyId(), '$x$'))).toBeInstanceOf(KeyNotFoundError)
      })

      it('with the hash it replaces, writes only while that hash is stored (a legacy upgrade lands once)', async () => {
        const record = await makeRecord()
        await store.insert(record)
        expect(await store.updateHash(record.id, '$first$', record.hash)).toBe(true)
        expect(await store.updateHash(record.id, '$second$', record.hash)).toBe(false)
        expect((await store.get(record.id))?.hash).toBe('$first$')
      })
    })

    describe('list', () => {
      it('lists one tenant newest first, or every tenant, with a limit', async () => {
        const base = Date.now() - 10_000
        const a1 = await makeRecord({ tenantId: 'tenant-a', createdAt: base + 1 })
        const a2 = await makeRecord({ tenantId: 'tenant-a', createdAt: base + 3 })
        const b1 = await makeRecord({ tenantId: 'tenant-b:eu@corp', createdAt: base + 2 })
        for (const record of [a1, b1, a2]) await store.insert(record)
        expect((await store.list({ tenantId: 'tenant-a' })).map((r) => r.id)).toEqual([a2.id, a1.id])
        expect((await store.list({ tenantId: 'tenant-b:eu@corp' })).map((r) => r.id)).toEqual([b1.id])
        expect(await store.list({ tenantId: 'nobody' })).toEqual([])
        expect((await store.list({})).map((r) => r.id)).toEqual([a2.id, b1.id, a1.id])
        expect((await store.list({ limit: 2 })).map((r) => r.id)).toEqual([a2.id, b1.id])
        expect((await store.list({ tenantId: 'tenant-a', limit: 1 })).map((r) => r.id)).toEqual([a2.id])
      })

      it('lists expired, revoked and rotated keys with their current state', async () => {
        const now = Date.now()
        const old = await makeRecord({ tenantId: 'states', createdAt: now - 3 })
        const gone = await makeRecord({ tenantId: 'states', createdAt: now - 2, expiresAt: now - 1 })
        const bad = await makeRecord({ tenantId: 'states', createdAt: now - 1 })
        for (const record of [old, gone, bad]) await store.insert(record)
        const next = await successorOf(old, { createdAt: now })
        await store.rotate({ oldKeyId: old.id, newKey: next, graceDeadline: now + 60_000, now })
        await store.revoke({ keyId: bad.id, at: now, reason: 'x' })
        const listed = await store.list({ tenantId: 'states' })
        expect(listed.map((r) => r.id)).toEqual([next.id, bad.id, gone.id, old.id])
        expect(listed.find((r) => r.id === old.id)?.rotatedTo).toBe(next.id)
        expect(listed.find((r) => r.id === bad.id)?.revokedAt).toBe(now)
        expect(listed.find((r) => r.id === gone.id)?.expiresAt).toBe(now - 1)
      })
    })

    describe('usage', () => {
      it('counts uses, the last use and the last use in grace once flushed', async () => {
        const record = await makeRecord()
        await store.insert(record)
        const t0 = Date.now()
        store.recordUsage(record.id, t0, false)
        store.recordUsage(record.id, t0 + 5, true)
        store.recordUsage(record.id, t0 + 10, false)
        store.recordUsage(newKeyId(), t0, false)
        const reader = harness.reopen ? await harness.reopen() : store
        const read = await reader.get(record.id)
        expect(read).toMatchObject({ usageCount: 3, lastUsedAt: t0 + 10, lastUsedInGraceAt: t0 + 5 })
      })

      it('never blocks or throws, even for unknown keys', async () => {
        expect(() => {
          for (let i = 0; i < 100; i++) store.recordUsage(newKeyId(), Date.now(), i % 2 === 0)
        }).not.toThrow()
      })
    })

    describeSharedProofContract({ store: () => store, makeRecord, successorOf })
    describeRotationUsageContract(() => harness, makeRecord)
    describeCreditsContract(() => harness, makeRecord)
    describePolicyContract(() => harness, makeRecord)
    describe('restoreRevocation', () => {
      it('stores a key the store lost as the revoked record, and revokes a stored key that is not', async () => {
        if (!store.restoreRevocation) return expect(store.restoreRevocation).toBeUndefined()
        const at = Date.now()
        const lost = await makeRecord({ revokedAt: at, revokedReason: 'leaked', incidentId: 'INC-9' })
        expect(await store.restoreRevocation(lost)).toBe(true)
        expect(await store.get(lost.id)).toMatchObject({ id: lost.id, tenantId: 'acme', revokedAt: at, revokedReason: 'leaked', incidentId: 'INC-9' })
        const stored = await makeRecord()
        await store.insert(stored)
        expect(await store.restoreRevocation({ ...stored, revokedAt: at, revokedReason: 'left' })).toBe(true)
        expect(await store.get(stored.id)).toMatchObject({ revokedAt: at, revokedReason: 'left' })
      })

      it('never loosens or rewrites a revocation: an already revoked key is left as it is', async () => {
        if (!store.restoreRevocation) return expect(store.restoreRevocation).toBeUndefined()
        const record = await makeRecord()
        await store.insert(record)
        const at = Date.now()
        await store.revoke({ keyId: record.id, at, reason: 'first' })
        expect(await store.restoreRevocation({ ...record, revokedAt: at + 5_000, revokedReason: 'second' })).toBe(false)
        expect(await store.get(record.id)).toMatchObject({ revokedAt: at, revokedReason: 'first' })
      })
    })

    if (options.subscribe ?? true) describe('subscribe', () => {
      it('tells listeners which key changed on rotate, revoke, emergency rotation and setExpiry', async () => {
        if (!store.subscribe) throw new Error(`${name} has no subscribe() but the suite was told it has`)
        const events: InvalidationEvent[] = []
        const peerEvents: InvalidationEvent[] = []
        const stop = store.subscribe((event) => events.push(event))
        const stopPeer = harness.peer?.subscribe?.((event) => peerEvents.push(event))
        await settleSubscriptions(harness)
        const now = Date.now()
        const [a, b, c, d] = await Promise.all([makeRecord(), makeRecord(), makeRecord(), makeRecord()])
        for (const record of [a, b, c, d] as KeyRecord[]) await store.insert(record)
        const changed = [a, b, c, d].map((r) => (r as KeyRecord).id)
        await store.rotate({ oldKeyId: changed[0] as string, newKey: await successorOf(a as KeyRecord), graceDeadline: now + 60_000, now })
        await store.revoke({ keyId: changed[1] as string, at: now, reason: null })
        await store.emergencyRotate({ oldKeyId: changed[2] as string, newKey: await successorOf(c as KeyRecord), at: now, reason: 'r', incidentId: 'i' })
        await store.setExpiry(changed[3] as string, now + 1_000)
        const keyIds = (list: InvalidationEvent[]) => list.flatMap((e) => (e.type === 'key' ? [e.keyId] : []))
        await eventually(() => expect(keyIds(events)).toEqual(expect.arrayContaining(changed)), notificationTimeoutMs)
        if (harness.peer?.subscribe) {
          await eventually(() => expect(keyIds(peerEvents)).toEqual(expect.arrayContaining(changed)), notificationTimeoutMs)
        }
        stop()
        stopPeer?.()
      })

      it('stops calling a listener once it unsubscribed', async () => {
        if (!store.subscribe) throw new Error(`${name} has no subscribe() but the suite was told it has`)
        const kept: InvalidationEvent[] = []
        const dropped: InvalidationEvent[] = []
        const stopKept = store.subscribe((event) => kept.push(event))
        const stopDropped = store.subscribe((event) => dropped.push(event))
        await settleSubscriptions(harness)
        stopDropped()
        const record = await makeRecord()
        await store.insert(record)
        await store.revoke({ keyId: record.id, at: Date.now(), reason: null })
        await eventually(() => expect(kept.flatMap((e) => (e.type === 'key' ? [e.keyId] : []))).toContain(record.id), notificationTimeoutMs)
        expect(dropped.filter((e) => e.type === 'key')).toEqual([])
        stopKept()
      })
    })
  })
}

/** Waits until the stores' invalidation feeds are live, if they say when. */
async function settleSubscriptions(harness: StoreContractHarness): Promise<void> {
  for (const store of [harness.store, harness.peer]) {
    const ready = (store as { invalidationReady?: () => Promise<void> } | undefined)?.invalidationReady
    if (typeof ready === 'function') await ready.call(store)
  }
}
