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
export const HAND_ROLLED_QUOTA_SPENT = JSON.stringify({ error: { code: 'rate_limited', message: 'The key has used up its quota for now.' } })

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

/**
 * What a team would add by hand for a per-key quota with the same response
 * headers as keyrot's default one: a fixed-window counter per key and the
 * `RateLimit-Policy` and `RateLimit` fields. Informational in the HTTP table
 * (not a target's reference): it shows what those two headers cost any
 * middleware on this machine, the server setting them and the client
 * parsing them.
 */
export class HandRolledQuota {
  readonly #limit: number
  readonly #windowMs: number
  readonly #policy: string
  readonly #used = new Map<string, { windowStart: number; count: number }>()

  constructor(limit: number, windowMs: number) {
    this.#limit = limit
    this.#windowMs = windowMs
    this.#policy = `"per-key";q=${limit};w=${Math.ceil(windowMs / 1000)}`
  }

  /** Counts one request of the key; the two header values to send, or `null` when its quota is spent (answer 429). */
  take(keyId: string): { policy: string; rateLimit: string } | null {
    const now = Date.now()
    const windowStart = now - (now % this.#windowMs)
    let used = this.#used.get(keyId)
    if (used === undefined || used.windowStart !== windowStart) this.#used.set(keyId, (used = { windowStart, count: 0 }))
    if (used.count >= this.#limit) return null
    used.count++
    const reset = Math.ceil((windowStart + this.#windowMs - now) / 1000)
    return { policy: this.#policy, rateLimit: `"per-key";r=${this.#limit - used.count};t=${reset}` }
  }
}
