import { creditsHeaders } from '../credits/headers.js'
import { CreditsExhaustedError, ERROR_CODES, KeyrotError, OverloadedError, RateLimitedError, StoreUnavailableError, type ErrorCode } from '../errors.js'
import { rateLimitHeaders } from '../rate-limit/headers.js'

export interface ErrorResponse {
  status: number
  headers: Record<string, string>
  body: { error: { code: ErrorCode; message: string } }
}

/** Escapes a value for a quoted-string in an HTTP auth challenge. */
function quote(value: string): string {
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`
}

/**
 * The HTTP answer for a keyrot error, shared by every adapter:
 * RFC 6750 challenges (bare with `realm` when no key was sent,
 * `invalid_request`, `invalid_token`, `insufficient_scope`), `Retry-After` on
 * 429 and 503, the `RateLimit-Policy` and `RateLimit` headers of the refusing
 * policy on 429, `X-Credits-Remaining` (and `X-Credits-Reset` with
 * `Retry-After` until the next refill) on `KEYROT_CREDITS_EXHAUSTED`, and a JSON body `{ error: { code, message } }`.
 *
 * Codes that would tell a caller which key ids exist (malformed token,
 * unknown id, wrong secret) all become `KEYROT_INVALID_KEY`.
 */
export function errorResponse(error: KeyrotError, realm = 'api'): ErrorResponse {
  const code = error.publicCode
  const status = ERROR_CODES[code].status
  // Public messages come from the table: details (key ids, timestamps) stay in logs and events.
  let message: string = ERROR_CODES[code].message
  if (code === 'KEYROT_INVALID_REQUEST') message = error.message
  if (code === 'KEYROT_INSUFFICIENT_SCOPE' && 'missing' in error) {
    message = `The API key lacks the required scope(s): ${(error as { missing: string[] }).missing.join(', ')}.`
  }
  const headers: Record<string, string> = {}
  const challenge = [`Bearer realm=${quote(realm)}`]
  switch (code) {
    case 'KEYROT_MISSING_KEY':
      headers['www-authenticate'] = challenge[0] as string
      break
    case 'KEYROT_INVALID_REQUEST':
      headers['www-authenticate'] = [...challenge, 'error="invalid_request"', `error_description=${quote(message)}`].join(', ')
      break
    case 'KEYROT_INSUFFICIENT_SCOPE': {
      const required = 'required' in error ? (error as { required: string[] }).required : []
      headers['www-authenticate'] = [
        ...challenge,
        'error="insufficient_scope"',
        `error_description=${quote(message)}`,
        ...(required.length ? [`scope=${quote(required.join(' '))}`] : []),
      ].join(', ')
      break
    }
    case 'KEYROT_INVALID_KEY':
    case 'KEYROT_KEY_EXPIRED':
    case 'KEYROT_KEY_REVOKED':
      headers['www-authenticate'] = [...challenge, 'error="invalid_token"', `error_description=${quote(message)}`].join(', ')
      break
    default:
      break
  }
  if (error instanceof RateLimitedError) {
    headers['retry-after'] = String(Math.max(1, Math.ceil(error.retryAfterMs / 1000)))
    Object.assign(
      headers,
      rateLimitHeaders({ policy: error.policy, limit: error.limit, windowMs: error.windowMs, remaining: error.remaining, resetMs: error.resetMs }),
    )
  }
  if (error instanceof CreditsExhaustedError) {
    // Until the next refill; without one, waiting does not help and no Retry-After is sent.
    if (error.retryAfterMs !== null) headers['retry-after'] = String(Math.max(1, Math.ceil(error.retryAfterMs / 1000)))
    Object.assign(headers, creditsHeaders(error.remaining, error.retryAfterMs))
  }
  if (error instanceof StoreUnavailableError) headers['retry-after'] = '1'
  if (error instanceof OverloadedError) headers['retry-after'] = String(Math.max(1, Math.ceil(error.retryAfterMs / 1000)))
  headers['cache-control'] = 'no-store'
  return { status, headers, body: { error: { code, message } } }
}

/** Turns anything thrown during authentication into a keyrot error (unknown failures are a store outage). */
export function asKeyrotError(error: unknown): KeyrotError {
  return error instanceof KeyrotError ? error : new StoreUnavailableError(undefined, { cause: error })
}
