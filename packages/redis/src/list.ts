import type { KeyRecord, ListQuery } from '@keyrot/core'
import type { KeyLayout } from './keys.js'
import type { RedisClient } from './options.js'

export interface ListContext {
  layout: KeyLayout
  /** Runs one round trip on the data connection, bounded by the store's timeout. */
  step<T>(what: string, work: (redis: RedisClient) => Promise<T>): Promise<T>
  get(keyId: string): Promise<KeyRecord | null>
}

/** Records read in parallel per step: each step is bounded by the store's timeout. */
const READ_CHUNK = 100

function byNewest(a: { createdAt: number; id: string }, b: { createdAt: number; id: string }): number {
  return b.createdAt - a.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
}

/**
 * Lists keys from the tenant indexes (one hash per tenant, key id = creation
 * time, plus the sorted set of earlier releases until it is migrated; a set
 * of tenant ids for listing everything). The indexes live outside
 * the key families' slots, so they work the same on a Cluster: each is one
 * key, read from whichever node holds it.
 *
 * An index entry whose record is gone (retention ended, or a write that
 * failed or was refused after indexing) is skipped and removed.
 */
export async function listRecords(query: ListQuery, context: ListContext): Promise<KeyRecord[]> {
  const { layout } = context
  const tenants =
    query.tenantId === undefined
      ? await context.step('list tenants', (redis) => redis.smembers(layout.tenants))
      : [query.tenantId]
  const entries = await context.step('list keys', (redis) =>
    Promise.all(
      tenants.map(async (tenantId) => {
        // The index (a hash) and, until `store migrate` empties it, the sorted set of earlier releases.
        const [index, flat] = await Promise.all([redis.hgetall(layout.tenantIndex(tenantId)), redis.zrange(layout.tenant(tenantId), 0, -1, 'WITHSCORES')])
        const createdAt = new Map<string, number>()
        for (let i = 0; i + 1 < flat.length; i += 2) createdAt.set(flat[i] as string, Number(flat[i + 1]))
        for (const [id, at] of Object.entries(index)) createdAt.set(id, Number(at))
        return [...createdAt].map(([id, at]) => ({ id, createdAt: at, tenantId }))
      }),
    ),
  )
  const candidates = entries.flat().sort(byNewest)
  const limit = query.limit ?? Number.POSITIVE_INFINITY
  const records: KeyRecord[] = []
  const stale: { id: string; tenantId: string }[] = []
  for (let start = 0; start < candidates.length && records.length < limit; start += READ_CHUNK) {
    const chunk = candidates.slice(start, start + READ_CHUNK)
    const read = await Promise.all(chunk.map((entry) => context.get(entry.id)))
    read.forEach((record, i) => {
      const entry = chunk[i] as { id: string; tenantId: string }
      // A record's tenant never changes: an entry under another tenant is debris of a refused insert.
      if (record === null || record.tenantId !== entry.tenantId) stale.push(entry)
      else records.push(record)
    })
  }
  if (stale.length > 0) {
    await context
      .step('prune the key index', (redis) =>
        Promise.all(stale.flatMap((entry) => [redis.hdel(layout.tenantIndex(entry.tenantId), entry.id), redis.zrem(layout.tenant(entry.tenantId), entry.id)])),
      )
      .catch(() => {
        // Pruning is housekeeping; the next list() tries again.
      })
  }
  records.sort(byNewest)
  return records.slice(0, limit)
}
