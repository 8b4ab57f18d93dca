import type { CreditsChange, CreditsRefill, CreditsState } from '../credits/credits.js'
import type { TenantPolicy } from '../policy/policy-options.js'
import type { KeyRecord } from '../types.js'
import type { RotationUsage, RotationUsageQuery, RotationUse } from './rotation-usage.js'

export interface RotateInput {
  oldKeyId: string
  /** The successor, fully built by the keyring (`rotatedFrom` set to `oldKeyId`). */
  newKey: KeyRecord
  /**
   * The old key's deadline if it had no earlier one. The store sets the old
   * key's `expiresAt` to `min(current expiresAt, graceDeadline)`.
   */
  graceDeadline: number
  now: number
}

export interface RevokeInput {
  keyId: string
  at: number
  reason: string | null
  incidentId?: string | null
}

export interface EmergencyRotateInput {
  oldKeyId: string
  newKey: KeyRecord
  at: number
  reason: string
  incidentId: string
}

/** Spends credits of a key family's balance (see credits/credits.ts). */
export interface SpendCreditsInput {
  familyId: string
  /** Credits to take; refused when fewer than `max(cost, 1)` are left. */
  cost: number
  /** The family's refill, from the key record. */
  refill: CreditsRefill | null
  now: number
}

/** An operator's change of a key family's balance. */
export interface AdjustCreditsInput {
  familyId: string
  change: CreditsChange
  refill: CreditsRefill | null
  now: number
}

export interface ListQuery {
  tenantId?: string
  /** At most this many records (default: all). */
  limit?: number
}

/** Called with the id of a key whose state changed on another replica. */
export type InvalidationListener = (event: InvalidationEvent) => void

export type InvalidationEvent =
  /** `sentAt`: the sender's clock (epoch ms) when it published the change, for the delivery-lag metric. Optional. */
  | { type: 'key'; keyId: string; sentAt?: number }
  /** The feed may have lost messages (reconnect, missed heartbeat): drop every cached state. */
  | { type: 'reset'; reason: string }
  /**
   * The store itself came back without data it had (`empty`: its identity is
   * gone or new; `rollback`: its change sequence is lower than one this
   * process saw). Records read from it may be missing or older than the truth.
   */
  | { type: 'store-reset'; cause: StoreResetCause; detail: string; at: number }

/** Why a store counts as reset: it came back `empty`, or from an older copy (`rollback`). */
export type StoreResetCause = 'empty' | 'rollback'

/**
 * The narrow contract a key store meets. `test/contract` holds the suite every
 * store passes.
 *
 * Concurrency guarantee: `insert`, `rotate`, `revoke`, `emergencyRotate` and
 * `setExpiry` are each atomic. Of concurrent `rotate`s of one key exactly one
 * succeeds; the others throw `AlreadyRotatedError`.
 *
 * Errors: `KeyNotFoundError` for an unknown id, `AlreadyRotatedError`,
 * `KeyRevokedError` / `KeyExpiredError` when the key can no longer be rotated,
 * `StoreUnavailableError` when the backend cannot be reached in time.
 */
export interface KeyStore {
  /** Inserts a new key. Throws `InvalidInputError` if the id is taken. */
  insert(record: KeyRecord): Promise<void>
  /** The record, or `null` if unknown (or gone past its retention). */
  get(keyId: string): Promise<KeyRecord | null>
  /** Atomically adds `newKey` and ends the old key at its grace deadline. Returns both records after the change. */
  rotate(input: RotateInput): Promise<{ previous: KeyRecord; next: KeyRecord }>
  /** Marks a key revoked. Revoking a revoked key changes nothing and returns it. */
  revoke(input: RevokeInput): Promise<KeyRecord>
  /** Atomically adds `newKey` and revokes the old key. */
  emergencyRotate(input: EmergencyRotateInput): Promise<{ revoked: KeyRecord; next: KeyRecord }>
  /** Sets a key's `expiresAt` (end a grace period now, or extend it). */
  setExpiry(keyId: string, expiresAt: number | null): Promise<KeyRecord>
  /**
   * Replaces a key's hash (re-hash with new parameters after a verify). With
   * `replacing`, only while the stored hash is still that one, and resolves
   * `false` when it was not: concurrent first verifies of a legacy key (on
   * any replica) upgrade it once. A store without the check may ignore it.
   */
  updateHash(keyId: string, hash: string, replacing?: string): Promise<void | boolean>
  /**
   * Counts one use. May be batched; must never block the caller. `rotation`
   * is given only when the key is in grace or is a recent successor: a store
   * with `rotationUsage` then also counts the use per minute and, in grace,
   * its client (see `rotation-usage.ts`; never a token).
   */
  recordUsage(keyId: string, at: number, inGrace: boolean, rotation?: RotationUse): void
  /**
   * Rotation uses of a key as every process sharing the store recorded them
   * (per-minute counts; clients of uses in grace). A batching store shows a
   * use once it is flushed. Optional: stores without it show no rotation
   * telemetry.
   */
  rotationUsage?(keyId: string, query: RotationUsageQuery): Promise<RotationUsage>
  /** Keys, newest first. */
  list(query: ListQuery): Promise<KeyRecord[]>
  /**
   * Subscribes to state changes made by other processes. A store shared by
   * one process only may omit it. Returns an unsubscribe function.
   */
  subscribe?(listener: InvalidationListener): () => void
  /**
   * Whether changes made by other processes reach `subscribe()` listeners
   * right now. While it returns `false` (feed disconnected, heartbeats missed)
   * keyrings cache no key state they read: a state read during the gap could
   * miss a change published in it. States cached before the gap stay trusted
   * for at most `cache.stateTtl`. Omit it for stores used by one process.
   */
  invalidationLive?(): boolean
  /**
   * Writes a revocation back to a store that forgot it (after a `store-reset`):
   * inserts `record` as revoked when the key is missing, or marks the stored
   * key revoked with `record.revokedAt` when it is not. Never loosens a key;
   * allowed while the store refuses other writes after a reset. Returns
   * whether the store changed. Stores that never reset may omit it.
   */
  restoreRevocation?(record: KeyRecord): Promise<boolean>
  /**
   * Whether the store was reset and an operator has not accepted it yet: it
   * then refuses admin writes with `StoreResetError`, and keyrings answer
   * `KEYROT_STORE_RESET` (503) instead of "key not found" for keys it lacks.
   */
  resetPending?(): boolean
  /** The operator's acknowledgement of a reset: admin writes work again, on every process sharing the store. */
  acceptReset?(): Promise<void>
  /**
   * Keeps `proof` as the key's `sharedProof`, returned by `get()` from then
   * on, unless the key is gone, revoked or rotated (returns `false`). `rotate`,
   * `emergencyRotate` and `revoke` drop the old key's proof in the same atomic
   * step, so no replica accepts its token by proof afterwards. A store
   * without it shares no proofs: each replica proves each token with Argon2.
   */
  putProof?(keyId: string, proof: string): Promise<boolean>
  /**
   * Spends credits from a key family's balance, after the refills due by
   * `now` (`decideSpend`). Atomic across every process sharing the store:
   * of N concurrent spends on a balance of B, exactly `min(N, B)` (cost 1)
   * succeed. A family with no balance stored counts as empty. Stores without
   * it refuse keys with credits at create.
   */
  spendCredits?(input: SpendCreditsInput): Promise<{ ok: boolean; state: CreditsState }>
  /** A family's balance after the refills due by `now`, without writing it. */
  readCredits?(familyId: string, refill: CreditsRefill | null, now: number): Promise<CreditsState>
  /** Sets or adds to a family's balance (atomic like `spendCredits`). Returns the balance after the change. */
  adjustCredits?(input: AdjustCreditsInput): Promise<CreditsState>
  /**
   * Rotation policies (docs/policies.md): a tenant's override of the
   * keyring's policy, `null` when it has none. Optional, with `setTenantPolicy`:
   * without them only the keyring's `policy` applies.
   */
  getTenantPolicy?(tenantId: string): Promise<TenantPolicy | null>
  /** Stores (or with `null`, removes) a tenant's policy override. */
  setTenantPolicy?(tenantId: string, policy: TenantPolicy | null): Promise<void>
  /**
   * Marks that `key.rotation-due` was emitted for a key, until `untilAt`
   * (epoch ms). Returns `true` for the first caller only (a `SET NX`), so
   * one replica of a fleet emits it. Optional: without it each process emits once.
   */
  markRotationDue?(keyId: string, at: number, untilAt: number): Promise<boolean>
  /**
   * Uses of each key on the UTC days from the one holding `since` through
   * today, counted per UTC day by `recordUsage` (a batching store counts a
   * batch on the day of its last use). Keys without uses are left out.
   * Optional: without it evidence reports show no recent usage.
   */
  usageSince?(keyIds: readonly string[], since: number): Promise<Map<string, number>>
  /**
   * Sets or lifts (`null`) a key's `allowedIps` and tells other processes,
   * like `setExpiry`. Optional: a store without it cannot change the list
   * after `create`.
   */
  setAllowedIps?(keyId: string, allowedIps: string[] | null): Promise<KeyRecord>
  /**
   * The index of imported keys (`keyring.import()`, see imported-keys.ts):
   * the key id holding `index`, or `null`. A store without these methods
   * holds no imported keys.
   */
  findImported?(index: string): Promise<string | null>
  /**
   * Claims `index` for `keyId` unless another key holds it; returns the key
   * id holding it afterwards. Atomic. `expiresAt` lets a store drop the entry
   * with the key (the store drops it on revocation too).
   */
  putImportIndex?(index: string, keyId: string, expiresAt: number | null): Promise<string>
  /** Drops `index` if `keyId` holds it (an import whose record write failed). */
  dropImportIndex?(index: string, keyId: string): Promise<void>
  /** Flushes pending usage counts and releases resources the store opened. */
  close(): Promise<void>
}
