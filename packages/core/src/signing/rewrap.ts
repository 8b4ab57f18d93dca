import type { Keyring } from '../lifecycle/keyring.js'
import { errorFields } from '../logger.js'
import { isSealedSecret } from './sealer.js'
import { sealerOf } from './signing-keys.js'

export interface RewrapReport {
  /** Secrets re-encrypted under the newest master key. */
  rewrapped: number
  /** Secrets already under the newest master key, left as they were. */
  current: number
  /** Secrets that could not be re-encrypted (their master key is not configured, or a write failed), by key id. Left unchanged. */
  failed: { keyId: string; reason: string }[]
  /** The master key every re-encrypted secret is now under. */
  masterKeyId: string
}

/**
 * Moves every stored signing secret (any state) to the newest master key: each
 * is decrypted, re-encrypted with a fresh nonce, checked to decrypt to the
 * same secret, then written with `store.updateHash`. Safe to run again and
 * alongside traffic (a secret's value never changes, only its wrapping).
 * When `failed` is empty, older master keys can be removed from the
 * configuration.
 *
 * @example
 * // KEYROT_MASTER_KEYS="2025-06:<new>,2025-01:<old>", then:
 * const report = await rewrapSigningSecrets(keyring)
 * if (report.failed.length === 0) console.log('drop master key 2025-01')
 */
export async function rewrapSigningSecrets(keyring: Keyring): Promise<RewrapReport> {
  const sealer = sealerOf(keyring)
  const logger = keyring.options.logger
  const report: RewrapReport = { rewrapped: 0, current: 0, failed: [], masterKeyId: sealer.currentKeyId }
  for (const record of await keyring.store.list({})) {
    if (!isSealedSecret(record.hash)) continue
    if (sealer.masterKeyIdOf(record.hash) === sealer.currentKeyId) {
      report.current++
      continue
    }
    try {
      const secret = sealer.open(record.hash, record.id)
      const sealed = sealer.seal(secret, record.id)
      // Never write a wrapping that does not give the secret back.
      if (sealer.open(sealed, record.id) !== secret) throw new Error('re-encrypted secret did not decrypt to the same value')
      await keyring.store.updateHash(record.id, sealed)
      report.rewrapped++
    } catch (error) {
      const reason = errorFields(error).err.message
      report.failed.push({ keyId: record.id, reason })
      logger.warn({ event: 'signing.rewrap_failed', keyId: record.id, ...errorFields(error) }, 'keyrot could not re-encrypt a signing secret')
    }
  }
  logger.info(
    { event: 'signing.rewrapped', masterKeyId: report.masterKeyId, rewrapped: report.rewrapped, current: report.current, failed: report.failed.length },
    'keyrot re-encrypted signing secrets under the newest master key',
  )
  return report
}
