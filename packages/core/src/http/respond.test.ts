import { describe, expect, it } from 'vitest'
import {
  AlreadyRotatedError,
  ERROR_CODES,
  InsufficientScopeError,
  InvalidInputError,
  InvalidRequestError,
  InvalidSecretError,
  KeyExpiredError,
  KeyNotFoundError,
  KeyrotError,
  KeyRevokedError,
  MalformedTokenError,
  MissingKeyError,
  RateLimitedError,
  StoreUnavailableError,
  type ErrorCode,
} from '../errors.js'
import { asKeyrotError, errorResponse } from './respond.js'

const KEY_ID = 'AbCdEfGhIj012345'
const HIDDEN: readonly ErrorCode[] = ['KEYROT_MALFORMED_TOKEN', 'KEYROT_KEY_NOT_FOUND', 'KEYROT_INVALID_SECRET']

describe('errorResponse', () => {
  it('answers a request without a key with a bare challenge carrying the realm', () => {
    const response = errorResponse(new MissingKeyError())
    expect(response).toEqual({
      status: 401,
      headers: { 'www-authenticate': 'Bearer realm="api"', 'cache-control': 'no-store' },
      body: { error: { code: 'KEYROT_MISSING_KEY', message: ERROR_CODES.KEYROT_MISSING_KEY.message } },
    })
  })

  it('answers a malformed request with 400 invalid_request and its reason', () => {
    const response = errorResponse(new InvalidRequestError('Send the API key once.'), 'billing')
    expect(response.status).toBe(400)
    expect(response.headers['www-authenticate']).toBe(
      'Bearer realm="billing", error="invalid_request", error_description="Send the API key once."',
    )
    expect(response.body.error).toEqual({ code: 'KEYROT_INVALID_REQUEST', message: 'Send the API key once.' })
  })

  it.each([
    ['a malformed token', new MalformedTokenError('checksum mismatch')],
    ['an unknown key id', new KeyNotFoundError(KEY_ID)],
    ['a wrong secret', new InvalidSecretError(KEY_ID)],
  ])('answers %s as KEYROT_INVALID_KEY, alike and without the key id', (_label, error) => {
    const response = errorResponse(error)
    expect(response).toEqual({
      status: 401,
      headers: {
        'www-authenticate': `Bearer realm="api", error="invalid_token", error_description="${ERROR_CODES.KEYROT_INVALID_KEY.message}"`,
        'cache-control': 'no-store',
      },
      body: { error: { code: 'KEYROT_INVALID_KEY', message: ERROR_CODES.KEYROT_INVALID_KEY.message } },
    })
    expect(JSON.stringify(response)).not.toContain(KEY_ID)
    expect(JSON.stringify(response)).not.toContain('checksum')
  })

  it.each([
    ['expired', new KeyExpiredError(KEY_ID, Date.UTC(2030, 0, 1)), 'KEYROT_KEY_EXPIRED'],
    ['revoked', new KeyRevokedError(KEY_ID, Date.UTC(2030, 0, 1), 'leaked in a paste'), 'KEYROT_KEY_REVOKED'],
  ] as const)('answers a %s key with 401 invalid_token and the table’s message only', (_label, error, code) => {
    const response = errorResponse(error)
    expect(response.status).toBe(401)
    expect(response.body.error).toEqual({ code, message: ERROR_CODES[code].message })
    expect(response.headers['www-authenticate']).toBe(`Bearer realm="api", error="invalid_token", error_description="${ERROR_CODES[code].message}"`)
    const serialised = JSON.stringify(response)
    expect(serialised).not.toContain(KEY_ID)
    expect(serialised).not.toContain('2030')
    expect(serialised).not.toContain('paste')
  })

  it('answers a missing scope with 403 insufficient_scope naming the scopes', () => {
    const response = errorResponse(new InsufficientScopeError(KEY_ID, ['read', 'billing:write'], ['billing:write']))
    expect(response.status).toBe(403)
    expect(response.body.error).toEqual({
      code: 'KEYROT_INSUFFICIENT_SCOPE',
      message: 'The API key lacks the required scope(s): billing:write.',
    })
    expect(response.headers['www-authenticate']).toBe(
      'Bearer realm="api", error="insufficient_scope", error_description="The API key lacks the required scope(s): billing:write.", scope="read billing:write"',
    )
  })

  it('escapes quotes and backslashes in the realm and the description', () => {
    const response = errorResponse(new InvalidRequestError('Use "Bearer", not \\Basic\\.'), 'my "api"')
    expect(response.headers['www-authenticate']).toBe(
      'Bearer realm="my \\"api\\"", error="invalid_request", error_description="Use \\"Bearer\\", not \\\\Basic\\\\."',
    )
  })

  it('tells a rate-limited caller when to retry, in whole seconds, at least 1', () => {
    const limited = (retryAfterMs: number) =>
      errorResponse(new RateLimitedError('KEYROT_RATE_LIMITED', { retryAfterMs, limit: 10, windowMs: 60_000, scope: 'key' }))
    expect(limited(1_500)).toMatchObject({ status: 429, headers: { 'retry-after': '2' }, body: { error: { code: 'KEYROT_RATE_LIMITED' } } })
    expect(limited(0).headers['retry-after']).toBe('1')
    expect(limited(60_000).headers['retry-after']).toBe('60')
    const blocked = errorResponse(new RateLimitedError('KEYROT_IP_BLOCKED', { retryAfterMs: 900_000, limit: 20, windowMs: 60_000, scope: 'ip' }))
    expect(blocked).toMatchObject({ status: 429, headers: { 'retry-after': '900' }, body: { error: { code: 'KEYROT_IP_BLOCKED' } } })
    expect(blocked.headers['www-authenticate']).toBeUndefined()
  })

  it('answers a store outage with 503 and Retry-After, and no challenge', () => {
    const response = errorResponse(new StoreUnavailableError('connection refused by 127.0.0.1:6379'))
    expect(response.status).toBe(503)
    expect(response.headers['retry-after']).toBe('1')
    expect(response.headers['www-authenticate']).toBeUndefined()
    expect(response.body.error).toEqual({ code: 'KEYROT_STORE_UNAVAILABLE', message: ERROR_CODES.KEYROT_STORE_UNAVAILABLE.message })
  })

  it('answers every code with its table status, a public code, and no-store', () => {
    for (const code of Object.keys(ERROR_CODES) as ErrorCode[]) {
      const error = new KeyrotError(code)
      const response = errorResponse(error)
      expect(response.body.error.code).toBe(error.publicCode)
      expect(HIDDEN).not.toContain(response.body.error.code)
      expect(response.status).toBe(ERROR_CODES[error.publicCode].status)
      expect(response.headers['cache-control']).toBe('no-store')
      expect(response.status >= 400 && response.status < 600).toBe(true)
    }
    expect(errorResponse(new AlreadyRotatedError(KEY_ID, null)).status).toBe(409)
    expect(errorResponse(new InvalidInputError('scopes', 'bad')).status).toBe(400)
  })
})

describe('asKeyrotError', () => {
  it('keeps a keyrot error and turns anything else into a store outage that keeps the cause', () => {
    const revoked = new KeyRevokedError(KEY_ID, 0, null)
    expect(asKeyrotError(revoked)).toBe(revoked)
    const cause = new Error('socket hang up')
    const wrapped = asKeyrotError(cause)
    expect(wrapped).toBeInstanceOf(StoreUnavailableError)
    expect(wrapped.cause).toBe(cause)
    expect(asKeyrotError('a string')).toBeInstanceOf(StoreUnavailableError)
  })
})
