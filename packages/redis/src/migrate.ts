import { isKeyId } from '@keyrot/core'
import type { Cluster, Redis } from 'ioredis'
import { runScript } from './connection.js'
import { encodeHash } from './hash-codec.js'
import type { KeyLayout } from './keys.js'
import type { RedisClient } from './options.js'
import { MIGRATE_SCRIPTS } from './migrate-scripts.js'

/** What `keyrot store migrate` found and did. */
export interface MigrationReport {
  /** Records looked at (every `rec:` key of this prefix). */
  scanned: number
  /** Format 1 records converted to format 2 (with `dryRun`: that would be converted). */
  converted: number
  /** Records already in format 2. */
  current: number
  /** Records that changed or vanished while being converted (each is retried once; left for the next run). */
  skipped: number
  /** Tenant index entries moved from the sorted sets of earlier releases to the hash index (with `dryRun`: to move). */
  indexEntries: number
  dryRun: boolean
}

export interface MigrationOptions {
  /** Count only; write nothing. Default `false`. */
  dryRun?: boolean
  /** Keys asked per `SCAN` step, and records converted per round trip. Default 500. */
  batchSize?: number
  /** Called after each batch with the counts so far. */
  onProgress?: (report: MigrationReport) => void
}

export interface MigrationContext {
  layout: KeyLayout
  cluster: boolean
  retentionMs: number
  now(): number
  /** Runs one round trip on the data connection, bounded by the store's timeout. */
  step<T>(what: string, work: (redis: RedisClient) => Promise<T>): Promise<T>
}

/** `*` `?` `[` `]` `\` in a prefix are literal in the SCAN pattern. */
function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`)
}

/**
 * Converts every format 1 record (written by releases before record format 2)
 * to format 2, in batches (see `MIGRATE_RECORD` in scripts.ts for one key).
 * Idempotent: a converted record is counted as `current` next time, and a
 * run that stops half way is finished by the next one. The store keeps
 * serving meanwhile: the scripts read and update either format.
 *
 * SCAN runs on each primary (Cluster) or the server, so it sees every key
 * once unless the set of nodes changes while it runs (then run it again).
 */
export async function migrateRecords(context: MigrationContext, options: MigrationOptions = {}): Promise<MigrationReport> {
  const dryRun = options.dryRun ?? false
  const batchSize = options.batchSize ?? 500
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new TypeError(`batchSize must be a positive integer; got ${String(batchSize)}`)
  const report: MigrationReport = { scanned: 0, converted: 0, current: 0, skipped: 0, indexEntries: 0, dryRun }
  const { layout } = context
  const pattern = `${globEscape(layout.prefix)}:{*}:rec:*`
  const nodes = await context.step('list the Redis primaries', async (redis) =>
    context.cluster ? (redis as Cluster).nodes('master') : [redis as Redis],
  )
  for (const node of nodes) {
    let cursor = '0'
    do {
      const [next, names] = await context.step('scan key records', () => node.scan(cursor, 'MATCH', pattern, 'COUNT', batchSize))
      cursor = next
      // Only keys this layout names (a longer prefix that starts with ours would match the pattern too).
      const records = names.map((name) => name.slice(name.lastIndexOf(':rec:') + 5)).filter((keyId, i) => isKeyId(keyId) && layout.record(keyId) === names[i])
      if (records.length > 0) await convertBatch(context, records, dryRun, report)
      options.onProgress?.({ ...report })
    } while (cursor !== '0')
  }
  await migrateIndexes(context, batchSize, dryRun, report)
  options.onProgress?.({ ...report })
  return report
}

/** Moves every tenant's sorted-set index (earlier releases) into its hash index, `batchSize` entries per script. */
async function migrateIndexes(context: MigrationContext, batchSize: number, dryRun: boolean, report: MigrationReport): Promise<void> {
  const { layout } = context
  const tenants = await context.step('list tenants', (redis) => redis.smembers(layout.tenants))
  for (const tenantId of tenants) {
    const keys = [layout.tenant(tenantId), layout.tenantIndex(tenantId)]
    if (dryRun) {
      report.indexEntries += await context.step('count index entries', (redis) => redis.zcard(keys[0] as string))
      continue
    }
    for (;;) {
      const reply = await context.step('move index entries', (redis) => runScript(redis, MIGRATE_SCRIPTS.migrateIndex, keys, [batchSize]))
      const [moved, left] = (Array.isArray(reply) ? reply : [0, 0]) as [number, number]
      report.indexEntries += Number(moved)
      if (Number(left) === 0 || Number(moved) === 0) break
    }
  }
}

async function convertBatch(context: MigrationContext, keyIds: string[], dryRun: boolean, report: MigrationReport): Promise<void> {
  const { layout } = context
  const looks = await context.step('read record formats', (redis) =>
    Promise.all(keyIds.map((keyId) => redis.hmget(layout.record(keyId), 'v', 'hash') as Promise<[string | null, string | null]>)),
  )
  const legacy: { keyId: string; hash: string }[] = []
  looks.forEach(([version, hash], i) => {
    report.scanned++
    if (version !== null) report.current++
    else if (hash === null) report.skipped++
    else legacy.push({ keyId: keyIds[i] as string, hash })
  })
  if (dryRun) {
    report.converted += legacy.length
    return
  }
  const outcomes = await context.step('convert records', (redis) =>
    Promise.all(
      legacy.map(({ keyId, hash }) =>
        runScript(redis, MIGRATE_SCRIPTS.migrateRecord, [layout.record(keyId), layout.credential(keyId)], [hash, ...storedHash(hash), context.now(), context.retentionMs]),
      ),
    ),
  )
  const retry: string[] = []
  outcomes.forEach((outcome, i) => {
    if (outcome === 'converted') report.converted++
    else if (outcome === 'current') report.current++
    else if (outcome === 'changed') retry.push((legacy[i] as { keyId: string }).keyId)
    else report.skipped++
  })
  if (retry.length === 0) return
  // The hash changed between the read and the script (a re-hash): read it again, once.
  const again: MigrationReport = { scanned: 0, converted: 0, current: 0, skipped: 0, indexEntries: 0, dryRun }
  await convertOnce(context, retry, again)
  report.converted += again.converted
  report.current += again.current
  report.skipped += again.scanned - again.converted - again.current
}

async function convertOnce(context: MigrationContext, keyIds: string[], report: MigrationReport): Promise<void> {
  const { layout } = context
  const looks = await context.step('read records again', (redis) => Promise.all(keyIds.map((keyId) => redis.hmget(layout.record(keyId), 'v', 'hash') as Promise<[string | null, string | null]>)))
  for (const [i, [version, hash]] of looks.entries()) {
    report.scanned++
    const keyId = keyIds[i] as string
    if (version !== null) report.current++
    else if (hash !== null) {
      const outcome = await context.step('convert a record', (redis) =>
        runScript(redis, MIGRATE_SCRIPTS.migrateRecord, [layout.record(keyId), layout.credential(keyId)], [hash, ...storedHash(hash), context.now(), context.retentionMs]),
      )
      if (outcome === 'converted') report.converted++
      else if (outcome === 'current') report.current++
    }
  }
}

function storedHash(hash: string): [string, string] {
  const stored = encodeHash(hash)
  return [stored.version, stored.value]
}
