import { masterKeysFromEnv, proofKeyFromEnv, type KeyringOptions } from '@keyrot/core'
import { UsageError } from './exit-codes.js'

/** Where the CLI reads the master keys that encrypt signing secrets: `id:base64key[,id:base64key...]`, newest first. */
export const MASTER_KEYS_VARIABLE = 'KEYROT_MASTER_KEYS'

/**
 * Keyring options for signing secrets from `KEYROT_MASTER_KEYS`, or none
 * when it is not set (API keys only). A malformed value is a usage error
 * whose message names the variable, never key material.
 */
export function signingOptionsFromEnv(env: Record<string, string | undefined>): Pick<KeyringOptions, 'signing'> {
  const value = env[MASTER_KEYS_VARIABLE]
  if (value === undefined || value.trim() === '') return {}
  try {
    return { signing: { masterKeys: masterKeysFromEnv(env, MASTER_KEYS_VARIABLE) } }
  } catch (error) {
    throw new UsageError((error as Error).message, 'KEYROT_CLI_MASTER_KEYS')
  }
}

/**
 * The fleet-wide proof key of `keyrot serve` (docs/redis.md#shared-proofs):
 * `KEYROT_PROOF_KEY`, else derived from `KEYROT_MASTER_KEYS`, else none
 * (`null`: each replica proves each key with Argon2). A malformed value is a
 * usage error naming the variable.
 */
export function proofOptionsFromEnv(env: Record<string, string | undefined>): Pick<KeyringOptions, 'proofKey'> {
  try {
    return { proofKey: proofKeyFromEnv(env) }
  } catch (error) {
    throw new UsageError((error as Error).message, 'KEYROT_CLI_PROOF_KEY')
  }
}
