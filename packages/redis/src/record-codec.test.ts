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

function asReply(pairs: string[]): string[] {
  return pairs
}

describe('record codec', () => {
  it('decodes exactly what it encoded', () => {
    fc.assert(
      fc.property(record, (original) => {
        expect(decodeRecord(asReply(encodeRecord(original)))).toEqual(original)
      }),
      { numRuns: 200 },
    )
  })

  it('reads an empty hash as no record', () => {
    expect(decodeRecord([])).toBeNull()
  })

  it.each([
    ['not a list', 'OK'],
    ['an odd list', ['id']],
    ['a missing hash', ['id', 'AbCdEfGhIj012345']],
    ['a non-integer time', ['createdAt', '1.5']],
    ['bad JSON', ['scopes', '[']],
    ['a non-string field', [1, 'x']],
  ])('refuses %s with CorruptRecordError', (_, reply) => {
    expect(() => decodeRecord(reply)).toThrow(CorruptRecordError)
  })
})
