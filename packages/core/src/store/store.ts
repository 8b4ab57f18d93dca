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
  /** Replaces a key's hash (re-hash with new parameters after a verify). */
  updateHash(keyId: string, hash: string): Promise<void>
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
  /** Flushes pending usage counts and releases resources the store opened. */
  close(): Promise<void>
}
