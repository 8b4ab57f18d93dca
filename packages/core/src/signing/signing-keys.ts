import { InvalidInputError, KeyExpiredError, KeyNotFoundError, KeyRevokedError } from '../errors.js'
import type { Keyring } from '../lifecycle/keyring.js'
import { isKeyId } from '../token/format.js'
import { stateOf, type KeyRecord } from '../types.js'
import type { SecretSealer } from './sealer.js'
import { isSigningSecret, signingKeyBytes } from './secret.js'

/** Longest rotation chain walked from a secret id to its newest successor, or back to grace predecessors. */
const MAX_CHAIN = 16

/** The keyring's sealer, or a `TypeError` telling how to configure one. */
export function sealerOf(keyring: Keyring): SecretSealer {
  const sealer = keyring.options.signing
  if (!sealer) throw new TypeError('signing needs master keys: createKeyring({ signing: { masterKeys: [{ id, key }] } })')
  return sealer
}

/** The HMAC key of a signing-secret record (decrypted in memory only; never logged or returned). */
export function hmacKeyOf(sealer: SecretSealer, record: KeyRecord): Buffer {
  return signingKeyBytes(sealer.open(record.hash, record.id), `signing secret of key ${record.id}`)
}

/**
 * The records that sign a webhook for `secretId`: the newest secret of its
 * rotation chain (so a sender that still names an old id keeps working after
 * a rotation), then every predecessor still in its grace period, so a
 * receiver configured with either secret verifies. The walk back stops at the
 * first predecessor whose grace has ended or that was revoked.
 *
 * Throws `KeyNotFoundError`, `InvalidInputError` (not a signing secret),
 * `KeyRevokedError` or `KeyExpiredError` when nothing may sign.
 */
export async function webhookSigningRecords(keyring: Keyring, secretId: string, now: number): Promise<KeyRecord[]> {
  if (!isKeyId(secretId)) throw new InvalidInputError('secretId', 'must be a key id (the `key.id` of a signing secret)')
  let newest = await keyring.store.get(secretId)
  if (!newest) throw new KeyNotFoundError(secretId)
  if (!isSigningSecret(newest)) throw new InvalidInputError('secretId', `key ${secretId} is an API key, not a signing secret`)
  for (let hops = 0; newest.rotatedTo !== null && hops < MAX_CHAIN; hops++) {
    const next: KeyRecord | null = await keyring.store.get(newest.rotatedTo)
    if (!next) break
    newest = next
  }
  const state = stateOf(newest, now)
  if (state === 'revoked') throw new KeyRevokedError(newest.id, newest.revokedAt as number, newest.revokedReason)
  if (state === 'expired') throw new KeyExpiredError(newest.id, newest.expiresAt as number)
  const records = [newest]
  let previous = newest.rotatedFrom
  for (let hops = 0; previous !== null && hops < MAX_CHAIN; hops++) {
    const record = await keyring.store.get(previous)
    if (!record || stateOf(record, now) !== 'grace') break
    records.push(record)
    previous = record.rotatedFrom
  }
  return records
}
