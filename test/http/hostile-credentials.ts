import http from 'node:http'
import { crc32 } from 'node:zlib'
import fc from 'fast-check'
import { parseToken } from '@keyrot/core'
import { headerLine } from './client.js'

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'

function base62(value: number, width: number): string {
  let out = ''
  for (let n = value; n > 0; n = Math.floor(n / 62)) out = BASE62[n % 62] + out
  return out.padStart(width, '0')
}

/** `body` plus its keyrot checksum: a token that passes the format check. */
export function withChecksum(body: string): string {
  const token = body + base62(crc32(body), 6)
  parseToken(token) // the generator must really produce well-formed tokens
  return token
}

/** CR and LF would start a new header line (header injection is another test); everything else goes. */
const oneLine = (value: string) => value.replace(/[\r\n]/g, '')

/** Hostile values for a credential header, built around one real token. */
export function hostileValue(realToken: string): fc.Arbitrary<string> {
  const base62Char = fc.constantFrom(...BASE62)
  const parts = realToken.split('_')
  const keyId = parts.at(-2) as string
  const prefix = parts.slice(0, -2).join('_')
  const rightChecksumWrongSecret = fc
    .string({ unit: base62Char, minLength: 43, maxLength: 43 })
    .map((secret) => withChecksum(`${prefix}_${keyId}_${secret}`))
  const truncated = fc.nat({ max: realToken.length - 1 }).map((length) => realToken.slice(0, length))
  const oneCharChanged = fc
    .tuple(fc.nat({ max: realToken.length - 1 }), base62Char)
    .filter(([at, char]) => realToken[at] !== char)
    .map(([at, char]) => realToken.slice(0, at) + char + realToken.slice(at + 1))
  const controlChars = fc.string({ unit: fc.integer({ min: 0, max: 0x7f }).map((code) => String.fromCharCode(code)), maxLength: 40 })
  const veryLong = fc
    .tuple(fc.integer({ min: 200, max: 20_000 }), fc.constantFrom('a', 'é', 'A_', '\t', '='))
    .map(([length, unit]) => unit.repeat(length))
  const tokenWithJunk = fc
    .tuple(fc.string({ unit: 'binary', minLength: 1, maxLength: 8 }), fc.boolean())
    .filter(([junk]) => junk.trim() !== '')
    .map(([junk, before]) => (before ? junk + realToken : realToken + junk))
  return fc
    .oneof(
      fc.string({ unit: 'binary', maxLength: 80 }),
      fc.string({ unit: 'binary-ascii', maxLength: 80 }),
      controlChars,
      veryLong,
      rightChecksumWrongSecret,
      truncated,
      oneCharChanged,
      tokenWithJunk,
    )
    .map(oneLine)
}

/** One request's credential headers: Authorization with some scheme, X-API-Key, or both. */
export function hostileHeaders(realToken: string): fc.Arbitrary<Buffer[]> {
  const value = hostileValue(realToken)
  const scheme = fc.constantFrom('Bearer ', 'bearer ', 'BEARER   ', 'Bearer', 'Basic ', 'Token ', 'Digest ', 'ApiKey ', '', ' ')
  const authorization = fc.tuple(scheme, value).map(([name, credentials]) => headerLine('Authorization', name + credentials))
  const apiKey = value.map((credentials) => headerLine('X-API-Key', credentials))
  return fc.oneof(
    authorization.map((line) => [line]),
    apiKey.map((line) => [line]),
    fc.tuple(authorization, apiKey).map(([a, b]) => [a, b]),
    fc.tuple(authorization, authorization).map(([a, b]) => [a, b]),
  )
}

/**
 * What Node's HTTP parser does with these header lines before any framework
 * sees them: refuse bytes a header value may not hold (CTLs but HTAB, DEL)
 * with a bare 400, and answer 431 when the head is over `maxHeaderSize`.
 * Near the size limit either may happen.
 */
export function nodeVerdict(lines: Buffer[]): { refusesBytes: boolean; tooLarge: boolean | 'maybe' } {
  const refusesBytes = lines.some((line) => line.some((byte) => (byte < 0x20 && byte !== 0x09) || byte === 0x7f))
  // Node counts the bytes of names and values, not the whitespace before a value.
  const size = lines.reduce((total, line) => {
    const colon = line.indexOf(0x3a)
    let start = colon + 1
    while (line[start] === 0x20 || line[start] === 0x09) start++
    return total + colon + (line.length - start)
  }, 0)
  const margin = 512
  const tooLarge = size > http.maxHeaderSize + margin ? true : size < http.maxHeaderSize - margin ? false : 'maybe'
  return { refusesBytes, tooLarge }
}
