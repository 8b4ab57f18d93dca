import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { MalformedTokenError } from '../errors.js'
import { BASE62_ALPHABET } from './base62.js'
import {
  CHECKSUM_LENGTH,
  DEFAULT_PREFIX,
  FAMILY_ID_LENGTH,
  KEY_ID_LENGTH,
  MAX_TOKEN_LENGTH,
  SECRET_BYTES,
  SECRET_LENGTH,
  TOKEN_PATTERN,
  familyOf,
  generateToken,
  hasValidChecksum,
  isKeyId,
  newKeyId,
  parseToken,
  tokenLayout,
  tokenPatternFor,
} from './format.js'

const BASE62 = /^[0-9A-Za-z]+$/

/** Prefixes the format allows: lowercase words joined by '_', starting with a letter, at most 32 characters. */
const prefixArb = fc
  .tuple(
    fc.stringMatching(/^[a-z][a-z0-9]{0,7}$/),
    fc.array(fc.stringMatching(/^[a-z0-9]{1,6}$/), { maxLength: 3 }),
  )
  .map(([head, words]) => [head, ...words].join('_'))
  .filter((prefix) => prefix.length <= 32)

const tokenArb = prefixArb.map((prefix) => generateToken(prefix, newKeyId()))

/** Returns the error `parseToken` throws, or `undefined` when it accepts the input. */
function rejection(input: unknown): unknown {
  try {
    parseToken(input)
    return undefined
  } catch (error) {
    return error
  }
}

function expectRejected(input: unknown): void {
  const error = rejection(input)
  expect(error).toBeInstanceOf(MalformedTokenError)
  expect((error as MalformedTokenError).code).toBe('KEYROT_MALFORMED_TOKEN')
}

function secretOf(token: string): string {
  return token.slice(token.lastIndexOf('_') + 1, token.length - CHECKSUM_LENGTH)
}

describe('token format', () => {
  it('issues tokens of prefix, 16-char key id, 43-char secret and 6-char checksum, all base62', () => {
    const keyId = newKeyId()
    const token = generateToken(DEFAULT_PREFIX, keyId)
    const [p1, p2, id, tail] = token.split('_')
    expect(`${p1}_${p2}`).toBe('sk_live')
    expect(id).toBe(keyId)
    expect(tail).toHaveLength(SECRET_LENGTH + CHECKSUM_LENGTH)
    expect(tail).toMatch(BASE62)
    expect(token.length).toBeLessThanOrEqual(MAX_TOKEN_LENGTH)
  })

  it('carries a secret of at least 256 random bits', () => {
    expect(SECRET_BYTES * 8).toBeGreaterThanOrEqual(256)
    // 43 base62 digits hold 43 * log2(62) ≈ 256.03 bits, enough for 32 bytes.
    expect(SECRET_LENGTH * Math.log2(62)).toBeGreaterThanOrEqual(SECRET_BYTES * 8)
    expect(62 ** (SECRET_LENGTH - 1)).toBeLessThan(2 ** 256)

    const secrets = new Set<string>()
    const seen = new Set<string>()
    for (let i = 0; i < 500; i++) {
      const secret = secretOf(generateToken('sk_live', newKeyId()))
      expect(secret).toHaveLength(SECRET_LENGTH)
      expect(secret).toMatch(BASE62)
      secrets.add(secret)
      for (const char of secret) seen.add(char)
    }
    expect(secrets.size).toBe(500)
    // Every base62 digit shows up: the alphabet is neither truncated nor widened.
    expect([...seen].sort().join('')).toBe([...BASE62_ALPHABET].sort().join(''))
  })

  it('issues key ids of 16 base62 characters whose first 10 name the family', () => {
    const first = newKeyId()
    const sibling = newKeyId(familyOf(first))
    expect(isKeyId(first)).toBe(true)
    expect(first).toHaveLength(KEY_ID_LENGTH)
    expect(familyOf(first)).toHaveLength(FAMILY_ID_LENGTH)
    expect(familyOf(sibling)).toBe(familyOf(first))
    expect(sibling).not.toBe(first)
    expect(isKeyId('short')).toBe(false)
    expect(isKeyId('abcdefghijklmno!')).toBe(false)
    expect(isKeyId('abcdefghijklmno\u00e1')).toBe(false) // above ASCII: not base62, whatever its low bits
    expect(isKeyId(42)).toBe(false)
  })

  it('parses every token it generates, with any valid prefix', () => {
    fc.assert(
      fc.property(prefixArb, (prefix) => {
        const keyId = newKeyId()
        const parsed = parseToken(generateToken(prefix, keyId))
        expect(parsed).toEqual({ prefix, keyId, familyId: keyId.slice(0, FAMILY_ID_LENGTH) })
      }),
      { numRuns: 300 },
    )
  })

  it('rejects non-strings with MalformedTokenError', () => {
    fc.assert(
      fc.property(
        fc.anything().filter((value) => typeof value !== 'string'),
        (value) => expectRejected(value),
      ),
      { numRuns: 300 },
    )
  })

  it('rejects arbitrary strings with MalformedTokenError and nothing else', () => {
    const strings = fc.oneof(
      fc.string({ maxLength: 120 }),
      fc.string({ unit: 'grapheme', maxLength: 120 }),
      fc.string({ unit: 'binary', maxLength: 120 }),
      // Strings shaped like tokens, with random content in every part.
      fc
        .tuple(prefixArb, fc.stringMatching(/^[0-9A-Za-z]{16}$/), fc.stringMatching(/^[0-9A-Za-z]{49}$/))
        .map(([prefix, id, tail]) => `${prefix}_${id}_${tail}`),
    )
    fc.assert(fc.property(strings, (input) => expectRejected(input)), { numRuns: 2000 })
  })

  it('rejects a valid token with any single character changed', () => {
    const alphabet = `${BASE62_ALPHABET}_-. +/=\u00e9\u0000`
    fc.assert(
      fc.property(tokenArb, fc.nat(), fc.integer({ min: 0, max: alphabet.length - 1 }), (token, at, pick) => {
        const index = at % token.length
        const replacement = alphabet[pick] as string
        fc.pre(replacement !== token[index])
        expectRejected(token.slice(0, index) + replacement + token.slice(index + 1))
      }),
      { numRuns: 2000 },
    )
  })

  it('rejects a valid token with the case of one letter flipped', () => {
    fc.assert(
      fc.property(tokenArb, fc.nat(), (token, at) => {
        const letters = [...token].flatMap((char, index) => (/[A-Za-z]/.test(char) ? [index] : []))
        const index = letters[at % letters.length] as number
        const char = token[index] as string
        const flipped = char === char.toLowerCase() ? char.toUpperCase() : char.toLowerCase()
        expectRejected(token.slice(0, index) + flipped + token.slice(index + 1))
      }),
      { numRuns: 1000 },
    )
  })

  it('rejects a valid token cut short at either end', () => {
    fc.assert(
      fc.property(tokenArb, fc.nat(), fc.boolean(), (token, at, fromStart) => {
        const cut = 1 + (at % (token.length - 1))
        expectRejected(fromStart ? token.slice(cut) : token.slice(0, token.length - cut))
      }),
      { numRuns: 1000 },
    )
  })

  it('rejects a valid token extended at either end', () => {
    fc.assert(
      fc.property(tokenArb, fc.string({ minLength: 1, maxLength: 40 }), fc.boolean(), (token, extra, atStart) => {
        expectRejected(atStart ? extra + token : token + extra)
      }),
      { numRuns: 1000 },
    )
  })

  it('rejects input longer than the longest token before looking at it', () => {
    expect(MAX_TOKEN_LENGTH).toBe(32 + 1 + 16 + 1 + 43 + 6)
    const huge = `sk_live_${'a'.repeat(1_000_000)}`
    const error = rejection(huge)
    expect(error).toBeInstanceOf(MalformedTokenError)
    expect((error as MalformedTokenError).reason).toBe('too long')
    expect((rejection('x'.repeat(MAX_TOKEN_LENGTH + 1)) as MalformedTokenError).reason).toBe('too long')
  })

  it('never puts the rejected input in the error', () => {
    fc.assert(
      fc.property(tokenArb, (token) => {
        const tampered = token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A')
        const error = rejection(tampered) as MalformedTokenError
        expect(error).toBeInstanceOf(MalformedTokenError)
        const serialised = `${error.message} ${error.stack ?? ''} ${JSON.stringify(error)}`
        expect(serialised).not.toContain(tampered)
        expect(serialised).not.toContain(secretOf(token))
      }),
      { numRuns: 100 },
    )
  })
})

describe('token patterns', () => {
  const separators = fc.constantFrom(' ', '\n', '\t', '"', "'", '=', ':', ',', '(', ')', '<', '>', '`')

  it('TOKEN_PATTERN finds every token embedded in text', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.string({ maxLength: 30 }), separators, tokenArb, separators), { minLength: 1, maxLength: 5 }),
        (parts) => {
          const text = parts.map(([noise, before, token, after]) => `${noise}${before}${token}${after}`).join('')
          const found = text.match(TOKEN_PATTERN) ?? []
          for (const [, , token] of parts) expect(found).toContain(token)
        },
      ),
      { numRuns: 300 },
    )
  })

  it('TOKEN_PATTERN finds nothing in text without tokens', () => {
    expect('no keys here, just sk_live and some_words_12345'.match(TOKEN_PATTERN)).toBeNull()
    const token = generateToken('sk_live', newKeyId())
    // One character short of a token is not a token.
    expect(token.slice(0, -1).match(TOKEN_PATTERN)).toBeNull()
  })

  it('tokenPatternFor finds tokens of its prefix only', () => {
    const live = generateToken('sk_live', newKeyId())
    const test = generateToken('sk_test', newKeyId())
    const text = `live=${live}\ntest=${test}\n`
    expect(text.match(tokenPatternFor('sk_live'))).toEqual([live])
    expect(text.match(tokenPatternFor('sk_test'))).toEqual([test])
    expect(text.match(tokenPatternFor('pk'))).toBeNull()
  })

  it('tokenPatternFor refuses a prefix the format does not allow', () => {
    for (const prefix of ['', 'SK', 'sk-live', 'sk_', '_sk', '1sk', 'sk.live', 'a'.repeat(33), '(.*)']) {
      expect(() => tokenPatternFor(prefix)).toThrow(TypeError)
    }
  })
})

describe('tokenLayout (the verify path’s scan, checksum left to the caller)', () => {
  const accepted = (token: string) => {
    try {
      return parseToken(token)
    } catch {
      return null
    }
  }

  it('agrees with parseToken on every token parseToken accepts, and on mutations of them', () => {
    const token = generateToken('sk_live', newKeyId())
    const alphabet = 'abcz09AZ_-. '
    fc.assert(
      fc.property(fc.nat(token.length - 1), fc.constantFrom(...alphabet.split('')), fc.constantFrom('replace', 'insert', 'delete'), (at, char, edit) => {
        const mutated =
          edit === 'replace' ? token.slice(0, at) + char + token.slice(at + 1) : edit === 'insert' ? token.slice(0, at) + char + token.slice(at) : token.slice(0, at) + token.slice(at + 1)
        const layout = tokenLayout(mutated)
        const parsed = accepted(mutated)
        // Whatever parseToken accepts has this layout; what the scan refuses, parseToken refuses.
        if (parsed) expect(layout).toEqual({ prefix: parsed.prefix, keyId: parsed.keyId })
        if (layout === null) expect(parsed).toBeNull()
        // A layout with a valid checksum is a token parseToken accepts.
        if (layout !== null && hasValidChecksum(mutated)) expect(parsed).not.toBeNull()
      }),
      { numRuns: 2_000 },
    )
  })

  it('reads the prefix and key id of tokens with several prefixes', () => {
    for (const prefix of ['a', 'sk_live', 'acme_prod_v2', 'x'.repeat(32)]) {
      const keyId = newKeyId()
      expect(tokenLayout(generateToken(prefix, keyId))).toEqual({ prefix, keyId })
    }
    expect(tokenLayout(generateToken('sk_live', newKeyId()).replace('sk_live', 'sk__live'))).toBeNull()
    expect(tokenLayout(generateToken('sk_live', newKeyId()).replace('sk_live', 'Sk_live'))).toBeNull()
    expect(tokenLayout(`${'x'.repeat(33)}${generateToken('a', newKeyId()).slice(1)}`)).toBeNull()
  })
})
