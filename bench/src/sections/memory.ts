import { bytes, count, duration, rate, times } from '../lib/format.js'
import { runWorker } from '../lib/processes.js'
import type { RunContext, SectionReport } from '../lib/report.js'
import type { Check, Table } from '../lib/table.js'
import { median } from '../lib/stats.js'
import type { CacheMemoryConfig, CacheMemoryResult, CacheMemoryVariant } from '../workers/cache-memory.js'
import type { ScaleLevel, StoreScaleConfig, StoreScaleResult } from '../workers/store-scale.js'

/** Redis memory per stored key the store must stay within at the largest level (indexes and dict overhead included). */
const REDIS_BYTES_PER_KEY_TARGET = 400

/** How much the slowest level's median may exceed the smallest level's for a cost to count as flat. */
const FLAT_FACTOR = 2

/** Bytes per verification-cache entry, quota state included, that the cache must stay within. */
const CACHE_ENTRY_TARGET = 400

/** Fresh worker processes that measure the verification cache's bytes per entry; each variant's figures are their medians. */
const CACHE_MEMORY_RUNS = 3

interface MedianVariant extends CacheMemoryVariant {
  /** Each process's bytes per entry, in run order. */
  perRun: number[]
}

/** Per variant (same order in every run), the median growth and bytes per entry over the runs. */
function medianVariants(runs: CacheMemoryResult[]): { variants: MedianVariant[] } {
  const first = runs[0] as CacheMemoryResult
  return {
    variants: first.variants.map((variant, i) => {
      const all = runs.map((run) => run.variants[i] as CacheMemoryVariant)
      return {
        ...variant,
        growthPerKey: median(all.map((v) => v.growthPerKey)),
        bytesPerEntry: median(all.map((v) => v.bytesPerEntry)),
        perRun: all.map((v) => v.bytesPerEntry),
      }
    }),
  }
}

/** Section 5: bytes per cached entry, bytes per key in Redis, and store operations at growing key counts. */
export async function memorySection(context: RunContext): Promise<SectionReport> {
  const { profile, redis, maxKeys } = context
  context.log(`memory: verification cache with ${profile.memory.cacheEntries} entries`)
  // Heap bytes after a full GC still move by a few percent from process to process: the median of a few fresh processes.
  const cacheRuns: CacheMemoryResult[] = []
  for (let run = 0; run < CACHE_MEMORY_RUNS; run++) {
    cacheRuns.push(
      await runWorker<CacheMemoryResult>('cache-memory', {
        config: { entries: profile.memory.cacheEntries } satisfies CacheMemoryConfig,
        execArgv: ['--expose-gc'],
        timeoutMs: 120_000,
      }),
    )
  }
  const cache = medianVariants(cacheRuns)

  // --max-keys caps the levels; a cap between two levels becomes the last level.
  const levels = profile.scale.levels.filter((level) => level <= maxKeys)
  if (levels.at(-1) !== maxKeys && maxKeys < Math.max(...profile.scale.levels)) levels.push(maxKeys)
  const scale: StoreScaleResult[] = []
  for (const store of ['memory', 'redis'] as const) {
    context.log(`memory: ${store} store at ${levels.map(count).join(', ')} keys`)
    redis.cli('FLUSHALL')
    scale.push(
      await runWorker<StoreScaleResult>('store-scale', {
        config: { store, redisUrl: redis.url, levels, opsPerLevel: profile.scale.opsPerLevel, fillBudgetMs: profile.scale.fillBudgetMs, redisSample: profile.memory.redisSample } satisfies StoreScaleConfig,
        execArgv: ['--expose-gc', '--max-old-space-size=6144'],
        timeoutMs: profile.scale.fillBudgetMs * 2 + 180_000,
      }),
    )
    redis.cli('FLUSHALL')
  }

  const tables: Table[] = [
    {
      title: 'Memory per verification-cache entry (JS heap and ArrayBuffers after full GC)',
      columns: ['keyring', 'keys verified', 'growth per key', 'bytes per entry (growth - baseline)'],
      rows: cache.variants.map((v) => [v.name, count(v.entries), bytes(v.growthPerKey), v.bytesPerEntry === 0 ? '' : `${bytes(v.bytesPerEntry)} (${v.perRun.map((b) => bytes(b)).join(', ')})`]),
      notes: [
        'An entry is one slot per key: the proof (a 12-byte peppered digest), the key\'s frozen public view (also the state the checks read), the trust and stale-if-error times; with default protection also the quota time (GCRA) of the in-process limiter.',
        'The baseline is what verifying grows without the cache and without rate limits (the memory store\'s usage counters, the keys the keyring has seen); it is subtracted.',
        `Each figure is the median of ${CACHE_MEMORY_RUNS} fresh processes (each process's bytes per entry in brackets): heap bytes after a full GC move by a few percent from one process to the next.`,
      ],
    },
  ]
  const redisScale = scale.find((s) => s.store === 'redis')
  const largestRedis = redisScale?.levels.at(-1)
  if (largestRedis?.memoryUsage) {
    const usage = largestRedis.memoryUsage
    tables.push({
      title: `Redis memory per stored key (at ${count(largestRedis.keys)} keys)`,
      columns: ['what', 'bytes'],
      rows: [
        [`MEMORY USAGE record hash (mean of ${usage.sample})`, bytes(usage.record)],
        ['MEMORY USAGE credential key (mean; only a key with a deadline has one)', bytes(usage.credential)],
        ['record + credential', bytes(usage.record + usage.credential)],
        ['used_memory growth per key (index and dict overhead included)', bytes(largestRedis.bytesPerKey)],
      ],
    })
  }
  for (const result of scale) {
    tables.push({
      title: `Store operations vs key count, ${result.store === 'redis' ? 'Redis' : 'memory'} store (${profile.scale.opsPerLevel} of each, one at a time)`,
      columns: ['keys', 'operation', 'median', 'p99', 'ops/s', result.store === 'redis' ? 'Redis bytes/key' : 'heap bytes/key', 'fill'],
      rows: result.levels.flatMap((level: ScaleLevel) =>
        level.operations.map((op, i) => [
          i === 0 ? count(level.keys) : '',
          op.name,
          duration(op.latencyMs.p50),
          duration(op.latencyMs.p99),
          rate(op.perSecond),
          i === 0 ? bytes(level.bytesPerKey) : '',
          i === 0 ? `${level.fillSec} s` : '',
        ]),
      ),
      notes: [
        'create: keyring.create with the fast test hasher; rotate: a random bulk key, 1 h grace; verify miss: a keyring without cache (store read + test hash) on a random key.',
        ...(result.skipped.length > 0 ? [`Not reached within the fill budget: ${result.skipped.map(count).join(', ')} keys.`] : []),
      ],
    })
  }

  // The target: one cached key (proof, state, public view) with the per-key quota state, default protection on.
  const withQuota = cache.variants.find((v) => v.name.includes('quota'))
  const checks: Check[] = withQuota
    ? [
        {
          name: 'verification-cache entry, per-key quota state included',
          target: `<= ${bytes(CACHE_ENTRY_TARGET)} per entry`,
          measured: `${bytes(withQuota.bytesPerEntry)} per entry (${count(withQuota.entries)} entries; median of ${CACHE_MEMORY_RUNS} processes: ${withQuota.perRun.map((b) => bytes(b)).join(', ')})`,
          met: withQuota.bytesPerEntry <= CACHE_ENTRY_TARGET,
          explanation: 'an entry holds the proof, the frozen view (req.apiKey and the state checked), its trust and stale-if-error times, and the GCRA quota time of the key.',
        },
      ]
    : []
  if (largestRedis) {
    const met = largestRedis.bytesPerKey <= REDIS_BYTES_PER_KEY_TARGET
    checks.push({
      name: `Redis used_memory growth per stored key at ${count(largestRedis.keys)} keys (record, credential, indexes)`,
      target: `<= ${REDIS_BYTES_PER_KEY_TARGET} B per key (issue target: at 1,000,000 keys)`,
      measured: bytes(largestRedis.bytesPerKey),
      met,
      ...(met ? {} : { explanation: 'see docs/redis.md#record-encoding: a record stays compact while every value is at most 64 bytes (long names or metadata make it a hashtable).' }),
    })
  }
  for (const result of scale) {
    if (result.levels.length < 2) continue
    const first = result.levels[0] as ScaleLevel
    const last = result.levels.at(-1) as ScaleLevel
    for (const op of first.operations) {
      const lastOp = last.operations.find((o) => o.name === op.name)
      if (!lastOp) continue
      const growth = lastOp.latencyMs.p50 / op.latencyMs.p50
      checks.push({
        name: `${result.store} store ${op.name} cost stays flat from ${count(first.keys)} to ${count(last.keys)} keys`,
        target: `median grows < ${FLAT_FACTOR}x`,
        measured: `${duration(op.latencyMs.p50)} -> ${duration(lastOp.latencyMs.p50)} (${times(growth)})`,
        met: growth < FLAT_FACTOR,
        ...(growth < FLAT_FACTOR
          ? {}
          : { explanation: 'more keys mean larger hash tables and sorted sets: fewer CPU cache hits per lookup and, at 1M keys, rehashing and allocator work during the run.' }),
      })
    }
  }

  return {
    id: 'memory',
    title: 'Memory and scale',
    tables,
    checks,
    notes: [],
    data: { cache, scale, levels, maxKeys },
  }
}
