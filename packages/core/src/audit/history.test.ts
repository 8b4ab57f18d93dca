import { describe, expect, it } from 'vitest'
import { ManualClock } from '../clock.js'
import { FastTestHasher } from '../hash/hasher.js'
import { createKeyring } from '../lifecycle/keyring.js'
import type { Logger } from '../logger.js'
import { MemoryStore } from '../store/memory-store.js'
import { GENESIS_HASH, historyEntryHash, type HistoryEntry, type HistoryEntryInput, type HistoryLog } from './history.js'
import { MemoryHistoryLog } from './memory-history-log.js'

function action(n: number, familyId = 'fam0000001'): HistoryEntryInput {
  return { at: 1_900_000_000_000 + n, action: 'key.revoked', keyId: `${familyId}k${String(n).padStart(5, '0')}`, familyId, tenantId: 'acme', reason: `r${n}` }
}

async function filled(count: number, options: { maxEntries?: number } = {}): Promise<MemoryHistoryLog> {
  const log = new MemoryHistoryLog(options)
  for (let n = 1; n <= count; n++) await log.append(action(n))
  return log
}

describe('MemoryHistoryLog', () => {
  it('chains entries: seq 1, 2, 3, each prevHash the hash of the one before, each hash recomputable', async () => {
    const log = await filled(3)
    const entries = await log.read()
    expect(entries.map((e) => e.seq)).toEqual([1, 2, 3])
    expect(entries[0]?.prevHash).toBe(GENESIS_HASH)
    expect(entries[1]?.prevHash).toBe(entries[0]?.hash)
    expect(entries[2]?.prevHash).toBe(entries[1]?.hash)
    for (const entry of entries) expect(historyEntryHash(entry)).toBe(entry.hash)
    expect(new Set(entries.map((e) => e.hash)).size).toBe(3)
  })

  it('verifies an untouched log', async () => {
    const log = await filled(5)
    const result = await log.verify()
    expect(result).toMatchObject({ ok: true, checked: 5, problems: [], trimmed: 0, first: { seq: 1 }, last: { seq: 5 } })
  })

  it('verifies an empty log', async () => {
    expect(await new MemoryHistoryLog().verify()).toMatchObject({ ok: true, checked: 0, first: null, last: null })
  })

  it('reads by key (as keyId or newKeyId) and by family, newest last, the newest `limit`', async () => {
    const log = new MemoryHistoryLog()
    await log.append({ at: 1, action: 'key.created', keyId: 'famAAAAAAAk0000001', familyId: 'famAAAAAAA', tenantId: 't', expiresAt: null })
    await log.append({ at: 2, action: 'key.created', keyId: 'famBBBBBBBk0000001', familyId: 'famBBBBBBB', tenantId: 't' })
    await log.append({ at: 3, action: 'key.rotated', keyId: 'famAAAAAAAk0000001', newKeyId: 'famAAAAAAAk0000002', familyId: 'famAAAAAAA', tenantId: 't', gracePeriodMs: 60_000, expiresAt: 60_003 })
    await log.append({ at: 4, action: 'key.revoked', keyId: 'famAAAAAAAk0000002', familyId: 'famAAAAAAA', tenantId: 't' })
    expect((await log.read({ familyId: 'famAAAAAAA' })).map((e) => e.at)).toEqual([1, 3, 4])
    expect((await log.read({ keyId: 'famAAAAAAAk0000002' })).map((e) => e.at)).toEqual([3, 4])
    expect((await log.read({ familyId: 'famAAAAAAA', limit: 2 })).map((e) => e.at)).toEqual([3, 4])
    expect(await log.read({ familyId: 'nobody' })).toEqual([])
    await expect(log.read({ limit: -1 })).rejects.toThrow(TypeError)
  })

  it('detects an edited entry', async () => {
    const snapshot = (await filled(4)).snapshot()
    ;(snapshot.entries[1] as HistoryEntry).reason = 'nothing to see'
    const result = await MemoryHistoryLog.fromSnapshot(snapshot).verify()
    expect(result.ok).toBe(false)
    expect(result.problems).toEqual([expect.objectContaining({ kind: 'edited', seq: 2 })])
  })

  it('detects an edited entry whose hash was recomputed too: its successor no longer links to it', async () => {
    const snapshot = (await filled(4)).snapshot()
    const forged = { ...(snapshot.entries[1] as HistoryEntry), reason: 'nothing to see' }
    forged.hash = historyEntryHash(forged)
    snapshot.entries[1] = forged
    const result = await MemoryHistoryLog.fromSnapshot(snapshot).verify()
    expect(result.problems).toEqual([expect.objectContaining({ kind: 'broken_link', seq: 3 })])
  })

  it('detects a deleted entry in the middle', async () => {
    const snapshot = (await filled(5)).snapshot()
    snapshot.entries.splice(2, 1)
    const result = await MemoryHistoryLog.fromSnapshot(snapshot).verify()
    expect(result.ok).toBe(false)
    expect(result.problems).toEqual([expect.objectContaining({ kind: 'broken_link', seq: 4, detail: expect.stringContaining('1 entry is missing') })])
  })

  it('detects entries deleted at the end (the head no longer matches) and at the start', async () => {
    const atEnd = (await filled(5)).snapshot()
    atEnd.entries.pop()
    expect((await MemoryHistoryLog.fromSnapshot(atEnd).verify()).problems).toEqual([expect.objectContaining({ kind: 'head_mismatch' })])

    const atStart = (await filled(5)).snapshot()
    atStart.entries.shift()
    expect((await MemoryHistoryLog.fromSnapshot(atStart).verify()).problems).toEqual([expect.objectContaining({ kind: 'missing_start', seq: 2 })])

    const all = (await filled(2)).snapshot()
    all.entries.length = 0
    expect((await MemoryHistoryLog.fromSnapshot(all).verify()).problems).toEqual([expect.objectContaining({ kind: 'head_mismatch' })])
  })

  it('detects a forged copy appended at the end, and an unreadable entry', async () => {
    const copied = (await filled(3)).snapshot()
    copied.entries.push({ ...(copied.entries[0] as HistoryEntry), id: '4' })
    const kinds = (await MemoryHistoryLog.fromSnapshot(copied).verify()).problems.map((p) => p.kind)
    expect(kinds).toEqual(['broken_link', 'head_mismatch'])

    const broken = (await filled(3)).snapshot()
    delete (broken.entries[1] as Partial<HistoryEntry>).tenantId
    expect((await MemoryHistoryLog.fromSnapshot(broken).verify()).problems[0]).toMatchObject({ kind: 'malformed', id: '2' })
  })

  it('keeps maxEntries: dropping the oldest is not tampering', async () => {
    const log = await filled(25, { maxEntries: 10 })
    const entries = await log.read()
    expect(entries.map((e) => e.seq)).toEqual([16, 17, 18, 19, 20, 21, 22, 23, 24, 25])
    expect(await log.verify()).toMatchObject({ ok: true, checked: 10, trimmed: 15, first: { seq: 16 } })
  })

  it('refuses an impossible entry or option with a TypeError naming it', async () => {
    const log = new MemoryHistoryLog()
    await expect(log.append({ ...action(1), action: 'key.stolen' as never })).rejects.toThrow(/action/)
    await expect(log.append({ ...action(1), at: Number.NaN })).rejects.toThrow(/at must be/)
    await expect(log.append({ ...action(1), tenantId: '' })).rejects.toThrow(/tenantId/)
    expect(() => new MemoryHistoryLog({ maxEntries: 0 })).toThrow(/maxEntries/)
    expect(await log.read()).toEqual([])
  })

  it('hashes the fields that were passed, never anything else a caller added', async () => {
    const log = new MemoryHistoryLog()
    const entry = await log.append({ ...action(1), token: 'sk_live_secret' } as HistoryEntryInput)
    expect(JSON.stringify(entry)).not.toContain('sk_live_secret')
    expect((await log.verify()).ok).toBe(true)
  })
})

function capturingLogger(): Logger & { errors: Record<string, unknown>[] } {
  const errors: Record<string, unknown>[] = []
  return { errors, info() {}, warn() {}, error: (obj) => errors.push(obj as Record<string, unknown>) }
}

describe('keyring history', () => {
  function setup(history: HistoryLog = new MemoryHistoryLog(), logger = capturingLogger()) {
    const clock = new ManualClock()
    const keyring = createKeyring({ clock, store: new MemoryStore(), hasher: new FastTestHasher(), gracePeriod: '1h', history, logger, rateLimit: false })
    return { clock, keyring, logger }
  }

  it('records create, rotate, expiry change, emergency rotation and revoke of a family, newest last, and verifies', async () => {
    const { clock, keyring } = setup()
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const other = await keyring.create({ tenantId: 'acme', name: 'other' })
    clock.advance(1_000)
    const rotated = await keyring.rotate(key.id)
    await keyring.setExpiry(key.id, clock.now() + 60_000)
    const emergency = await keyring.emergencyRotate(rotated.key.id, { incidentId: 'INC-7' })
    await keyring.revoke(emergency.key.id, { reason: 'decommissioned' })

    const history = await keyring.history(emergency.key.id)
    expect(history.map((e) => e.action)).toEqual(['key.created', 'key.rotated', 'key.expiry_changed', 'key.emergency_rotated', 'key.revoked'])
    expect(history[0]).toMatchObject({ keyId: key.id, familyId: key.familyId, tenantId: 'acme', expiresAt: null })
    expect(history[1]).toMatchObject({ keyId: key.id, newKeyId: rotated.key.id, gracePeriodMs: 3_600_000, expiresAt: clock.now() + 3_600_000 })
    expect(history[2]).toMatchObject({ keyId: key.id, expiresAt: clock.now() + 60_000, previousExpiresAt: clock.now() + 3_600_000 })
    expect(history[3]).toMatchObject({ keyId: rotated.key.id, newKeyId: emergency.key.id, incidentId: 'INC-7', reason: 'emergency rotation (INC-7)' })
    expect(history[4]).toMatchObject({ keyId: emergency.key.id, reason: 'decommissioned' })
    expect((await keyring.history(other.key.id)).map((e) => e.keyId)).toEqual([other.key.id])
    expect(await keyring.verifyHistory()).toMatchObject({ ok: true, checked: 6 })
    await keyring.close()
  })

  it('records nothing for a refused action', async () => {
    const { keyring } = setup()
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    await keyring.rotate(key.id)
    await expect(keyring.rotate(key.id)).rejects.toThrow()
    expect((await keyring.history(key.id)).map((e) => e.action)).toEqual(['key.created', 'key.rotated'])
  })

  it('logs a failed append and still completes the admin action', async () => {
    const failing: HistoryLog = {
      append: () => Promise.reject(new Error('history unreachable')),
      read: async () => [],
      verify: async () => ({ ok: true, checked: 0, problems: [], trimmed: 0, first: null, last: null }),
    }
    const { keyring, logger } = setup(failing)
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const rotated = await keyring.rotate(key.id)
    expect(rotated.previous.state).toBe('grace')
    await keyring.verifyHistory()
    expect(logger.errors).toEqual([
      expect.objectContaining({ event: 'history.append_failed', action: 'key.created', keyId: key.id, err: expect.objectContaining({ message: 'history unreachable' }) }),
      expect.objectContaining({ event: 'history.append_failed', action: 'key.rotated', keyId: key.id }),
    ])
  })

  it('returns from an admin action once its entry is appended, in the order of the actions; close() closes the log', async () => {
    const appended: string[] = []
    let closed = false
    const inner = new MemoryHistoryLog()
    const log: HistoryLog = {
      append: async (entry) => {
        await new Promise((resolve) => setTimeout(resolve, entry.action === 'key.created' ? 20 : 1))
        appended.push(`${entry.action} ${entry.keyId}`)
        return inner.append(entry)
      },
      read: (query) => inner.read(query),
      verify: () => inner.verify(),
      close: async () => {
        closed = true
      },
    }
    const { keyring } = setup(log)
    const emitted: string[] = []
    keyring.on('key.created', (e) => emitted.push(`key.created ${e.key.id}`))
    keyring.on('key.revoked', (e) => emitted.push(`key.revoked ${e.key.id}`))
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    expect(appended).toEqual([`key.created ${key.id}`])
    const [second] = await Promise.all([keyring.create({ tenantId: 'acme', name: 'two' }), keyring.revoke(key.id)])
    expect(appended).toHaveLength(3)
    expect(appended).toContain(`key.created ${second.key.id}`)
    expect(appended).toEqual(emitted)
    await keyring.close()
    expect(closed).toBe(true)
  })

  it('refuses history() without a history log, and a bad key id', async () => {
    const keyring = createKeyring({ store: new MemoryStore(), hasher: new FastTestHasher() })
    await expect(keyring.history('abcdefghij123456')).rejects.toThrow(/history log/)
    await expect(keyring.verifyHistory()).rejects.toThrow(/history log/)
    const { keyring: withHistory } = setup()
    await expect(withHistory.history('nope')).rejects.toMatchObject({ code: 'KEYROT_INVALID_INPUT' })
    expect(() => createKeyring({ history: {} as HistoryLog })).toThrow(/history must implement HistoryLog: missing append/)
  })

  it('never records a token, a secret or a stored hash', async () => {
    const log = new MemoryHistoryLog()
    const { keyring } = setup(log)
    const created = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const rotated = await keyring.rotate(created.key.id)
    const emergency = await keyring.emergencyRotate(rotated.key.id, { incidentId: 'INC-1' })
    await keyring.verifyHistory()
    const text = JSON.stringify(log.snapshot())
    for (const token of [created.token, rotated.token, emergency.token]) {
      expect(text).not.toContain(token)
      expect(text).not.toContain(token.slice(-49, -6))
    }
    expect(text).not.toContain('$argon2')
    expect(text).not.toContain('keyrot-test-sha256')
  })
})
