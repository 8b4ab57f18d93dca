import type { RateLimitPolicy } from './rate-limit/limiter.js'

/**
 * Every error keyrot reports, listed once. Codes are stable and never reused;
 * `docs/errors.md` documents each one and a test keeps the two in sync.
 *
 * No message built here ever contains a token or a secret: callers pass key
 * ids, never credentials.
 */
export const ERROR_CODES = {
  KEYROT_MISSING_KEY: { status: 401, message: 'No API key was sent.' },
  KEYROT_INVALID_REQUEST: { status: 400, message: 'The credentials in the request are malformed.' },
  KEYROT_INVALID_KEY: { status: 401, message: 'The API key is not valid.' },
  KEYROT_MALFORMED_TOKEN: { status: 401, message: 'The token is not a well-formed keyrot token.' },
  KEYROT_KEY_NOT_FOUND: { status: 401, message: 'No key exists with this id.' },
  KEYROT_INVALID_SECRET: { status: 401, message: 'The secret does not match the key.' },
  KEYROT_KEY_EXPIRED: { status: 401, message: 'The API key has expired.' },
  KEYROT_KEY_REVOKED: { status: 401, message: 'The API key has been revoked.' },
  KEYROT_INSUFFICIENT_SCOPE: { status: 403, message: 'The API key lacks a required scope.' },
  KEYROT_ALREADY_ROTATED: { status: 409, message: 'The key has already been rotated.' },
  KEYROT_INVALID_INPUT: { status: 400, message: 'The input is not valid.' },
  KEYROT_RATE_LIMITED: { status: 429, message: 'Too many requests.' },
  KEYROT_IP_BLOCKED: { status: 429, message: 'This client is blocked after too many failed attempts.' },
  KEYROT_STORE_UNAVAILABLE: { status: 503, message: 'The key store is unavailable.' },
  KEYROT_STORE_RESET: { status: 503, message: 'The key store was reset; the key cannot be checked until it is restored.' },
  KEYROT_MISSING_SIGNATURE: { status: 401, message: 'No request signature was sent.' },
  KEYROT_INVALID_SIGNATURE: { status: 401, message: 'The request signature is not valid.' },
  KEYROT_STALE_TIMESTAMP: { status: 401, message: 'The signature timestamp is outside the accepted window.' },
  KEYROT_REPLAYED_REQUEST: { status: 401, message: 'This signed request was already received.' },
  KEYROT_PAYLOAD_TOO_LARGE: { status: 413, message: 'The request body is too large to verify.' },
  KEYROT_SECRET_UNREADABLE: { status: 500, message: 'A signing secret cannot be decrypted with the configured master keys.' },
  KEYROT_ROUTE_NOT_FOUND: { status: 404, message: 'No such route.' },
  KEYROT_SIGNING_NOT_CONFIGURED: { status: 501, message: 'Signing secrets need master keys, and none are configured.' },
  KEYROT_ADMIN_TENANT_FORBIDDEN: { status: 403, message: 'This admin key manages only the keys of its own tenant.' },
  KEYROT_OVERLOADED: { status: 503, message: 'The service is busy proving new keys; retry shortly.' },
  KEYROT_MIDDLEWARE_MISUSE: { status: 500, message: 'The authentication middleware was mounted wrongly.' },
  KEYROT_LEAK_SIGNATURE_INVALID: { status: 401, message: 'The leak report is not signed by a known key of its provider.' },
  KEYROT_LEAK_REPORT_INVALID: { status: 400, message: 'The leak report is not a valid batch of tokens.' },
  KEYROT_LEAK_KEYS_UNAVAILABLE: { status: 503, message: "The provider's public keys cannot be fetched; retry later." },
  KEYROT_CREDITS_EXHAUSTED: { status: 429, message: 'The API key has no credits left.' },
  KEYROT_IP_NOT_ALLOWED: { status: 403, message: 'The API key may not be used from this IP address.' },
} as const satisfies Record<string, { status: number; message: string }>

export type ErrorCode = keyof typeof ERROR_CODES

/**
 * Codes that must look alike to an HTTP caller: a malformed token, an unknown
 * key id and a wrong secret all become `KEYROT_INVALID_KEY`, so the response
 * is no oracle for which key ids exist. The precise code stays in `verify()`'s
 * result, in events and in logs.
 */
const PUBLIC_CODE: Partial<Record<ErrorCode, ErrorCode>> = {
  KEYROT_MALFORMED_TOKEN: 'KEYROT_INVALID_KEY',
  KEYROT_KEY_NOT_FOUND: 'KEYROT_INVALID_KEY',
  KEYROT_INVALID_SECRET: 'KEYROT_INVALID_KEY',
}

export function publicCodeOf(code: ErrorCode): ErrorCode {
  return PUBLIC_CODE[code] ?? code
}

/** Base class of every error keyrot throws or returns. */
export class KeyrotError extends Error {
  readonly code: ErrorCode
  /** HTTP status an adapter should answer with. */
  readonly status: number
  /** Id of the key concerned, when known. Never a secret. */
  readonly keyId: string | undefined

  constructor(code: ErrorCode, message?: string, options?: { keyId?: string; cause?: unknown }) {
    super(message ?? ERROR_CODES[code].message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.code = code
    this.status = ERROR_CODES[code].status
    this.keyId = options?.keyId
  }

  /** The code an HTTP caller may see (see {@link publicCodeOf}). */
  get publicCode(): ErrorCode {
    return publicCodeOf(this.code)
  }

  toJSON(): { code: ErrorCode; message: string; keyId?: string } {
    return this.keyId === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, keyId: this.keyId }
  }
}

export class MalformedTokenError extends KeyrotError {
  /** Which rule the token broke (length, charset, checksum...). */
  readonly reason: string
  constructor(reason: string) {
    super('KEYROT_MALFORMED_TOKEN', `The token is not a well-formed keyrot token: ${reason}.`)
    this.reason = reason
  }
}

export class KeyNotFoundError extends KeyrotError {
  constructor(keyId: string) {
    super('KEYROT_KEY_NOT_FOUND', `No key exists with id ${keyId}.`, { keyId })
  }
}

export class InvalidSecretError extends KeyrotError {
  constructor(keyId: string) {
    super('KEYROT_INVALID_SECRET', `The secret does not match key ${keyId}.`, { keyId })
  }
}

export class KeyExpiredError extends KeyrotError {
  readonly expiredAt: number
  constructor(keyId: string, expiredAt: number) {
    super('KEYROT_KEY_EXPIRED', `Key ${keyId} expired at ${new Date(expiredAt).toISOString()}.`, { keyId })
    this.expiredAt = expiredAt
  }
}

export class KeyRevokedError extends KeyrotError {
  readonly revokedAt: number
  readonly reason: string | null
  constructor(keyId: string, revokedAt: number, reason: string | null) {
    super('KEYROT_KEY_REVOKED', `Key ${keyId} was revoked at ${new Date(revokedAt).toISOString()}.`, { keyId })
    this.revokedAt = revokedAt
    this.reason = reason
  }
}

export class InsufficientScopeError extends KeyrotError {
  readonly required: readonly string[]
  readonly missing: readonly string[]
  constructor(keyId: string, required: readonly string[], missing: readonly string[]) {
    super('KEYROT_INSUFFICIENT_SCOPE', `Key ${keyId} lacks the scope(s): ${missing.join(', ')}.`, { keyId })
    this.required = required
    this.missing = missing
  }
}

/**
 * The token's secret was proven, but the request's client IP is outside the
 * key's `allowedIps`. Reported only after the proof: a caller without the
 * secret hears the usual 401 and learns nothing of the list.
 */
export class IpNotAllowedError extends KeyrotError {
  constructor(keyId: string) {
    super('KEYROT_IP_NOT_ALLOWED', `Key ${keyId} may not be used from this client IP.`, { keyId })
  }
}

export class AlreadyRotatedError extends KeyrotError {
  readonly rotatedTo: string | null
  constructor(keyId: string, rotatedTo: string | null, hint = '') {
    super(
      'KEYROT_ALREADY_ROTATED',
      `Key ${keyId} has already been rotated${rotatedTo ? ` to ${rotatedTo}` : ''}; rotate the newest key instead${hint}.`,
      { keyId },
    )
    this.rotatedTo = rotatedTo
  }
}

export class InvalidInputError extends KeyrotError {
  readonly field: string
  constructor(field: string, message: string) {
    super('KEYROT_INVALID_INPUT', `Invalid ${field}: ${message}`)
    this.field = field
  }
}

export class InvalidRequestError extends KeyrotError {
  constructor(message: string) {
    super('KEYROT_INVALID_REQUEST', message)
  }
}

export class MissingKeyError extends KeyrotError {
  constructor() {
    super('KEYROT_MISSING_KEY')
  }
}

export class StoreUnavailableError extends KeyrotError {
  constructor(message = 'The key store is unavailable.', options?: { cause?: unknown; keyId?: string }) {
    super('KEYROT_STORE_UNAVAILABLE', message, options)
  }
}

/**
 * The store came back empty or rolled back (see `docs/redis.md`). A key it
 * cannot find may be one it lost, so the answer is "try again later" (503),
 * never "invalid key"; admin writes wait for an operator's
 * `keyrot store accept-reset`. A `StoreUnavailableError`, so everything that
 * handles an outage (503 with `Retry-After`, stale-if-error) handles it.
 */
export class StoreResetError extends StoreUnavailableError {
  override readonly code: ErrorCode = 'KEYROT_STORE_RESET'
  constructor(message: string = ERROR_CODES.KEYROT_STORE_RESET.message, options?: { cause?: unknown; keyId?: string }) {
    super(message, options)
  }
}

export class RateLimitedError extends KeyrotError {
  /** Milliseconds until the caller may retry. */
  readonly retryAfterMs: number
  readonly limit: number
  readonly windowMs: number
  readonly scope: 'ip' | 'key'
  /** The policy that refused, named as in the `RateLimit` headers. */
  readonly policy: RateLimitPolicy
  /** Units left under the policy (0 when refused). */
  readonly remaining: number
  /** Milliseconds until the policy's quota is whole again (at least `retryAfterMs`). */
  readonly resetMs: number
  constructor(
    code: 'KEYROT_RATE_LIMITED' | 'KEYROT_IP_BLOCKED',
    info: {
      retryAfterMs: number
      limit: number
      windowMs: number
      scope: 'ip' | 'key'
      keyId?: string
      policy?: RateLimitPolicy
      remaining?: number
      resetMs?: number
    },
  ) {
    super(code, undefined, info.keyId === undefined ? undefined : { keyId: info.keyId })
    this.retryAfterMs = info.retryAfterMs
    this.limit = info.limit
    this.windowMs = info.windowMs
    this.scope = info.scope
    this.policy = info.policy ?? (code === 'KEYROT_IP_BLOCKED' ? 'ip-block' : info.scope === 'key' ? 'per-key' : 'ip-failures')
    this.remaining = info.remaining ?? 0
    this.resetMs = Math.max(info.resetMs ?? info.retryAfterMs, info.retryAfterMs)
  }
}

/**
 * A token not proven before needed Argon2, and this replica's Argon2 queue
 * could not start it within `argon2.maxWait`. Tokens proven before are still
 * served. Adapters answer 503 with `Retry-After`.
 */
export class OverloadedError extends KeyrotError {
  /** Milliseconds until the queued Argon2 runs should be done. */
  readonly retryAfterMs: number
  constructor(retryAfterMs: number, options?: { keyId?: string }) {
    super('KEYROT_OVERLOADED', undefined, options)
    this.retryAfterMs = retryAfterMs
  }
}

export function isKeyrotError(value: unknown): value is KeyrotError {
  return value instanceof KeyrotError
}

/** A leak report whose signature headers are missing, name an unknown key, or do not match the body. */
export class LeakSignatureError extends KeyrotError {
  constructor(message = ERROR_CODES.KEYROT_LEAK_SIGNATURE_INVALID.message) {
    super('KEYROT_LEAK_SIGNATURE_INVALID', message)
  }
}

/** A signed leak report that is not a bounded JSON array of `{ token }` objects. */
export class LeakReportError extends KeyrotError {
  constructor(message: string) {
    super('KEYROT_LEAK_REPORT_INVALID', message)
  }
}

/** The provider's public keys could not be fetched (or the report could not be finished now): the provider should retry. */
export class LeakKeysUnavailableError extends KeyrotError {
  /** How long the provider should wait before retrying, in ms. */
  readonly retryAfterMs: number
  constructor(message: string, retryAfterMs: number, options?: { cause?: unknown }) {
    super('KEYROT_LEAK_KEYS_UNAVAILABLE', message, options)
    this.retryAfterMs = retryAfterMs
  }
}

/**
 * The key's credits are spent (`create({ credits })`). Reported only after
 * the token's secret was proven. Adapters answer 429 with `Retry-After`
 * (until the next refill, when the key has one) and `X-Credits-Remaining`.
 */
export class CreditsExhaustedError extends KeyrotError {
  /** Credits left (fewer than the request's cost). */
  readonly remaining: number
  /** Epoch ms of the next refill; `null` when the key has none. */
  readonly nextRefillAt: number | null
  /** Milliseconds until the next refill; `null` when the key has none. */
  readonly retryAfterMs: number | null
  constructor(keyId: string, info: { remaining: number; nextRefillAt: number | null; now: number }) {
    super('KEYROT_CREDITS_EXHAUSTED', `Key ${keyId} has ${info.remaining} credit(s) left.`, { keyId })
    this.remaining = info.remaining
    this.nextRefillAt = info.nextRefillAt
    this.retryAfterMs = info.nextRefillAt === null ? null : Math.max(0, info.nextRefillAt - info.now)
  }
}
