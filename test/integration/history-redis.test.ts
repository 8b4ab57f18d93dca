import { randomBytes } from 'node:crypto'
import { createKeyring, FastTestHasher, historyEntryHash, MemoryStore, type HistoryEntry, type Keyring, type Logger } from '@keyrot/core'
import { decodeHistoryItem, RedisHistoryLog, RedisStore } from '@keyrot/redis'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { freePort, startRedisServer, type RedisServer } from '../helpers/redis-server.js'
import { dumpRedis, SecretLedger } from '../support/secret-scan.js'

/**
 * The shared admin history on a real redis-server: several keyrings on
 * their own connections append to one hash chain; tampering with the stream
 * by hand (a forged entry, a deleted one, a field rewritten in place) is
 * reported by verifyHistory(); the length bound is not taken for tampering.
 */

let server: RedisServer
let admin: Redis
const cleanup: (() => Promise<unknown> | unknown)[] = []

beforeAll(async () => {
  server = await startRedisServer()
  admin = new Redis(server.port, '127.0.0.1')
  // Small stream nodes, so `MAXLEN ~` trims after a few dozen entries instead of hundreds.
  await admin.config('SET', 'stream-node-max-entries', '8')
})

afterEach(async () => {
  for (const close of cleanup.splice(0).reverse()) await close()
})

afterAll(async () => {
  admin?.disconnect()
  await server?.stop()
})

function prefix(): string {
  return `h${randomBytes(5).toString('hex')}`
}

function client(): Redis {
  const created = new Redis(server.port, '127.0.0.1', { lazyConnect: true })
  cleanup.push(() => created.disconnect())
  return created
}

function historyLog(keyPrefix: string, options: { maxLength?: number } = {}): RedisHistoryLog {
  const log = new RedisHistoryLog({ client: client(), keyPrefix, timeout: '2s', ...options })
  cleanup.push(() => log.close())
  return log
}

/** A keyring on its own Redis connection, with the store and the history sharing `keyPrefix`. */
function replica(keyPrefix: string, logger?: Logger): Keyring {
  const store = new RedisStore({ client: client(), keyPrefix, invalidation: false, timeout: '2s' })
  const keyring = createKeyring({ store, history: RedisHistoryLog.forStore(store, { timeout: '2s' }), hasher: new FastTestHasher(), gracePeriod: '1h', prefix: 'sk_test', logger })
  cleanup.push(() => keyring.close())
  return keyring
}

function entryOf(n: number) {
  return { at: 1_900_000_000_000 + n, action: 'key.revoked' as const, keyId: `fam${String(n).padStart(13, '0')}`, familyId: 'fam0000000', tenantId: 'acme', reason: `reason ${n}` }
}

async function appendMany(log: RedisHistoryLog, count: number): Promise<HistoryEntry[]> {
  const appended: HistoryEntry[] = []
  for (let n = 1; n <= count; n++) appended.push(await log.append(entryOf(n)))
  return appended
}

async function streamItems(log: RedisHistoryLog): Promise<[string, string[]][]> {
  return (await admin.xrange(log.streamKey, '-', '+')) as [string, string[]][]
}

describe('RedisHistoryLog on redis-server', () => {
  it('shows a family as create, rotate, revoke and emergency rotation with its incident id, from any replica', async () => {
    const keyPrefix = prefix()
    const a = replica(keyPrefix)
    const b = replica(keyPrefix)
    const { key } = await a.create({ tenantId: 'acme', name: 'ci' })
    const rotated = await b.rotate(key.id)
    await a.revoke(key.id, { reason: 'grace cut short' })
    const emergency = await b.emergencyRotate(rotated.key.id, { incidentId: 'INC-42', reason: 'leaked in a build log' })

    // Each action returned once its entry was appended: either replica reads the whole family, in order.
    const fromB = await b.history(key.id)
    const fromA = await a.history(emergency.key.id)
    expect(fromA).toEqual(fromB)
    expect(fromA.map((e) => [e.action, e.keyId, e.newKeyId])).toEqual([
      ['key.created', key.id, undefined],
      ['key.rotated', key.id, rotated.key.id],
      ['key.revoked', key.id, undefined],
      ['key.emergency_rotated', rotated.key.id, emergency.key.id],
    ])
    expect(fromA[1]).toMatchObject({ gracePeriodMs: 3_600_000, tenantId: 'acme', familyId: key.familyId })
    expect(fromA[2]).toMatchObject({ reason: 'grace cut short' })
    expect(fromA[3]).toMatchObject({ incidentId: 'INC-42', reason: 'leaked in a build log' })
    expect(fromA.map((e) => e.seq)).toEqual([1, 2, 3, 4])
    expect(await a.verifyHistory()).toMatchObject({ ok: true, checked: 4, problems: [], trimmed: 0, last: { seq: 4, hash: fromA[3]?.hash } })
  })

  it('keeps one linear chain when two keyrings on two connections act at the same time', async () => {
    const keyPrefix = prefix()
    const a = replica(keyPrefix)
    const b = replica(keyPrefix)
    const created = await Promise.all([
      ...Array.from({ length: 15 }, (_, i) => a.create({ tenantId: 'acme', name: `a${i}` })),
      ...Array.from({ length: 15 }, (_, i) => b.create({ tenantId: 'acme', name: `b${i}` })),
    ])
    await Promise.all(created.map(({ key }, i) => (i % 2 === 0 ? a : b).rotate(key.id, { gracePeriod: '1m' })))
    const result = await a.verifyHistory()
    await b.verifyHistory()
    const again = await b.verifyHistory()
    expect(result.problems).toEqual([])
    expect(again).toMatchObject({ ok: true, checked: 60, last: { seq: 60 } })
    const log = historyLog(keyPrefix)
    const entries = await log.read({ limit: 100 })
    expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1))
    expect(new Set(entries.filter((e) => e.action === 'key.created').map((e) => e.keyId))).toEqual(new Set(created.map((c) => c.key.id)))
    for (let i = 1; i < entries.length; i++) expect(entries[i]?.prevHash).toBe(entries[i - 1]?.hash)
  })

  it('keeps one chain when three logs append back to back, each getting its share (compare-and-set with turns)', async () => {
    const keyPrefix = prefix()
    const logs = [historyLog(keyPrefix), historyLog(keyPrefix), historyLog(keyPrefix)]
    await logs[0]?.append(entryOf(0))
    // Each log appends the next entry as soon as its last returned, until 3,000 are in: a bare compare-and-set
    // lets the winner of a round win the next one too (its reply comes first), and the others starve.
    const TOTAL = 3_000
    let next = 1
    const counts = logs.map(() => 0)
    await Promise.all(
      logs.map(async (log, l) => {
        while (next < TOTAL) {
          await log.append(entryOf(next++))
          counts[l] = (counts[l] ?? 0) + 1
        }
      }),
    )
    expect(counts.reduce((a, b) => a + b, 0)).toBe(TOTAL - 1)
    for (const count of counts) expect(count).toBeGreaterThan(TOTAL / 3 / 3)
    const entries = await logs[1]?.read({ limit: TOTAL })
    expect(entries?.map((e) => e.seq)).toEqual(Array.from({ length: TOTAL }, (_, i) => i + 1))
    expect(await logs[2]?.verify()).toMatchObject({ ok: true, checked: TOTAL, problems: [] })
  })

  it('detects a forged copy added with XADD', async () => {
    const log = historyLog(prefix())
    await appendMany(log, 6)
    const [, fields] = (await streamItems(log))[2] as [string, string[]]
    await admin.xadd(log.streamKey, '*', ...fields)
    const result = await log.verify()
    expect(result.ok).toBe(false)
    expect(result.problems.map((p) => p.kind)).toEqual(['broken_link', 'head_mismatch'])
  })

  it('detects an entry deleted with XDEL in the middle, at the end and at the start', async () => {
    const middle = historyLog(prefix())
    const appended = await appendMany(middle, 6)
    expect(await admin.xdel(middle.streamKey, appended[2]?.id as string)).toBe(1)
    expect((await middle.verify()).problems).toEqual([expect.objectContaining({ kind: 'broken_link', seq: 4, detail: expect.stringContaining('1 entry is missing') })])

    const end = historyLog(prefix())
    const last = (await appendMany(end, 4))[3] as HistoryEntry
    await admin.xdel(end.streamKey, last.id)
    expect((await end.verify()).problems).toEqual([expect.objectContaining({ kind: 'head_mismatch', detail: expect.stringContaining('deleted at the end') })])

    const start = historyLog(prefix())
    const first = (await appendMany(start, 4))[0] as HistoryEntry
    await admin.xdel(start.streamKey, first.id)
    expect((await start.verify()).problems).toEqual([expect.objectContaining({ kind: 'missing_start', seq: 2 })])
  })

  it('detects a field rewritten in place by a Lua script (same ids, same order)', async () => {
    const log = historyLog(prefix())
    await appendMany(log, 5)
    // A stream entry cannot be changed: the script rebuilds the stream with the same ids, one reason altered.
    await admin.eval(
      `local items = redis.call('XRANGE', KEYS[1], '-', '+')
       redis.call('DEL', KEYS[1])
       for _, item in ipairs(items) do
         local fields = item[2]
         for i = 1, #fields, 2 do
           if fields[i] == 'reason' and fields[i + 1] == ARGV[1] then fields[i + 1] = ARGV[2] end
         end
         redis.call('XADD', KEYS[1], item[1], unpack(fields))
       end
       return #items`,
      1,
      log.streamKey,
      'reason 3',
      'routine cleanup',
    )
    const items = await streamItems(log)
    expect(items.map(([, fields]) => fields[fields.indexOf('reason') + 1])).toEqual(['reason 1', 'reason 2', 'routine cleanup', 'reason 4', 'reason 5'])
    expect((await log.verify()).problems).toEqual([expect.objectContaining({ kind: 'edited', seq: 3 })])
  })

  it('detects a rewritten entry whose hash was recomputed, and an unreadable one', async () => {
    const log = historyLog(prefix())
    await appendMany(log, 4)
    const items = await streamItems(log)
    const forged = decodeHistoryItem(items[1]) as HistoryEntry
    forged.reason = 'nothing happened'
    forged.hash = historyEntryHash(forged)
    await admin.eval(
      `local items = redis.call('XRANGE', KEYS[1], '-', '+')
       redis.call('DEL', KEYS[1])
       for _, item in ipairs(items) do
         local fields = item[2]
         if item[1] == ARGV[1] then
           for i = 1, #fields, 2 do
             if fields[i] == 'reason' then fields[i + 1] = ARGV[2] end
             if fields[i] == 'hash' then fields[i + 1] = ARGV[3] end
           end
         end
         if item[1] == ARGV[4] then fields = {'seq', 'x'} end
         redis.call('XADD', KEYS[1], item[1], unpack(fields))
       end
       return #items`,
      1,
      log.streamKey,
      forged.id,
      forged.reason,
      forged.hash,
      (items[3] as [string, string[]])[0],
    )
    const kinds = (await log.verify()).problems.map((p) => p.kind)
    // Entry 3 no longer links to the rewritten 2; entry 4 cannot be read, and so no longer matches the head.
    expect(kinds).toEqual(['broken_link', 'malformed', 'head_mismatch'])
  })

  it('trims to about maxLength without reporting it as tampering; a hand deletion at the start still shows', async () => {
    const log = historyLog(prefix(), { maxLength: 20 })
    await appendMany(log, 100)
    const length = await admin.xlen(log.streamKey)
    expect(length).toBeGreaterThanOrEqual(20)
    expect(length).toBeLessThan(100)
    const result = await log.verify()
    expect(result).toMatchObject({ ok: true, checked: length, trimmed: 100 - length, first: { seq: 101 - length }, last: { seq: 100 } })

    const [oldest] = (await streamItems(log))[0] as [string, string[]]
    await admin.xdel(log.streamKey, oldest)
    expect((await log.verify()).problems).toEqual([expect.objectContaining({ kind: 'missing_start', seq: 102 - length })])
  })

  it('verifies while other replicas append and trim (no append taken for tampering)', async () => {
    const keyPrefix = prefix()
    const writer = historyLog(keyPrefix, { maxLength: 30 })
    const other = historyLog(keyPrefix, { maxLength: 30 })
    const checker = historyLog(keyPrefix, { maxLength: 30 })
    await appendMany(writer, 40)
    let writing = true
    const appending = (async () => {
      for (let n = 0; writing && n < 2_000; n++) await (n % 2 ? writer : other).append(entryOf(n))
    })()
    const results = []
    try {
      for (let i = 0; i < 20; i++) results.push(await checker.verify())
    } finally {
      writing = false
      await appending
    }
    expect(results.filter((r) => !r.ok)).toEqual([])
    expect(results.at(-1)?.last?.seq).toBeGreaterThan(40)
    expect(results.some((r) => r.trimmed > 0)).toBe(true)
  })

  it('reads by key and by family, newest last, past one page', async () => {
    const log = historyLog(prefix())
    for (let n = 1; n <= 1_200; n++) {
      await log.append({ ...entryOf(n), familyId: n % 100 === 0 ? 'famRARE000' : 'fam0000000' })
    }
    const rare = await log.read({ familyId: 'famRARE000' })
    expect(rare.map((e) => e.at - 1_900_000_000_000)).toEqual([100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1100, 1200])
    expect((await log.read({ familyId: 'famRARE000', limit: 3 })).map((e) => e.seq)).toEqual([1000, 1100, 1200])
    expect((await log.read({ keyId: entryOf(7).keyId })).map((e) => e.seq)).toEqual([7])
    expect(await log.read({ limit: 0 })).toEqual([])
    expect((await log.verify()).checked).toBe(1_200)
  })

  it('logs a failed append and still completes the admin action', async () => {
    const lines: Record<string, unknown>[] = []
    const logger: Logger = { info() {}, warn() {}, error: (fields) => lines.push(fields as Record<string, unknown>) }
    const nothingThere = new Redis(await freePort(), '127.0.0.1', { lazyConnect: true })
    cleanup.push(() => nothingThere.disconnect())
    const history = new RedisHistoryLog({ client: nothingThere, timeout: '300ms' })
    const keyring = createKeyring({ store: new MemoryStore(), history, hasher: new FastTestHasher(), logger })
    cleanup.push(() => keyring.close())
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    expect((await keyring.get(key.id))?.state).toBe('active')
    await expect(keyring.verifyHistory()).rejects.toMatchObject({ code: 'KEYROT_STORE_UNAVAILABLE' })
    expect(lines).toEqual([expect.objectContaining({ event: 'history.append_failed', action: 'key.created', keyId: key.id })])
  })

  it('writes no token and no secret to Redis', async () => {
    const keyPrefix = prefix()
    const keyring = replica(keyPrefix)
    const ledger = new SecretLedger()
    const created = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const rotated = await keyring.rotate(created.key.id)
    const emergency = await keyring.emergencyRotate(rotated.key.id, { incidentId: 'INC-1' })
    for (const issued of [created, rotated, emergency]) ledger.addToken(issued.token)
    await keyring.revoke(emergency.key.id)
    expect((await keyring.verifyHistory()).checked).toBe(4)
    const stream = JSON.stringify(await admin.xrange(`${keyPrefix}:{history}:stream`, '-', '+'))
    // The scan below would pass on an empty stream: the entries are there, with their key ids.
    for (const id of [created.key.id, rotated.key.id, emergency.key.id]) expect(stream).toContain(id)
    expect(stream).not.toContain('keyrot-test-sha256')
    expect(ledger.scan(await dumpRedis(server.port))).toEqual([])
  })
})
