import fc from 'fast-check'
import type { KeyRecord } from '@keyrot/core'
import { describe, expect, it } from 'vitest'
import { CorruptRecordError, decodeRecord, encodeRecord } from './record-codec.js'

const timestamp = fc.integer({ min: 0, max: 4_102_444_800_000 })
const json = fc.jsonValue().map((value) => JSON.parse(JSON.stringify(value)) as unknown)
const record: fc.Arbitrary<KeyRecord> = fc.record({
  id: fc.stringMatching(/^[0-9A-Za-z]{16}$/),
  familyId: fc.stringMatching(/^[0-9A-Za-z]{10}$/),
  tenantId: fc.string({ minLength: 1 }),
  name: fc.string(),
  prefix: fc.constantFrom('sk_live', 'sk_test'),
  scopes: fc.array(fc.string()),
  metadata: fc.dictionary(fc.string(), json),
  createdAt: timestamp,
  expiresAt: fc.option(timestamp),
  revokedAt: fc.option(timestamp),
  revokedReason: fc.option(fc.string()),
  incidentId: fc.option(fc.string()),
  rotatedFrom: fc.option(fc.string()),
  rotatedTo: fc.option(fc.string()),
  rotatedAt: fc.option(timestamp),
  rateLimit: fc.option(fc.record({ limit: fc.nat(), windowMs: fc.nat() })),
  usageCount: fc.nat(),
  lastUsedAt: fc.option(timestamp),
  lastUsedInGraceAt: fc.option(timestamp),
  hash: fc.string(),
})

/** What Lua's `record()` replies for the stored pairs: the id appended. */
function asReply(pairs: string[], id: string): string[] {
  return [...pairs, 'id', id]
}

describe('record codec', () => {
  it('decodes exactly what it encoded', () => {
    fc.assert(
      fc.property(record, (drawn) => {
        const original = { ...drawn, familyId: drawn.id.slice(0, 10) }
        expect(decodeRecord(asReply(encodeRecord(original), original.id))).toEqual(original)
      }),
      { numRuns: 200 },
    )
  })

  it('keeps a new key small: only set fields, one-letter names, the hash in 64 characters', () => {
    const pairs = encodeRecord({
      id: 'AbCdEfGhIj012345',
      familyId: 'AbCdEfGhIj',
      tenantId: 'acme',
      name: 'ci',
      prefix: 'sk_live',
      scopes: [],
      metadata: {},
      createdAt: 1_764_800_000_000,
      expiresAt: null,
      revokedAt: null,
      revokedReason: null,
      incidentId: null,
      rotatedFrom: null,
      rotatedTo: null,
      rotatedAt: null,
      rateLimit: null,
      usageCount: 0,
      lastUsedAt: null,
      lastUsedInGraceAt: null,
      hash: '$argon2id$v=19$m=19456,t=2,p=1$8GtfX5EPWqNRB7fkKeSysw$eaWmIxZh8OAGJ8ocVGu9FZxDTZVjOY4X/rOhBKhrIiA',
    })
    const fields = pairs.filter((_, i) => i % 2 === 0)
    expect(fields).toEqual(['v', 't', 'n', 'p', 'c', 'hv', 'h'])
    expect(pairs.slice(-4)).toEqual(['hv', '1', 'h', expect.stringMatching(/^[A-Za-z0-9+/]{64}$/)])
    // Every value fits Redis's listpack limit (hash-max-listpack-value 64).
    for (const value of pairs) expect(value.length).toBeLessThanOrEqual(64)
  })

  it('reads a record of format 1 (the releases before), as Redis holds it', () => {
    const stored = {
      tenantId: 'acme', id: 'kuqzAb23ISpVWOd0', familyId: 'kuqzAb23IS', name: 'rich', prefix: 'sk_test', createdAt: '1796329601947',
      hash: '$keyrot-test-sha256$jhxLbvyPp7HtvnZZPVztbw$wmG9qDCMWXVAn8jZjxP1hTX2vNsQbS4UER-2sqzrN_c', metadata: '{"team":"billing"}',
      usageCount: '3', scopes: '["read","write"]', rateLimit: '{"limit":50,"windowMs":60000}', expiresAt: '2082758400000', proof: 'vfWL.x',
    }
    const record = decodeRecord(Object.entries(stored).flat())
    expect(record).toMatchObject({ id: stored.id, familyId: 'kuqzAb23IS', scopes: ['read', 'write'], metadata: { team: 'billing' }, usageCount: 3, expiresAt: 2082758400000, revokedAt: null, rateLimit: { limit: 50, windowMs: 60000 }, hash: stored.hash, sharedProof: 'vfWL.x' })
  })

  it('refuses a record format newer than it reads', () => {
    expect(() => decodeRecord(['v', '3', 'id', 'AbCdEfGhIj012345'])).toThrow(/newer/)
  })

  it('reads an empty hash as no record', () => {
    expect(decodeRecord([])).toBeNull()
  })

  it.each([
    ['not a list', 'OK'],
    ['an odd list', ['id']],
    ['a missing hash', ['id', 'AbCdEfGhIj012345', 'familyId', 'AbCdEfGhIj', 'tenantId', 'a', 'name', 'n', 'prefix', 'p', 'createdAt', '1']],
    ['a stored hash it did not write', ['v', '2', 'id', 'AbCdEfGhIj012345', 't', 'a', 'n', 'n', 'p', 'p', 'c', '1', 'hv', '1', 'h', 'zz']],
    ['a non-integer time', ['createdAt', '1.5']],
    ['bad JSON', ['scopes', '[']],
    ['a non-string field', [1, 'x']],
  ])('refuses %s with CorruptRecordError', (_, reply) => {
    expect(() => decodeRecord(reply)).toThrow(CorruptRecordError)
  })
})
