import fc from 'fast-check'
import { Argon2Hasher, FastTestHasher } from '@keyrot/core'
import { describe, expect, it } from 'vitest'
import { decodeHash, encodeHash } from './hash-codec.js'

describe('hash codec', () => {
  it('stores an OWASP Argon2id hash as 50 bytes and gives back the same PHC string', async () => {
    const hash = await new Argon2Hasher().hash('sk_test_token')
    const stored = encodeHash(hash)
    expect(stored.length).toBe(50)
    expect(stored[0]).toBe(1)
    expect(decodeHash(stored)).toBe(hash)
  })

  it('stores other Argon2 parameters, either parameter order, in at most 64 bytes', async () => {
    const hash = await new Argon2Hasher({ memoryCost: 4096, timeCost: 3, parallelism: 2 }).hash('sk_test_token')
    for (const variant of [hash, hash.replace(/m=(\d+),t=(\d+),p=(\d+)/, 'm=$1,p=$3,t=$2'), hash.replace('argon2id', 'argon2i')]) {
      const stored = encodeHash(variant)
      expect(stored[0]).toBe(2)
      expect(stored.length).toBeLessThanOrEqual(64)
      expect(decodeHash(stored)).toBe(variant)
    }
  })

  it('stores a test-hasher hash as 50 bytes', async () => {
    const hash = await new FastTestHasher().hash('sk_test_token')
    const stored = encodeHash(hash)
    expect(stored.length).toBe(50)
    expect(decodeHash(stored)).toBe(hash)
  })

  it('keeps any string it cannot rebuild exactly as text, and gives it back', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.constant('$argon2id$v=19$m=19456,t=2,p=1$AAAA$AAAB'), fc.constant('$argon2id$v=19$m=019456,t=2,p=1$c2FsdA$ZGlnZXN0')), (hash) => {
        expect(decodeHash(encodeHash(hash))).toBe(hash)
      }),
      { numRuns: 300 },
    )
    expect(encodeHash('$bcrypt$whatever')[0]).toBe(0)
  })

  it('refuses bytes it did not write', () => {
    expect(decodeHash(Buffer.of())).toBeNull()
    expect(decodeHash(Buffer.of(9, 1, 2))).toBeNull()
    expect(decodeHash(Buffer.of(1, 200, 1))).toBeNull()
  })
})
