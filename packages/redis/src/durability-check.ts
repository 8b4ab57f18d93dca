import type { Cluster } from 'ioredis'
import type { RedisClient } from './options.js'

/** What a Redis server says about keeping keyrot's keys. */
export interface DurabilityReport {
  /** `appendonly`: `null` when the server would not say. */
  appendOnly: boolean | null
  /** `appendfsync` (`always`, `everysec`, `no`): `null` when unknown (not in `INFO`). */
  appendFsync: string | null
  /** `maxmemory-policy`: `null` when unknown. */
  maxmemoryPolicy: string | null
  /** Where the answers came from: `CONFIG GET`, `INFO` (managed Redis that disables `CONFIG`), or nowhere. */
  source: 'config' | 'info' | 'unknown'
  /** What can lose or evict keys, one sentence each (empty: nothing found). */
  problems: string[]
}

/** Thrown by `waitUntilReady()` with `requireDurability: true` when Redis can lose or evict keys. */
export class UnsafeRedisConfigError extends Error {
  readonly problems: string[]
  constructor(problems: string[]) {
    super(`keyrot Redis store: Redis can lose or evict keys: ${problems.join('; ')} (see docs/redis.md#production)`)
    this.name = 'UnsafeRedisConfigError'
    this.problems = problems
  }
}

/**
 * Reads persistence and eviction settings from every primary (a Cluster's
 * masters, or the one server) and names what can lose keys:
 * - AOF off: a restart brings back at best the last RDB snapshot, so
 *   revocations and rotations after it are undone (keyrot detects the
 *   rollback and writes back the revocations its replicas know);
 * - `appendfsync no`: a crash loses up to ~30 s of writes;
 * - any `maxmemory-policy` but `noeviction`: under memory pressure Redis may
 *   drop a credential in its grace period, a record, or a replay nonce.
 * `appendfsync everysec` (up to 1 s lost in a crash) is accepted: rollback
 * detection covers that second.
 */
export async function checkDurability(redis: RedisClient): Promise<DurabilityReport> {
  const nodes = (redis as Cluster).isCluster ? (redis as Cluster).nodes('master') : [redis]
  const reports = await Promise.all(nodes.map((node) => readNode(node as RedisClient)))
  const problems = [...new Set(reports.flatMap((report) => report.problems))]
  const first = reports[0] as DurabilityReport
  return { ...first, problems }
}

async function readNode(node: RedisClient): Promise<DurabilityReport> {
  let appendOnly: boolean | null = null
  let appendFsync: string | null = null
  let maxmemoryPolicy: string | null = null
  let source: DurabilityReport['source'] = 'unknown'
  try {
    const reply = (await node.call('CONFIG', 'GET', 'appendonly', 'appendfsync', 'maxmemory-policy')) as string[]
    const map = new Map<string, string>()
    for (let i = 0; i + 1 < reply.length; i += 2) map.set(String(reply[i]), String(reply[i + 1]))
    if (map.size > 0) {
      appendOnly = map.has('appendonly') ? map.get('appendonly') === 'yes' : null
      appendFsync = map.get('appendfsync') ?? null
      maxmemoryPolicy = map.get('maxmemory-policy') ?? null
      source = 'config'
    }
  } catch {
    // CONFIG is often renamed or disabled on managed Redis: INFO says most of it.
  }
  if (source === 'unknown') {
    try {
      const persistence = infoFields(String(await node.call('INFO', 'persistence')))
      const memory = infoFields(String(await node.call('INFO', 'memory')))
      if (persistence.has('aof_enabled')) appendOnly = persistence.get('aof_enabled') === '1'
      maxmemoryPolicy = memory.get('maxmemory_policy') ?? null
      if (appendOnly !== null || maxmemoryPolicy !== null) source = 'info'
    } catch {
      // Neither answered: reported as unknown.
    }
  }
  const problems: string[] = []
  if (appendOnly === false) problems.push('append-only file off (appendonly no): a restart loses the changes since the last snapshot')
  if (appendFsync === 'no') problems.push('appendfsync no: a crash loses up to ~30 s of changes')
  if (maxmemoryPolicy !== null && maxmemoryPolicy !== 'noeviction') {
    problems.push(`maxmemory-policy ${maxmemoryPolicy}: Redis may evict credentials, records or replay nonces under memory pressure (use noeviction)`)
  }
  return { appendOnly, appendFsync, maxmemoryPolicy, source, problems }
}

function infoFields(text: string): Map<string, string> {
  const map = new Map<string, string>()
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(':')
    if (at > 0 && !line.startsWith('#')) map.set(line.slice(0, at), line.slice(at + 1).trim())
  }
  return map
}
