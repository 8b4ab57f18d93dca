import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { generateToken, MAX_TOKEN_LENGTH, newKeyId } from '../token/format.js'
import { extractCredential, requestHeadersOf, type CredentialHeaders, type CredentialResult } from './credentials.js'

const token = generateToken('sk_live', newKeyId())

function refusal(result: CredentialResult): { code: string; status: number; message: string } {
  if (result.ok) throw new Error(`expected a refusal, got a ${result.source} credential`)
  return { code: result.error.code, status: result.error.status, message: result.error.message }
}

describe('extractCredential', () => {
  it.each<[string, CredentialHeaders, 'authorization' | 'x-api-key']>([
    ['Authorization: Bearer', { authorization: `Bearer ${token}` }, 'authorization'],
    ['a lowercase scheme', { authorization: `bearer ${token}` }, 'authorization'],
    ['an uppercase scheme', { authorization: `BEARER ${token}` }, 'authorization'],
    ['extra spaces', { authorization: `  Bearer    ${token}  ` }, 'authorization'],
    ['X-API-Key', { apiKey: token }, 'x-api-key'],
    ['X-API-Key with spaces around', { apiKey: `  ${token} ` }, 'x-api-key'],
    ['a one-element header array', { authorization: [`Bearer ${token}`] }, 'authorization'],
    ['an empty Authorization beside X-API-Key', { authorization: '', apiKey: token }, 'x-api-key'],
  ])('finds the key in %s', (_label, headers, source) => {
    expect(extractCredential(headers)).toEqual({ ok: true, token, source })
  })

  it.each<[string, CredentialHeaders]>([
    ['no header', {}],
    ['undefined headers', { authorization: undefined, apiKey: undefined }],
    ['empty header arrays', { authorization: [], apiKey: [] }],
  ])('answers KEYROT_MISSING_KEY (401) to %s', (_label, headers) => {
    expect(refusal(extractCredential(headers))).toMatchObject({ code: 'KEYROT_MISSING_KEY', status: 401 })
  })

  it.each<[string, CredentialHeaders]>([
    ['Bearer and X-API-Key at once', { authorization: `Bearer ${token}`, apiKey: token }],
    ['another scheme beside X-API-Key', { authorization: 'Basic dXNlcjpwYXNz', apiKey: token }],
    ['another scheme alone', { authorization: 'Basic dXNlcjpwYXNz' }],
    ['an empty Authorization header', { authorization: '' }],
    ['a blank Authorization header', { authorization: '   ' }],
    ['Bearer without credentials', { authorization: 'Bearer' }],
    ['Bearer with only spaces', { authorization: 'Bearer    ' }],
    ['two Bearer tokens', { authorization: `Bearer ${token} ${token}` }],
    ['comma-separated Bearer tokens', { authorization: `Bearer ${token},${token}` }],
    ['a Bearer token outside token68', { authorization: 'Bearer abc!def' }],
    ['an empty X-API-Key', { apiKey: '' }],
    ['a blank X-API-Key', { apiKey: '  ' }],
    ['two keys in X-API-Key', { apiKey: `${token} ${token}` }],
    ['comma-separated keys in X-API-Key', { apiKey: `${token},${token}` }],
    ['two Authorization headers', { authorization: [`Bearer ${token}`, `Bearer ${token}`] }],
    ['two X-API-Key headers', { apiKey: [token, token] }],
    ['non-ASCII in Authorization', { authorization: 'Bearer t\u00f6ken' }],
    ['non-ASCII in X-API-Key', { apiKey: 'k\u00e9y' }],
    ['a NUL in X-API-Key', { apiKey: `${token}\u0000` }],
    ['a line break in Authorization', { authorization: `Bearer ${token}\r\nX-Other: 1` }],
    ['a huge Authorization header', { authorization: `Bearer ${'a'.repeat(100_000)}` }],
    ['a huge X-API-Key header', { apiKey: 'a'.repeat(4 * MAX_TOKEN_LENGTH + 1) }],
    ['a header that is not text', { apiKey: 42 as never }],
    ['a header array holding a non-string', { authorization: [{}] as never }],
  ])('answers KEYROT_INVALID_REQUEST (400) to %s', (_label, headers) => {
    const { code, status, message } = refusal(extractCredential(headers))
    expect(code).toBe('KEYROT_INVALID_REQUEST')
    expect(status).toBe(400)
    expect(message.length).toBeGreaterThan(0)
    expect(message).not.toContain(token)
  })

  it('answers a lone Authorization header the same on its one-scan path as on the full path', () => {
    // An empty X-API-Key list is no credential, and sends the request down the full path.
    const outcome = (result: CredentialResult) => (result.ok ? result : refusal(result))
    const header = fc.oneof(
      fc.constant(`Bearer ${token}`),
      fc.string({ unit: fc.constantFrom('a', 'Z', '0', '-', '.', '_', '~', '+', '/', '=', ' ', '\t', ',', '\u00e9'), maxLength: 40 }).map((value) => `Bearer ${value}`),
      fc.string({ unit: fc.constantFrom('B', 'b', 'e', 'a', 'r', ' ', 'x', '='), maxLength: 12 }).map((value) => `${value}${token}`),
      fc.string({ maxLength: 60 }),
    )
    fc.assert(
      fc.property(header, (authorization) => {
        expect(outcome(extractCredential({ authorization }))).toEqual(outcome(extractCredential({ authorization, apiKey: [] })))
      }),
      { numRuns: 2_000 },
    )
    expect(extractCredential({ authorization: `Bearer ${token}` })).toEqual({ ok: true, token, source: 'authorization' })
    expect(refusal(extractCredential({ authorization: 'Bearer ab=c' })).code).toBe('KEYROT_INVALID_REQUEST')
    expect(refusal(extractCredential({ authorization: 'Bearer ===' })).code).toBe('KEYROT_INVALID_REQUEST')
  })

  it('reads credential values as middleware left them in headers; rawHeaders only counts copies', () => {
    const request = { rawHeaders: ['Host', 'x', 'Authorization', 'Bearer old'], headers: { host: 'x', authorization: `Bearer ${token}` } as Record<string, string | undefined> }
    expect(requestHeadersOf(request).authorization).toBe(`Bearer ${token}`)
    request.headers['authorization'] = undefined
    expect(requestHeadersOf(request).authorization).toBeUndefined()
    const twice = { rawHeaders: ['Authorization', 'Bearer a', 'authorization', 'Bearer b'], headers: { authorization: 'Bearer a' }, headersDistinct: { authorization: ['Bearer a', 'Bearer b'] } }
    expect(refusal(extractCredential(requestHeadersOf(twice))).code).toBe('KEYROT_INVALID_REQUEST')
  })

  it('refuses a credential header sent twice over HTTP/2 too (rawHeaders, no headersDistinct, headers with the first copy only)', () => {
    const http2 = { rawHeaders: [':method', 'GET', 'authorization', `Bearer ${token}`, 'authorization', 'Bearer other'], headers: { authorization: `Bearer ${token}` } }
    expect(requestHeadersOf(http2).authorization).toEqual([`Bearer ${token}`, 'Bearer other'])
    expect(refusal(extractCredential(requestHeadersOf(http2))).code).toBe('KEYROT_INVALID_REQUEST')
    const keys = { rawHeaders: ['x-api-key', token, 'X-API-Key', token], headers: { 'x-api-key': token } }
    expect(refusal(extractCredential(requestHeadersOf(keys))).code).toBe('KEYROT_INVALID_REQUEST')
  })

  it('finds the same credentials and User-Agent with rawHeaders (copies counted) as from headers and headersDistinct alone', () => {
    const name = fc.constantFrom('Authorization', 'authorization', 'AUTHORIZATION', 'X-API-Key', 'x-api-key', 'User-Agent', 'user-agent', 'Host', 'X-Other')
    const value = fc.oneof(fc.constant(`Bearer ${token}`), fc.constant(token), fc.string({ maxLength: 20 }))
    const outcome = (result: CredentialResult) => (result.ok ? result : refusal(result))
    fc.assert(
      fc.property(fc.array(fc.tuple(name, value), { maxLength: 6 }), (pairs) => {
        // As Node builds them: the first Authorization and User-Agent win, X-API-Key copies are joined.
        const headers: Record<string, string> = {}
        const headersDistinct: Record<string, string[]> = {}
        for (const [field, text] of pairs) {
          const lower = field.toLowerCase()
          ;(headersDistinct[lower] ??= []).push(text)
          if (headers[lower] === undefined) headers[lower] = text
          else if (lower === 'x-api-key') headers[lower] += `, ${text}`
        }
        const fromRaw = requestHeadersOf({ rawHeaders: pairs.flat(), headers, headersDistinct })
        const fromObjects = requestHeadersOf({ headers, headersDistinct })
        expect(outcome(extractCredential(fromRaw))).toEqual(outcome(extractCredential(fromObjects)))
        expect(fromRaw.userAgent).toBe(fromObjects.userAgent)
      }),
      { numRuns: 1_000 },
    )
  })

  it('never throws, and any key it finds was sent in a header', () => {
    const header = fc.oneof(
      fc.constant(undefined),
      fc.string({ maxLength: 100 }),
      // Characters that matter to the parser: separators, controls, non-ASCII.
      fc.string({ unit: fc.constantFrom('a', 'Z', '0', '_', '=', '/', '+', ' ', '\t', ',', '\r', '\n', '\u0000', '\u00e9', '\u4e2d'), maxLength: 80 }),
      fc.array(fc.string({ maxLength: 40 }), { maxLength: 3 }),
      fc.string({ maxLength: 60 }).map((value) => `Bearer ${value}`),
      fc.anything({ maxDepth: 1 }),
    )
    fc.assert(
      fc.property(header, header, (authorization, apiKey) => {
        const result = extractCredential({ authorization, apiKey } as CredentialHeaders)
        if (result.ok) {
          const sent = [authorization, apiKey].flat().filter((value): value is string => typeof value === 'string')
          expect(result.token.length).toBeGreaterThan(0)
          expect(result.token).toMatch(/^[\x21-\x7e]+$/)
          expect(sent.some((value) => value.includes(result.token))).toBe(true)
        } else {
          expect(['KEYROT_MISSING_KEY', 'KEYROT_INVALID_REQUEST']).toContain(result.error.code)
        }
      }),
      { numRuns: 500 },
    )
  })
})
