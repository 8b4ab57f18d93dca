import { createHash } from 'node:crypto'

/**
 * The reference the HTTP targets are measured against: the API-key check a
 * team would write by hand in a few lines. SHA-256 of the bearer token, one
 * `Map` lookup, the revoked, expiry and scope checks, a 401 JSON body on
 * failure. No abuse protection, no quota, no events, no grace periods: what
 * `apiKeyAuth` must stay close to while doing all of those.
 */

export interface HandRolledKey {
  id: string
  tenantId: string
  scopes: readonly string[]
  revokedAt: number | null
  expiresAt: number | null
}

export const HAND_ROLLED_FAILURE = JSON.stringify({ error: { code: 'invalid_key', message: 'The API key is missing or invalid.' } })

export class HandRolledKeys {
  readonly #keys = new Map<string, HandRolledKey>()
  readonly #scopes: readonly string[]

  /** @param scopes scopes every request must have (the adapters' `scopes` option). */
  constructor(scopes: readonly string[] = []) {
    this.#scopes = scopes
  }

  add(token: string, key: HandRolledKey): void {
    this.#keys.set(sha256(token), key)
  }

  /** The key of an `Authorization: Bearer <token>` header, or `null` (answer 401). */
  check(authorization: string | undefined): HandRolledKey | null {
    if (authorization === undefined || !authorization.startsWith('Bearer ')) return null
    const key = this.#keys.get(sha256(authorization.slice(7)))
    if (key === undefined || key.revokedAt !== null) return null
    if (key.expiresAt !== null && key.expiresAt <= Date.now()) return null
    for (const scope of this.#scopes) if (!key.scopes.includes(scope)) return null
    return key
  }
}

function sha256(token: string): string {
  return createHash('sha256').update(token).digest('hex')
}
