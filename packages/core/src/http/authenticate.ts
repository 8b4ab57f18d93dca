import type { Keyring } from '../lifecycle/keyring.js'
import { creditsHeaders } from '../credits/headers.js'
import type { VerifyOptions, VerifyResult } from '../lifecycle/keyring-types.js'
import { rateLimitHeaders } from '../rate-limit/headers.js'
import type { ApiKey } from '../types.js'
import { extractCredential, requestHeadersOf, type CredentialHeaders, type NodeRequestHeaders } from './credentials.js'
import { asKeyrotError, errorResponse, type ErrorResponse } from './respond.js'
import { rotationHeaders } from './rotation-headers.js'

export interface AuthenticateRequest extends CredentialHeaders {
  clientIp?: string | undefined
  userAgent?: string | undefined
}

export interface AuthenticateOptions {
  /** Scopes every request must have. */
  scopes?: readonly string[]
  /** `realm` of the `WWW-Authenticate` challenge. Default `'api'`. */
  realm?: string
  /** Credits each request spends from a key with credits. Default 1; `0` spends none. */
  cost?: number
}

export type AuthenticateOutcome =
  | { ok: true; key: ApiKey; headers: Record<string, string> }
  | ({ ok: false } & ErrorResponse)

/**
 * What an HTTP adapter does with a request, framework-free: find the
 * credential, verify it, and say which status, headers and body to send.
 * Adapters (Express, Koa) only copy the outcome onto their response.
 *
 * On success during a grace period the headers carry `Sunset` (RFC 8594)
 * with the old key's deadline, so clients learn they must migrate; when the
 * key has a quota they carry `RateLimit-Policy` and `RateLimit`
 * (draft-ietf-httpapi-ratelimit-headers); when the key has credits,
 * `X-Credits-Remaining` and `X-Credits-Reset` (see credits/headers.ts). A key due for rotation under its
 * rotation policy adds `Deprecation` (RFC 9745) and, when enforced, `Sunset`
 * (see rotation-headers.ts).
 */
export async function authenticate(keyring: Keyring, request: AuthenticateRequest, options: AuthenticateOptions = {}): Promise<AuthenticateOutcome> {
  return authenticateNow(keyring, request, options)
}

/**
 * {@link authenticate}, answered synchronously when the keyring can
 * (`keyring.verifyNow()`: a cache hit with the in-process rate limiter),
 * else a promise. The adapters use it, so a cache hit costs them no promise.
 */
export function authenticateNow(keyring: Keyring, request: AuthenticateRequest, options: AuthenticateOptions = {}): AuthenticateOutcome | Promise<AuthenticateOutcome> {
  const realm = options.realm ?? 'api'
  const credential = extractCredential(request)
  if (!credential.ok) {
    keyring.noteRequestFailure(credential.error, request)
    return { ok: false, ...errorResponse(credential.error, realm) }
  }
  const context: VerifyOptions = options.scopes
    ? { scopes: options.scopes, clientIp: request.clientIp, userAgent: request.userAgent }
    : { clientIp: request.clientIp, userAgent: request.userAgent }
  if (options.cost !== undefined) context.cost = options.cost
  let result: VerifyResult | Promise<VerifyResult>
  try {
    // A keyring stand-in with only verify() (a test double) still works.
    result = typeof keyring.verifyNow === 'function' ? keyring.verifyNow(credential.token, context) : keyring.verify(credential.token, context)
  } catch (error) {
    return { ok: false, ...errorResponse(asKeyrotError(error), realm) }
  }
  if (result instanceof Promise) {
    return result.then(
      (settled) => outcomeOf(settled, realm, keyring),
      (error: unknown) => ({ ok: false, ...errorResponse(asKeyrotError(error), realm) }),
    )
  }
  return outcomeOf(result, realm, keyring)
}

function outcomeOf(result: VerifyResult, realm: string, keyring: Keyring): AuthenticateOutcome {
  if (!result.ok) return { ok: false, ...errorResponse(result.error, realm) }
  const key = result.key
  const rateLimit = result.rateLimit
  const headers: Record<string, string> = rateLimit ? rateLimitHeaders(rateLimit) : {}
  if (key.rotatedTo !== null && key.expiresAt !== null) headers['sunset'] = new Date(key.expiresAt).toUTCString()
  if (result.credits) {
    const { remaining, nextRefillAt } = result.credits
    Object.assign(headers, creditsHeaders(remaining, nextRefillAt === null ? null : nextRefillAt - keyring.clock.now()))
  }
  if (result.rotation) Object.assign(headers, rotationHeaders(result.rotation))
  return { ok: true, key, headers }
}

/**
 * The request as `authenticate()` reads it, from a Node request: its
 * credential headers (every copy, see {@link requestHeadersOf}), the
 * client IP the adapter found and the `User-Agent`.
 */
export function authenticateRequestOf(request: NodeRequestHeaders, clientIp: string | undefined): AuthenticateRequest {
  const headers = requestHeadersOf(request) as AuthenticateRequest
  headers.clientIp = clientIp
  return headers
}
