import type { Clock } from '../clock.js'
import type { TypedEmitter } from '../events.js'
import type { ResolvedKeyringOptions } from '../options.js'
import type { TenantPolicy } from '../policy/policy-options.js'
import type { KeyStore } from '../store/store.js'
import type { KeyRecord } from '../types.js'
import type { StoreResetGuard } from './store-reset.js'

/**
 * What the key operations (key-issuance.ts, key-admin.ts) use of the keyring
 * that runs them. The keyring builds one and passes it in, so the imports
 * point one way, from keyring.ts to the operations, and the keyring stays
 * the only one that tells the verify path a key changed.
 */
export interface KeyringContext {
  readonly options: ResolvedKeyringOptions
  readonly store: KeyStore
  readonly clock: Clock
  readonly events: TypedEmitter
  /** What this replica knows of keys that a store rollback must not undo (see store-reset.ts). */
  readonly reset: StoreResetGuard
  /** Throws a `TypeError` once the keyring is closed. */
  assertOpen(): void
  /** The stored record of `keyId`: throws `InvalidInputError` for a malformed id, `KeyNotFoundError` for none. */
  mustGet(keyId: string): Promise<KeyRecord>
  /** Drops what the verify path cached of `keyId`. */
  invalidate(keyId: string): void
  /** Tells the verify path's rotation policy of a tenant's new override. */
  noteTenantPolicy(tenantId: string, override: TenantPolicy | null): void
  /** Logs an admin action (`event`) at info level. */
  audit(event: string, fields: Record<string, unknown>): void
  /** Settles once this keyring's pending admin-history appends have (`undefined` without the `history` option). */
  historySettled(): Promise<void> | undefined
}
