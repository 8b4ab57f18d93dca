import type { HistoryEntry, HistoryVerification } from '../audit/history.js'
import type { HistoryRecorder } from '../audit/history-recorder.js'
import type { Clock } from '../clock.js'
import type { Duration } from '../duration.js'
import { InvalidInputError } from '../errors.js'
import type { KeyStore } from '../store/store.js'
import { familyOf, isKeyId } from '../token/format.js'
import { toApiKey, type ApiKey } from '../types.js'
import { checkDuration, checkTenantId, checkTimestamp } from './validate.js'

// The keyring's read-only queries: keys by tenant, state, deadline and use,
// and the shared admin history. The doc comments of the `Keyring` methods
// that run them say what each returns.

/** What the queries read through: a keyring (the `Keyring` itself fits). */
export interface KeySource {
  readonly store: KeyStore
  readonly clock: Clock
  list(query: { tenantId?: string }): Promise<ApiKey[]>
}

/** `keyring.list()`. */
export async function listKeys(source: KeySource, query: { tenantId?: string; state?: ApiKey['state']; limit?: number }): Promise<ApiKey[]> {
  if (query.tenantId !== undefined) checkTenantId(query.tenantId)
  if (query.state !== undefined && !['active', 'grace', 'expired', 'revoked'].includes(query.state)) {
    throw new InvalidInputError('state', 'must be one of active, grace, expired, revoked')
  }
  if (query.limit !== undefined && (!Number.isInteger(query.limit) || query.limit < 0)) {
    throw new InvalidInputError('limit', 'must be a non-negative integer')
  }
  const now = source.clock.now()
  const records = await source.store.list({ tenantId: query.tenantId })
  const keys = records.map((record) => toApiKey(record, now)).filter((key) => query.state === undefined || key.state === query.state)
  return query.limit === undefined ? keys : keys.slice(0, query.limit)
}

/** `keyring.expiringWithin()`. */
export async function keysExpiringWithin(source: KeySource, window: Duration, query: { tenantId?: string }): Promise<ApiKey[]> {
  const ms = checkDuration(window, 'window')
  const now = source.clock.now()
  const keys = await source.list(query)
  return keys
    .filter((key) => (key.state === 'active' || key.state === 'grace') && key.expiresAt !== null && key.expiresAt - now <= ms)
    .sort((a, b) => (a.expiresAt as number) - (b.expiresAt as number))
}

/** `keyring.unusedSince()`. */
export async function keysUnusedSince(source: KeySource, since: number | Date | string, query: { tenantId?: string }): Promise<ApiKey[]> {
  const at = checkTimestamp(since, 'since') as number
  const keys = await source.list(query)
  return keys.filter((key) => (key.state === 'active' || key.state === 'grace') && (key.lastUsedAt ?? key.createdAt) < at)
}

/** `keyring.history()`: `recorder` is the keyring's (`null` without the `history` option). */
export async function familyHistory(recorder: HistoryRecorder | null, keyId: string, options: { limit?: number }): Promise<HistoryEntry[]> {
  const checked = requireRecorder(recorder)
  if (!isKeyId(keyId)) throw new InvalidInputError('keyId', 'must be a key id string')
  if (options.limit !== undefined && (!Number.isSafeInteger(options.limit) || options.limit < 0)) {
    throw new InvalidInputError('limit', 'must be a non-negative integer')
  }
  await checked.settled()
  return checked.log.read({ familyId: familyOf(keyId), limit: options.limit })
}

/** `keyring.verifyHistory()`. */
export async function verifyAdminHistory(recorder: HistoryRecorder | null): Promise<HistoryVerification> {
  const checked = requireRecorder(recorder)
  await checked.settled()
  return checked.log.verify()
}

function requireRecorder(recorder: HistoryRecorder | null): HistoryRecorder {
  if (!recorder) throw new TypeError('the admin history needs a history log: createKeyring({ history: new MemoryHistoryLog() })')
  return recorder
}
