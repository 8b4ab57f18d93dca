import { ERROR_CODES, KeyrotError, RateLimitedError, StoreUnavailableError } from '../errors.js'
import type { ErrorResponse } from '../http/respond.js'
import { rateLimitHeaders } from '../rate-limit/headers.js'

/** Escapes a value for a quoted-string in an HTTP auth challenge. */
function quote(value: string): string {
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`
}

/** Authentication scheme named in the `WWW-Authenticate` challenge of signed requests. */
export const SIGNATURE_SCHEME = 'KeyrotSignature'

/**
 * The HTTP answer for a refused signed request: the code's status, a JSON
 * body `{ error: { code, message } }` with the table's message (details stay
 * in logs and events), `WWW-Authenticate: KeyrotSignature realm="..."` with
 * an `error` on every 401, `Retry-After` on 503 and 429 (with the `RateLimit`
 * fields) and `Cache-Control: no-store`.
 */
export function signatureErrorResponse(error: KeyrotError, realm = 'api'): ErrorResponse {
  // Codes that would say which key ids exist read as a bad signature.
  const code = error.code === 'KEYROT_KEY_NOT_FOUND' || error.code === 'KEYROT_INVALID_SECRET' ? 'KEYROT_INVALID_SIGNATURE' : error.code
  const status = ERROR_CODES[code].status
  const message: string = code === 'KEYROT_INVALID_REQUEST' ? error.message : ERROR_CODES[code].message
  const headers: Record<string, string> = {}
  if (status === 401) {
    const challenge = [`${SIGNATURE_SCHEME} realm=${quote(realm)}`]
    if (code !== 'KEYROT_MISSING_SIGNATURE') {
      challenge.push(`error=${quote(code.slice('KEYROT_'.length).toLowerCase())}`, `error_description=${quote(message)}`)
    }
    headers['www-authenticate'] = challenge.join(', ')
  }
  if (error instanceof StoreUnavailableError) headers['retry-after'] = '1'
  if (error instanceof RateLimitedError) {
    headers['retry-after'] = String(Math.max(1, Math.ceil(error.retryAfterMs / 1000)))
    Object.assign(headers, rateLimitHeaders({ policy: error.policy, limit: error.limit, windowMs: error.windowMs, remaining: error.remaining, resetMs: error.resetMs }))
  }
  headers['cache-control'] = 'no-store'
  return { status, headers, body: { error: { code, message } } }
}
