import { proofKeyFromEnv, type KeyringOptions } from '@keyrot/core'
import { UsageError } from './exit-codes.js'

/** Base64 key of the index of imported keys; without it the key is derived from the proof key. */
export const IMPORT_KEY_VARIABLE = 'KEYROT_IMPORT_KEY'
/** Comma-separated token prefixes of imported keys (e.g. `old_,legacy-`), routed to the index by `keyrot serve`. */
export const IMPORTED_PREFIXES_VARIABLE = 'KEYROT_IMPORTED_PREFIXES'

/**
 * Keyring options for imported keys (docs/policies.md#importing-keys) from
 * the environment: `KEYROT_IMPORT_KEY`, else the proof key
 * (`KEYROT_PROOF_KEY`, or derived from `KEYROT_MASTER_KEYS`), and
 * `KEYROT_IMPORTED_PREFIXES` unless `prefixes` are given. Every process
 * that imports or verifies imported keys needs the same key. A malformed
 * value is a usage error naming the variable, never key material.
 */
export function importOptionsFromEnv(env: Record<string, string | undefined>, prefixes?: string[]): Pick<KeyringOptions, 'importKey' | 'importedPrefixes' | 'proofKey'> {
  const listed = prefixes ?? (env[IMPORTED_PREFIXES_VARIABLE] ?? '').split(',').map((item) => item.trim()).filter((item) => item.length > 0)
  const raw = env[IMPORT_KEY_VARIABLE]?.trim()
  if (raw !== undefined && raw !== '') {
    const key = Buffer.from(raw, 'base64')
    if (key.length < 32) throw new UsageError(`${IMPORT_KEY_VARIABLE} must be base64 of at least 32 random bytes`, 'KEYROT_CLI_IMPORT_KEY')
    return { importKey: key, importedPrefixes: listed }
  }
  let proofKey: Buffer | null
  try {
    proofKey = proofKeyFromEnv(env)
  } catch (error) {
    throw new UsageError((error as Error).message, 'KEYROT_CLI_PROOF_KEY')
  }
  if (proofKey === null) {
    if (listed.length === 0) return {}
    throw new UsageError(`imported keys need ${IMPORT_KEY_VARIABLE} (or KEYROT_PROOF_KEY / KEYROT_MASTER_KEYS to derive it from)`, 'KEYROT_CLI_IMPORT_KEY')
  }
  return { proofKey, importedPrefixes: listed }
}
