import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import {
  AlreadyRotatedError,
  CreditsExhaustedError,
  ERROR_CODES,
  InsufficientScopeError,
  InvalidInputError,
  InvalidRequestError,
  InvalidSecretError,
  isKeyrotError,
  KeyExpiredError,
  KeyNotFoundError,
  KeyrotError,
  KeyRevokedError,
  MalformedTokenError,
  MissingKeyError,
  publicCodeOf,
  RateLimitedError,
  StoreResetError,
  StoreUnavailableError,
  type ErrorCode,
} from './errors.js'

const docs = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8')
const codes = Object.keys(ERROR_CODES) as ErrorCode[]

interface DocumentedCode {
  code: string
  status: number | undefined
  publicCode: string | undefined
  meaning: boolean
  whatToDo: boolean
}

/** The `## KEYROT_*` sections of docs/errors.md and the fields each states. */
function documentedSections(): DocumentedCode[] {
  return docs
    .split(/^## /m)
    .slice(1)
    .map((section) => {
      const [heading = '', ...body] = section.split('\n')
      const text = body.join('\n')
      const status = /^- \*\*HTTP status:\*\* (\d{3})$/m.exec(text)?.[1]
      return {
        code: heading.trim(),
        status: status === undefined ? undefined : Number(status),
        publicCode: /^- \*\*Public code:\*\* `(KEYROT_[A-Z_]+)`$/m.exec(text)?.[1],
        meaning: /^- \*\*Meaning:\*\* \S/m.test(text),
        whatToDo: /^- \*\*What to do:\*\* \S/m.test(text),
      }
    })
}

describe('docs/errors.md', () => {
  const sections = documentedSections()

  it('has one section per code in the table, and no other', () => {
    const headings = sections.map((section) => section.code)
    expect(new Set(headings).size).toBe(headings.length)
    expect([...headings].sort()).toEqual([...codes].sort())
  })

  it.each(codes)('documents %s with its HTTP status, public code, meaning and what to do', (code) => {
    const section = sections.find((candidate) => candidate.code === code)
    expect(section, `docs/errors.md has no "## ${code}" section`).toBeDefined()
    expect(section).toEqual({ code, status: ERROR_CODES[code].status, publicCode: publicCodeOf(code), meaning: true, whatToDo: true })
  })

  it('lists every code in its summary table with the same status, public code and a working anchor', () => {
    const rows = [...docs.matchAll(/^\| \[`(KEYROT_[A-Z_]+)`\]\(#([a-z_]+)\) \| (\d{3}) \| `(KEYROT_[A-Z_]+)` \|$/gm)].map(
      ([, code, anchor, status, publicCode]) => ({ code, anchor, status: Number(status), publicCode }),
    )
    expect(rows.map((row) => row.code).sort()).toEqual([...codes].sort())
    for (const row of rows) {
      const code = row.code as ErrorCode
      // A "## KEYROT_X" heading gets the anchor "keyrot_x".
      expect(row).toEqual({ code, anchor: code.toLowerCase(), status: ERROR_CODES[code].status, publicCode: publicCodeOf(code) })
    }
  })

  it('mentions no code that is not in the table', () => {
    const mentioned = new Set(docs.match(/KEYROT_[A-Z_]+/g))
    for (const code of mentioned) expect(codes, `docs/errors.md mentions unknown ${code}`).toContain(code)
  })
})

describe('the error table', () => {
  it('names every code KEYROT_* with a 4xx/5xx status and a one-sentence message', () => {
    for (const code of codes) {
      expect(code).toMatch(/^KEYROT_[A-Z]+(?:_[A-Z]+)*$/)
      const { status, message } = ERROR_CODES[code]
      expect(status >= 400 && status < 600, `${code} status ${status}`).toBe(true)
      expect(message).toMatch(/^[A-Z].*\.$/)
    }
  })

  it('hides a malformed token, an unknown key id and a wrong secret behind KEYROT_INVALID_KEY, and nothing else', () => {
    const hidden = codes.filter((code) => publicCodeOf(code) !== code)
    expect(hidden.sort()).toEqual(['KEYROT_INVALID_SECRET', 'KEYROT_KEY_NOT_FOUND', 'KEYROT_MALFORMED_TOKEN'])
    for (const code of hidden) expect(publicCodeOf(code)).toBe('KEYROT_INVALID_KEY')
    for (const code of codes) expect(publicCodeOf(publicCodeOf(code))).toBe(publicCodeOf(code))
  })
})

describe('error classes', () => {
  const at = Date.UTC(2030, 0, 1)
  it.each<[KeyrotError, ErrorCode, string]>([
    [new MissingKeyError(), 'KEYROT_MISSING_KEY', 'MissingKeyError'],
    [new InvalidRequestError('two keys'), 'KEYROT_INVALID_REQUEST', 'InvalidRequestError'],
    [new MalformedTokenError('checksum mismatch'), 'KEYROT_MALFORMED_TOKEN', 'MalformedTokenError'],
    [new KeyNotFoundError('AAAAAAAAAAAAAAAA'), 'KEYROT_KEY_NOT_FOUND', 'KeyNotFoundError'],
    [new InvalidSecretError('AAAAAAAAAAAAAAAA'), 'KEYROT_INVALID_SECRET', 'InvalidSecretError'],
    [new KeyExpiredError('AAAAAAAAAAAAAAAA', at), 'KEYROT_KEY_EXPIRED', 'KeyExpiredError'],
    [new KeyRevokedError('AAAAAAAAAAAAAAAA', at, 'leaked'), 'KEYROT_KEY_REVOKED', 'KeyRevokedError'],
    [new InsufficientScopeError('AAAAAAAAAAAAAAAA', ['a'], ['a']), 'KEYROT_INSUFFICIENT_SCOPE', 'InsufficientScopeError'],
    [new AlreadyRotatedError('AAAAAAAAAAAAAAAA', 'BBBBBBBBBBBBBBBB'), 'KEYROT_ALREADY_ROTATED', 'AlreadyRotatedError'],
    [new InvalidInputError('tenantId', 'bad'), 'KEYROT_INVALID_INPUT', 'InvalidInputError'],
    [new RateLimitedError('KEYROT_RATE_LIMITED', { retryAfterMs: 1, limit: 1, windowMs: 1_000, scope: 'key' }), 'KEYROT_RATE_LIMITED', 'RateLimitedError'],
    [new RateLimitedError('KEYROT_IP_BLOCKED', { retryAfterMs: 1, limit: 1, windowMs: 1_000, scope: 'ip' }), 'KEYROT_IP_BLOCKED', 'RateLimitedError'],
    [new StoreUnavailableError(), 'KEYROT_STORE_UNAVAILABLE', 'StoreUnavailableError'],
    [new StoreResetError(), 'KEYROT_STORE_RESET', 'StoreResetError'],
    [new CreditsExhaustedError('AAAAAAAAAAAAAAAA', { remaining: 0, nextRefillAt: null, now: at }), 'KEYROT_CREDITS_EXHAUSTED', 'CreditsExhaustedError'],
  ])('%s carries its code, the table status and its class name', (error, code, name) => {
    expect(error).toBeInstanceOf(KeyrotError)
    expect(error).toBeInstanceOf(Error)
    expect(isKeyrotError(error)).toBe(true)
    expect(error.code).toBe(code)
    expect(error.status).toBe(ERROR_CODES[code].status)
    expect(error.name).toBe(name)
    expect(error.publicCode).toBe(publicCodeOf(code))
    expect(error.toJSON()).toEqual({ code, message: error.message, ...(error.keyId === undefined ? {} : { keyId: error.keyId }) })
  })

  it('serialises to code, message and key id only', () => {
    const error = new StoreUnavailableError('redis timed out', { cause: new Error('ETIMEDOUT'), keyId: 'AAAAAAAAAAAAAAAA' })
    expect(JSON.parse(JSON.stringify(error))).toEqual({ code: 'KEYROT_STORE_UNAVAILABLE', message: 'redis timed out', keyId: 'AAAAAAAAAAAAAAAA' })
    expect(error.cause).toBeInstanceOf(Error)
    expect(isKeyrotError(new Error('plain'))).toBe(false)
  })
})
