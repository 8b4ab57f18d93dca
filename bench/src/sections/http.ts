import autocannon from 'autocannon'
import { duration, percent, rate } from '../lib/format.js'
import { startWorker } from '../lib/processes.js'
import type { RunContext, SectionReport } from '../lib/report.js'
import { round } from '../lib/stats.js'
import type { Check } from '../lib/table.js'
import type { HttpAppConfig, HttpAppReady } from '../workers/http-app.js'

/**
 * Section 2: HTTP throughput of a bare hello-world app and of the same app
 * behind `apiKeyAuth` (cache hit), memory and Redis store, Express and Koa.
 * autocannon runs in this process; each app in its own process.
 */

interface Run {
  framework: HttpAppConfig['framework']
  auth: HttpAppConfig['auth']
  round: number
  requestsPerSec: number
  latencyP50Ms: number
  latencyP99Ms: number
  non2xx: number
  errors: number
}

const AUTHS: HttpAppConfig['auth'][] = ['none', 'memory', 'redis']
const LABEL: Record<HttpAppConfig['auth'], string> = { none: 'bare', memory: 'apiKeyAuth, memory store', redis: 'apiKeyAuth, Redis store' }
/** autocannon records latency in whole milliseconds. */
const latency = (ms: number) => (ms < 1 ? '< 1 ms' : duration(ms))
const TARGET: Record<'memory' | 'redis', number> = { memory: 0.9, redis: 0.75 }

async function load(ready: HttpAppReady, seconds: number, connections: number): Promise<autocannon.Result> {
  return autocannon({
    url: `http://127.0.0.1:${ready.port}/hello`,
    headers: { authorization: `Bearer ${ready.token}` },
    connections,
    pipelining: 1,
    duration: seconds,
    timeout: 10,
  })
}

export async function httpSection(context: RunContext): Promise<SectionReport> {
  const { profile, redis } = context
  const { durationSec, warmupSec, connections, rounds } = profile.http
  const runs: Run[] = []
  for (let round_ = 0; round_ < rounds; round_++) {
    for (const framework of ['express', 'koa'] as const) {
      // Alternate the order between rounds so drift does not favour one variant.
      const order = round_ % 2 === 0 ? AUTHS : [...AUTHS].reverse()
      for (const auth of order) {
        context.log(`http: round ${round_ + 1}/${rounds} ${framework} ${LABEL[auth]}`)
        const { worker, ready } = await startWorker<HttpAppReady>('http-app', {
          config: { framework, auth, redisUrl: redis.url } satisfies HttpAppConfig,
          timeoutMs: 20_000,
        })
        try {
          await load(ready, warmupSec, connections)
          const result = await load(ready, durationSec, connections)
          runs.push({
            framework,
            auth,
            round: round_ + 1,
            requestsPerSec: result['2xx'] / result.duration,
            latencyP50Ms: result.latency.p50,
            latencyP99Ms: result.latency.p99,
            non2xx: result.non2xx,
            errors: result.errors,
          })
          if (result.non2xx > 0 || result.errors > 0) throw new Error(`http ${framework} ${auth}: ${result.non2xx} non-2xx responses, ${result.errors} errors`)
        } finally {
          await worker.stop()
        }
      }
    }
  }

  const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length
  const summary = (['express', 'koa'] as const).flatMap((framework) =>
    AUTHS.map((auth) => {
      const mine = runs.filter((r) => r.framework === framework && r.auth === auth)
      return {
        framework,
        auth,
        requestsPerSec: mean(mine.map((r) => r.requestsPerSec)),
        latencyP50Ms: mean(mine.map((r) => r.latencyP50Ms)),
        latencyP99Ms: mean(mine.map((r) => r.latencyP99Ms)),
        rounds: mine.map((r) => Math.round(r.requestsPerSec)),
      }
    }),
  )
  const bare = (framework: string) => summary.find((s) => s.framework === framework && s.auth === 'none')!.requestsPerSec
  const checks: Check[] = summary
    .filter((s) => s.auth !== 'none')
    .map((s) => {
      const share = s.requestsPerSec / bare(s.framework)
      const target = TARGET[s.auth as 'memory' | 'redis']
      return {
        name: `${s.framework === 'express' ? 'Express' : 'Koa'} behind apiKeyAuth (${s.auth} store) vs bare`,
        target: `>= ${percent(target)} of bare`,
        measured: `${percent(share)} (${rate(s.requestsPerSec)} vs ${rate(bare(s.framework))} req/s)`,
        met: share >= target,
        ...(share >= target
          ? {}
          : {
              explanation:
                'Each request pays one cache-hit verify (see the verify table) plus building the credential headers, the RequestContext and the outcome object; ' +
                'on 2 cores autocannon and the server share the CPU, so every microsecond the server spends shows in full in req/s.',
            }),
      }
    })

  return {
    id: 'http',
    title: 'HTTP overhead',
    tables: [
      {
        title: `HTTP, GET /hello on 127.0.0.1 (autocannon: ${connections} connections, ${durationSec} s after ${warmupSec} s warm-up, ${rounds} round(s), mean)`,
        columns: ['framework', 'app', 'req/s', 'vs bare', 'latency p50', 'latency p99'],
        rows: summary.map((s) => [
          s.framework,
          LABEL[s.auth],
          rate(s.requestsPerSec),
          percent(s.requestsPerSec / bare(s.framework)),
          latency(s.latencyP50Ms),
          latency(s.latencyP99Ms),
        ]),
        notes: [
          'autocannon runs in the benchmark process, each app in its own process; on this 2-core machine they share the CPUs with redis-server.',
          'Every request carries the same valid token (cache hit); the bare app ignores it.',
        ],
      },
    ],
    checks,
    notes: [],
    data: { durationSec, warmupSec, connections, rounds, runs: runs.map((r) => ({ ...r, requestsPerSec: round(r.requestsPerSec, 1) })), summary },
  }
}
