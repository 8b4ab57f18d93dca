import { GENESIS_HASH, historyEntryHash, type HistoryEntry } from '@keyrot/core'
import { describe, expect, it } from 'vitest'
import { decodeHistoryItem, encodeHistoryEntry } from './codec.js'

function entry(fields: Partial<HistoryEntry> = {}): HistoryEntry {
  const chained = {
    at: 1_900_000_000_000,
    action: 'key.expiry_changed' as const,
    keyId: 'abcdefghij123456',
    familyId: 'abcdefghij',
    tenantId: 'acme',
    expiresAt: null,
    previousExpiresAt: 1_900_000_360_000,
    seq: 7,
    prevHash: GENESIS_HASH,
    ...fields,
  }
  return { ...chained, id: '1-0', hash: historyEntryHash(chained) }
}

function item(value: HistoryEntry): [string, string[]] {
  const { id, ...rest } = value
  return [id, encodeHistoryEntry(rest)]
}

describe('history stream codec', () => {
  it('round-trips an entry, a null expiry ("never") included, with seq as the first field', () => {
    const original = entry()
    const [, fields] = item(original)
    expect(fields.slice(0, 2)).toEqual(['seq', '7'])
    expect(fields[fields.indexOf('expiresAt') + 1]).toBe('')
    const decoded = decodeHistoryItem(item(original)) as HistoryEntry
    expect(decoded).toEqual(original)
    expect(historyEntryHash(decoded)).toBe(original.hash)
  })

  it('round-trips the optional fields of an emergency rotation and leaves out what does not apply', () => {
    const original = entry({ action: 'key.emergency_rotated', newKeyId: 'abcdefghij654321', incidentId: 'INC-1', reason: 'leaked', expiresAt: undefined, previousExpiresAt: undefined })
    for (const name of ['expiresAt', 'previousExpiresAt'] as const) delete original[name]
    const [, fields] = item(original)
    expect(fields).not.toContain('expiresAt')
    expect(fields).not.toContain('gracePeriodMs')
    expect(decodeHistoryItem(item(original))).toEqual(original)
  })

  it('reports what is wrong with an item instead of throwing', () => {
    const [id, fields] = item(entry())
    expect(decodeHistoryItem('nope')).toMatchObject({ unreadable: 'not a stream entry' })
    expect(decodeHistoryItem([id, fields.slice(1)])).toMatchObject({ id, unreadable: 'odd number of fields' })
    expect(decodeHistoryItem([id, [...fields, 'token', 'x']])).toMatchObject({ unreadable: 'unknown field token' })
    expect(decodeHistoryItem([id, [...fields, 'seq', '8']])).toMatchObject({ unreadable: 'field seq appears twice' })
    const badSeq = [...fields]
    badSeq[1] = '7e3'
    expect(decodeHistoryItem([id, badSeq])).toMatchObject({ unreadable: 'no valid seq' })
    const noTenant = fields.filter((_, i) => i !== fields.indexOf('tenantId') && i !== fields.indexOf('tenantId') + 1)
    expect(decodeHistoryItem([id, noTenant])).toMatchObject({ unreadable: expect.stringContaining('tenantId') })
  })
})
