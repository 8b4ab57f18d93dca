import { availableParallelism } from 'node:os'
import { OWASP_ARGON2 } from '@keyrot/core'
import { count, duration, rate } from '../lib/format.js'
import { runWorker } from '../lib/processes.js'
import type { RunContext, SectionReport } from '../lib/report.js'
import type { Argon2Config, Argon2Impl, Argon2LoadResult, Argon2WarmupResult } from '../workers/argon2.js'

const IMPLS: Argon2Impl[] = ['argon2', '@node-rs/argon2']
const DEFAULT_POOL = 4

/** Section 6: cache-miss verifies per second vs thread pool and Argon2 parameters, both implementations, and warm-up after a restart. */
export async function argon2Section(context: RunContext): Promise<SectionReport> {
  const { pools, params, concurrency, loadMs, sequential, warmupKeys } = context.profile.argon2
  const loads: Array<{ impl: Argon2Impl; params: string; pool: number } & Argon2LoadResult> = []
  for (const set of params) {
    const { label, ...argon } = set
    for (const impl of IMPLS) {
      for (const pool of pools) {
        context.log(`argon2: ${impl}, ${label}, UV_THREADPOOL_SIZE=${pool}`)
        const result = await runWorker<Argon2LoadResult>('argon2', {
          config: { mode: 'load', impl, params: argon, concurrency, loadMs, sequential, keys: 0 } satisfies Argon2Config,
          env: { UV_THREADPOOL_SIZE: String(pool) },
          timeoutMs: 120_000,
        })
        loads.push({ impl, params: label, pool, ...result })
      }
    }
  }
  const warmups: Array<{ impl: Argon2Impl } & Argon2WarmupResult> = []
  for (const impl of IMPLS) {
    for (const keys of warmupKeys) {
      context.log(`argon2: warm-up of a restarted replica with ${keys} active keys (${impl})`)
      const result = await runWorker<Argon2WarmupResult>('argon2', {
        config: { mode: 'warmup', impl, params: OWASP_ARGON2, concurrency: 32, loadMs: 0, sequential: 0, keys } satisfies Argon2Config,
        env: { UV_THREADPOOL_SIZE: String(DEFAULT_POOL) },
        timeoutMs: 600_000,
      })
      warmups.push({ impl, ...result })
    }
  }

  const owasp = (impl: Argon2Impl) => loads.find((l) => l.impl === impl && l.params.startsWith('OWASP m=19456'))
  const notes: string[] = []
  const a = owasp('argon2')
  const b = owasp('@node-rs/argon2')
  if (a && b) {
    notes.push(
      `One cache-miss verify at OWASP parameters: ${duration(a.singleMs.p50)} with argon2, ${duration(b.singleMs.p50)} with @node-rs/argon2 (median, unloaded). ` +
        'Both run on the libuv thread pool, so verifies/s grows with UV_THREADPOOL_SIZE up to the number of cores and not beyond.',
    )
  }
  const cores = availableParallelism()
  notes.push(
    `Sizing: cache-miss capacity per replica ~= min(UV_THREADPOOL_SIZE, cores) / (one verify's time); this machine has ${cores} cores. ` +
      'Warm-up after a restart ~= active keys / that capacity: each token is proven by Argon2 once per process, then served from the cache.',
  )

  return {
    id: 'argon2',
    title: 'Argon2 under load',
    tables: [
      {
        title: `Argon2id cache misses (keyring without cache: store read + one Argon2 verify each; ${concurrency} in flight for ${loadMs / 1000} s)`,
        columns: ['implementation', 'parameters', 'UV_THREADPOOL_SIZE', 'one verify', 'verifies/s', 'loaded p50', 'loaded p99'],
        rows: loads.map((l) => [l.impl, l.params, String(l.pool), duration(l.singleMs.p50), rate(l.perSecond), duration(l.loadedMs.p50), duration(l.loadedMs.p99)]),
      },
      {
        title: `Warm-up of a restarted replica (OWASP parameters, UV_THREADPOOL_SIZE=${DEFAULT_POOL}, 32 requests in flight, each active key seen once)`,
        columns: ['implementation', 'active keys', 'warm-up', 'verifies/s', 'p99 during warm-up', 'at this rate: 10k keys'],
        rows: warmups.map((w) => [w.impl, count(w.keys), duration(w.warmupMs), rate(w.perSecond), duration(w.latencyMs.p99), duration((10_000 / w.perSecond) * 1000)]),
      },
    ],
    checks: [],
    notes,
    data: { loads, warmups },
  }
}
