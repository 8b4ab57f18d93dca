import fc from 'fast-check'
import { Argon2Hasher, FastTestHasher } from '@keyrot/core'
import { describe, expect, it } from 'vitest'
import { decodeHash, encodeHash } from './hash-codec.js'

describe('hash codec', () => {
  it('stores an OWASP Argon2id hash as parameter version 1 and 64 characters, and gives back the same PHC string', async () => {
    const hash = await new Argon2Hasher().hash('sk_test_token')
    const stored = encodeHash(hash)
    expect(stored.version).toBe('1')
    expect(stored.value).toHaveLength(64)
    expect(decodeHash(stored.version, stored.value)).toBe(hash)
  })

  it('stores other Argon2 parameters, either parameter order, with the parameters as the version', async () => {
    const hash = await new Argon2Hasher({ memoryCost: 4096, timeCost: 3, parallelism: 2 }).hash('sk_test_token')
    for (const variant of [hash, hash.replace(/m=(\d+),t=(\d+),p=(\d+)/, 'm=$1,p=$3,t=$2'), hash.replace('argon2id', 'argon2i')]) {
      const stored = encodeHash(variant)
      expect(stored.version).toBe(variant.slice(0, variant.indexOf('$', variant.indexOf('$m=') + 1) + 1))
      expect(stored.value).toHaveLength(64)
      expect(decodeHash(stored.version, stored.value)).toBe(variant)
    }
  })

  it('stores a test-hasher hash as parameter version 3 and 64 characters', async () => {
    const hash = await new FastTestHasher().hash('sk_test_token')
    const stored = encodeHash(hash)
    expect(stored).toMatchObject({ version: '3' })
    expect(stored.value).toHaveLength(64)
    expect(decodeHash(stored.version, stored.value)).toBe(hash)
  })

  it('keeps whole any hash it cannot rebuild exactly, and gives it back', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string(), fc.constant('$argon2id$v=19$m=19456,t=2,p=1$AAAA$AAAB'), fc.constant('$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$ZGlnZXN0=')),
        (hash) => {
          const stored = encodeHash(hash)
          expect(decodeHash(stored.version, stored.value)).toBe(hash)
        },
      ),
      { numRuns: 300 },
    )
    expect(encodeHash('$bcrypt$whatever')).toEqual({ version: '0', value: '$bcrypt$whatever' })
  })

  it('refuses a stored hash it did not write', () => {
    expect(decodeHash('9', 'AAAA')).toBeNull()
    expect(decodeHash('1', 'AAAA')).toBeNull()
    expect(decodeHash('1', 'not base64!')).toBeNull()
  })
})
