import { unreadableReason, type HistoryEntry, type UnreadableHistoryEntry } from '@keyrot/core'

/**
 * A history entry as stream fields. `seq` first (the append script reads
 * it), then the entry's fields, `prevHash` and `hash`. Fields that do not
 * apply are left out; a `null` expiry ("never") is the empty string.
 */
const STRING_FIELDS = ['action', 'keyId', 'familyId', 'tenantId', 'newKeyId', 'incidentId', 'reason', 'actor', 'prevHash', 'hash'] as const
const NUMBER_FIELDS = ['seq', 'at', 'gracePeriodMs'] as const
const NULLABLE_FIELDS = ['expiresAt', 'previousExpiresAt'] as const

export function encodeHistoryEntry(entry: Omit<HistoryEntry, 'id'>): string[] {
  const pairs: string[] = ['seq', String(entry.seq), 'at', String(entry.at), 'action', entry.action, 'keyId', entry.keyId, 'familyId', entry.familyId, 'tenantId', entry.tenantId]
  for (const name of ['newKeyId', 'incidentId', 'reason', 'actor'] as const) {
    const value = entry[name]
    if (value !== undefined) pairs.push(name, value)
  }
  if (entry.gracePeriodMs !== undefined) pairs.push('gracePeriodMs', String(entry.gracePeriodMs))
  for (const name of NULLABLE_FIELDS) {
    const value = entry[name]
    if (value !== undefined) pairs.push(name, value === null ? '' : String(value))
  }
  pairs.push('prevHash', entry.prevHash, 'hash', entry.hash)
  return pairs
}

function integer(value: string): number | string {
  // Anything but a plain integer stays a string, and the entry is reported unreadable.
  return /^-?\d{1,16}$/.test(value) ? Number(value) : value
}

/** One `XRANGE` item (`[id, [field, value, ...]]`) as an entry, or why it is not one. */
export function decodeHistoryItem(item: unknown): HistoryEntry | UnreadableHistoryEntry {
  if (!Array.isArray(item) || typeof item[0] !== 'string' || !Array.isArray(item[1])) {
    return { id: Array.isArray(item) && typeof item[0] === 'string' ? item[0] : '?', unreadable: 'not a stream entry' }
  }
  const id = item[0]
  const pairs = item[1] as unknown[]
  if (pairs.length % 2 !== 0) return { id, unreadable: 'odd number of fields' }
  const entry: Record<string, unknown> = { id }
  for (let i = 0; i < pairs.length; i += 2) {
    const name = pairs[i]
    const value = pairs[i + 1]
    if (typeof name !== 'string' || typeof value !== 'string') return { id, unreadable: 'a field is not a string' }
    if (Object.hasOwn(entry, name)) return { id, unreadable: `field ${name} appears twice` }
    if ((STRING_FIELDS as readonly string[]).includes(name)) entry[name] = value
    else if ((NUMBER_FIELDS as readonly string[]).includes(name)) entry[name] = integer(value)
    else if ((NULLABLE_FIELDS as readonly string[]).includes(name)) entry[name] = value === '' ? null : integer(value)
    else return { id, unreadable: `unknown field ${name.slice(0, 40)}` }
  }
  const reason = unreadableReason(entry)
  return reason === null ? (entry as unknown as HistoryEntry) : { id, unreadable: reason }
}
