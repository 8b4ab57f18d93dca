import type { CreditsInput, CreditsState } from '../credits/credits.js'
import type { Duration } from '../duration.js'
import type { KeyrotError } from '../errors.js'
import type { RequestContext } from '../events.js'
import type { RotationDue } from '../policy/policy-options.js'
import type { RateLimitInfo } from '../rate-limit/headers.js'
import type { ApiKey, KeyMetadata } from '../types.js'
import type { RateLimitInput } from './validate.js'

export interface CreateKeyInput {
  tenantId: string
  name: string
  scopes?: string[]
  /** When the key stops working: epoch ms, Date or ISO string. Default: never. */
  expiresAt?: number | Date | string | null
  /**
   * The key's lifetime instead of `expiresAt`: `'90d'` or milliseconds,
   * counted from the moment the key is created (its `createdAt`), so that
   * `expiresAt - createdAt` is exactly this. Not with `expiresAt`.
   */
  expiresIn?: Duration
  metadata?: KeyMetadata
  /** Token prefix, e.g. `'sk_test'`. Default: the keyring's. */
  prefix?: string
  /** Per-key request limit, kept across rotations. Default: the limiter's. */
  rateLimit?: RateLimitInput
  /**
   * Uses the key (and every key rotated from it) may spend:
   * `{ remaining: 1000, refill: { amount: 1000, interval: '1d' } }`. Each
   * successful verify spends 1, or its `cost`. Default: unlimited.
   * `remaining: 0` is a key with no uses until its refill, not an unlimited one.
   */
  credits?: CreditsInput | null
  /**
   * Client IP addresses or CIDR ranges (IPv4 and IPv6) the key may be used
   * from, kept across rotations. A request from elsewhere fails with 403
   * `KEYROT_IP_NOT_ALLOWED`, only after its secret is proven. Default
   * (`undefined` or `null`): any IP.
   */
  allowedIps?: readonly string[] | null
}

export interface RotateOptions {
  /** How long the old key keeps working. Default: the keyring's `gracePeriod`. `0`: it stops now. */
  gracePeriod?: Duration
  /** Overrides for the new key; by default it inherits the old key's. */
  name?: string
  scopes?: string[]
  metadata?: KeyMetadata
  /** Expiry of the new key. Default: the old key's lifetime again, from now (none if it had none). */
  expiresAt?: number | Date | string | null
}

export interface VerifyOptions extends RequestContext {
  /** Every one of these scopes must be on the key. */
  scopes?: readonly string[]
  /** Credits this request spends from a key with credits. Default 1; `0` spends none (but an empty balance still refuses). Ignored for keys without credits. */
  cost?: number
}

export type VerifyResult =
  | {
      ok: true
      key: ApiKey
      /** True when no store read and no hashing was needed. */
      cached: boolean
      /** The key's quota after this request (for `RateLimit` headers); absent when the key has none. */
      rateLimit?: RateLimitInfo
      /** The key family's credits after this request; absent when the key has no credits. */
      credits?: CreditsState
      /** The key is due (or overdue) under its rotation policy; absent before the warning window or without a policy. */
      rotation?: RotationDue
    }
  | {
      ok: false
      error: KeyrotError
      /** The key id from the token, when it was well-formed. */
      keyId: string | undefined
    }

export interface IssuedKey {
  /** The plaintext token. Shown once: keyrot keeps only its hash. */
  token: string
  key: ApiKey
}
