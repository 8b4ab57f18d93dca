import { cpus } from 'node:os'
import autocannon from 'autocannon'
import { SPIN_US } from '../lib/calibration.js'
import { duration, percent, rate } from '../lib/format.js'
import { allCores, CORES, pin } from '../lib/pinning.js'
import { startWorker, type Worker } from '../lib/processes.js'
import type { RunContext, SectionReport } from '../lib/report.js'
import { median, round } from '../lib/stats.js'
import type { Check } from '../lib/table.js'
import type { HttpAppConfig, HttpAppReady } from '../workers/http-app.js'

/**
 * Section 2: HTTP throughput of a bare hello-world app and of the same app
 * behind `apiKeyAuth` (cache hit), memory and Redis store, Express, Koa, Fastify and Hono,
 * beside the same app behind a hand-rolled check (lib/hand-rolled.ts), the
 * reference of the targets. autocannon runs in this process, pinned to one
 * core; each app in its own process (those in a target's ratio in
 * several, see instancesOf), pinned to the other. Within a round
 * the variants take turns in short slices (see measureRound) and the ratios
 * are taken within the round; the reported ratio is the median over rounds. The server's own CPU
 * time per request is read too: unlike req/s it does not depend on how the
 * cores were shared during the run.
 */

interface Run {
  framework: HttpAppConfig['framework']
  auth: HttpAppConfig['auth']
  round: number
  requestsPerSec: number
  /** Server CPU time (user + system) per completed request, µs. */
  cpuPerRequestUs: number
  /** The load generator's (this process's) CPU time per completed request, µs: near its core's whole time, it is what bounds req/s. */
  clientCpuPerRequestUs: number
  latencyP50Ms: number
  latencyP99Ms: number
  /** req/s of each process of this app in the round (more than one where the ratio is a target: see instancesOf). */
  instanceRequestsPerSec: number[]
}

const AUTHS: HttpAppConfig['auth'][] = ['none', 'spin', 'hand-rolled', 'hand-rolled-quota', 'memory', 'redis']
const LABEL: Record<HttpAppConfig['auth'], string> = {
  none: 'bare',
  spin: `bare + ${SPIN_US} µs busy middleware`,
  'hand-rolled': 'hand-rolled SHA-256 + Map check',
  'hand-rolled-quota': 'hand-rolled check + quota headers',
  memory: 'apiKeyAuth, memory store',
  redis: 'apiKeyAuth, Redis store',
}
/** apiKeyAuth on the memory store against the hand-rolled check; on the Redis store against bare. */
const TARGET = { memory: 0.9, redis: 0.75 } as const
/** Frameworks whose memory-store ratio to the hand-rolled check is a target (the others are shown). */
const TARGET_FRAMEWORKS = new Set<string>(['express', 'koa'])
/** autocannon records latency in whole milliseconds. */
const latency = (ms: number) => (ms < 1 ? '< 1 ms' : duration(ms))
const us = (value: number) => `${value.toFixed(1)} µs`

export function load(ready: HttpAppReady, seconds: number, connections: number): Promise<autocannon.Result> {
  return autocannon({
    url: `http://127.0.0.1:${ready.port}/hello`,
    headers: { authorization: `Bearer ${ready.token}` },
    connections,
    pipelining: 1,
    duration: seconds,
    // autocannon notices the end of a run at its next sample: short turns need short samples, or each would run up to a whole second.
    sampleInt: Math.min(1000, Math.max(10, (seconds * 1000) / 10)),
    timeout: 10,
  })
}

interface Started {
  auth: HttpAppConfig['auth']
  worker: Worker
  ready: HttpAppReady
  tally: Tally
}

/**
 * Processes per app in a round: `instances` for every app in a ratio that is
 * a target (bare and apiKeyAuth on the Redis store everywhere; the
 * hand-rolled check and apiKeyAuth on the memory store on Express and Koa),
 * one for the others (the calibration and the hand-rolled check with quota
 * headers, which are shown, not judged). Two processes of the same app,
 * interleaved on the same core, can differ by several percent over a round
 * (slice noise and the process itself: where its code and data landed in
 * memory, what the compiler made of it); pooling several processes of each
 * shrinks what that adds to the ratio, and the spread between them is
 * reported.
 */
function instancesOf(framework: HttpAppConfig['framework'], auth: HttpAppConfig['auth'], instances: number): number {
  if (auth === 'none' || auth === 'redis') return instances
  return TARGET_FRAMEWORKS.has(framework) && (auth === 'hand-rolled' || auth === 'memory') ? instances : 1
}

const emptyTally = (): Tally => ({ requests: 0, ms: 0, cpuUs: 0, clientCpuUs: 0, latencyP50Ms: [], latencyP99Ms: [] })

interface Tally {
  requests: number
  ms: number
  cpuUs: number
  clientCpuUs: number
  latencyP50Ms: number[]
  latencyP99Ms: number[]
}

/**
 * One round of one framework. Every variant's app is started (each in its
 * own process or processes, see instancesOf, all pinned to the server core)
 * and warmed at once, before the next one starts: on Node 20 a process
 * that serves a trickle of I/O before its first heavy load (a Redis store's
 * heartbeats while the other apps start, health checks) can stay a third
 * or more slower per request through the whole round (Node's own `process.nextTick`
 * goes through V8's slow path; see docs/benchmarks.md), so every process
 * gets its load first and its idle time after. Then each process's measured seconds are cut into
 * `slices` slices, and the processes take turns slice by slice, in a random
 * order each slice (see turnOrder). A variant's figures pool its processes. Whatever else the
 * machine does during the round (shared, noisy cores) then falls on all
 * variants alike instead of on whichever ran in that second, and the ratios
 * within the round are the code's, not the neighbours'.
 */
async function measureRound(framework: HttpAppConfig['framework'], round_: number, context: RunContext): Promise<Run[]> {
  const { warmupSec, durationSec, connections, slices, instances } = context.profile.http
  const started: Started[] = []
  try {
    for (const auth of AUTHS) {
      for (let instance = 0; instance < instancesOf(framework, auth, instances); instance++) {
        const { worker, ready } = await startWorker<HttpAppReady>('http-app', {
          config: { framework, auth, redisUrl: context.redis.url } satisfies HttpAppConfig,
          timeoutMs: 20_000,
        })
        started.push({ auth, worker, ready, tally: emptyTally() })
        if (worker.child.pid !== undefined) pin(worker.child.pid, CORES.server)
        await load(ready, warmupSec, connections)
      }
    }
    let previous: Started | undefined
    for (let slice = 0; slice < slices; slice++) {
      const order = turnOrder(started, previous)
      previous = order[order.length - 1]
      for (const app of order) {
        const cpuBefore = await app.worker.ask<NodeJS.CpuUsage>('cpu')
        const clientBefore = process.cpuUsage()
        const result = await load(app.ready, durationSec / slices, connections)
        const client = process.cpuUsage(clientBefore)
        const cpuAfter = await app.worker.ask<NodeJS.CpuUsage>('cpu')
        if (result.non2xx > 0 || result.errors > 0) throw new Error(`http ${framework} ${app.auth}: ${result.non2xx} non-2xx responses, ${result.errors} errors`)
        const tally = app.tally
        tally.requests += result['2xx']
        tally.ms += result.finish.getTime() - result.start.getTime()
        tally.cpuUs += cpuAfter.user - cpuBefore.user + (cpuAfter.system - cpuBefore.system)
        tally.clientCpuUs += client.user + client.system
        tally.latencyP50Ms.push(result.latency.p50)
        tally.latencyP99Ms.push(result.latency.p99)
      }
    }
    return AUTHS.map((auth) => {
      const mine = started.filter((app) => app.auth === auth).map((app) => app.tally)
      const sum = (field: 'requests' | 'ms' | 'cpuUs' | 'clientCpuUs') => mine.reduce((total, tally) => total + tally[field], 0)
      const requests = sum('requests')
      if (mine.some((tally) => tally.requests === 0)) throw new Error(`http ${framework} ${auth}: a process served no request in round ${round_}`)
      return {
        framework,
        auth,
        round: round_,
        requestsPerSec: requests / (sum('ms') / 1000),
        cpuPerRequestUs: sum('cpuUs') / requests,
        clientCpuPerRequestUs: sum('clientCpuUs') / requests,
        latencyP50Ms: median(mine.flatMap((tally) => tally.latencyP50Ms)),
        // Each process's worst slice, then the middle process: the worst of all slices would grow with the number of processes.
        latencyP99Ms: median(mine.map((tally) => Math.max(...tally.latencyP99Ms))),
        instanceRequestsPerSec: mine.map((tally) => tally.requests / (tally.ms / 1000)),
      }
    })
  } finally {
    for (const app of started) await app.worker.stop()
  }
}

/**
 * A random order of the apps for one slice, never starting with the app that
 * ended the slice before. A fixed or rotated order makes each app always
 * follow the same neighbour, and whatever that neighbour leaves behind on the
 * server core (its garbage collection after load, its sockets closing, a
 * store's background flush) would always land in the same app's turn; a
 * reversed order gives the apps at its ends two turns in a row.
 */
function turnOrder<T>(apps: readonly T[], previous: T | undefined): T[] {
  const order = [...apps]
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[order[i], order[j]] = [order[j] as T, order[i] as T]
  }
  if (order.length > 1 && order[0] === previous) [order[0], order[1]] = [order[1] as T, order[0] as T]
  return order
}

export const HTTP_FRAMEWORKS = ['express', 'koa', 'fastify', 'hono'] as const
const FRAMEWORK_NAME: Record<(typeof HTTP_FRAMEWORKS)[number], string> = { express: 'Express', koa: 'Koa', fastify: 'Fastify', hono: 'Hono' }

export async function httpSection(context: RunContext): Promise<SectionReport> {
  const { durationSec, warmupSec, connections, rounds, slices, instances } = context.profile.http
  const FRAMEWORKS = HTTP_FRAMEWORKS.filter((f) => context.frameworks === undefined || context.frameworks.includes(f))
  if (!Number.isInteger(instances) || instances < 1) throw new RangeError(`profile.http.instances must be a whole number >= 1, got ${instances}`)
  const pooled = FRAMEWORKS.filter((f) => TARGET_FRAMEWORKS.has(f)).map((f) => FRAMEWORK_NAME[f])
  const pooledApps = `bare and apiKeyAuth (Redis store)${pooled.length > 0 ? `, and on ${pooled.join(' and ')} the hand-rolled check and apiKeyAuth (memory store)` : ''}`
  const runs: Run[] = []
  // The load generator on one core, each app on the other (see lib/pinning.ts).
  const pinned = pin(process.pid, CORES.client)
  try {
    for (let round_ = 1; round_ <= rounds; round_++) {
      for (const framework of FRAMEWORKS) {
        context.log(`http: round ${round_}/${rounds} ${framework}: ${AUTHS.length} apps in ${AUTHS.reduce((n, auth) => n + instancesOf(framework, auth, instances), 0)} processes, ${slices} slices each`)
        runs.push(...(await measureRound(framework, round_, context)))
      }
    }
  } finally {
    if (pinned) pin(process.pid, allCores())
  }

  const find = (framework: string, auth: string, round_: number) => runs.find((r) => r.framework === framework && r.auth === auth && r.round === round_)!
  const summary = FRAMEWORKS.flatMap((framework) =>
    AUTHS.map((auth) => {
      const mine = runs.filter((r) => r.framework === framework && r.auth === auth)
      const ratios = mine.map((r) => r.requestsPerSec / find(framework, 'none', r.round).requestsPerSec)
      const cpuRatios = mine.map((r) => find(framework, 'none', r.round).cpuPerRequestUs / r.cpuPerRequestUs)
      const handRolledRatios = mine.map((r) => r.requestsPerSec / find(framework, 'hand-rolled', r.round).requestsPerSec)
      return {
        framework,
        auth,
        requestsPerSec: median(mine.map((r) => r.requestsPerSec)),
        vsBare: median(ratios),
        vsHandRolled: median(handRolledRatios),
        cpuPerRequestUs: median(mine.map((r) => r.cpuPerRequestUs)),
        cpuBoundVsBare: median(cpuRatios),
        clientCpuPerRequestUs: median(mine.map((r) => r.clientCpuPerRequestUs)),
        // The load generator's CPU time over the time of its turns (1: a saturated core).
        clientBusy: median(mine.map((r) => (r.clientCpuPerRequestUs * r.requestsPerSec) / 1e6)),
        latencyP50Ms: median(mine.map((r) => r.latencyP50Ms)),
        latencyP99Ms: median(mine.map((r) => r.latencyP99Ms)),
        perRound: mine.map((r) => Math.round(r.requestsPerSec)),
        processes: mine[0]?.instanceRequestsPerSec.length ?? 0,
        // How far apart the app's own processes were within a round (fastest over slowest), median over rounds.
        processSpread: median(mine.map((r) => Math.max(...r.instanceRequestsPerSec) / Math.min(...r.instanceRequestsPerSec) - 1)),
        handRolledPerRound: handRolledRatios.map((ratio) => round(ratio, 4)),
        barePerRound: ratios.map((ratio) => round(ratio, 4)),
      }
    }),
  )
  const bareOf = (framework: string) => summary.find((s) => s.framework === framework && s.auth === 'none')!
  const spinOf = (framework: string) => summary.find((s) => s.framework === framework && s.auth === 'spin')!
  const handRolledOf = (framework: string) => summary.find((s) => s.framework === framework && s.auth === 'hand-rolled')!
  const withQuotaOf = (framework: string) => summary.find((s) => s.framework === framework && s.auth === 'hand-rolled-quota')!
  const handRolledChecks: Check[] = summary
    .filter((s) => s.auth === 'memory' && TARGET_FRAMEWORKS.has(s.framework))
    .map((s) => {
      const reference = handRolledOf(s.framework)
      const bare = bareOf(s.framework)
      const perRound = s.handRolledPerRound.map((ratio) => percent(ratio)).join(', ')
      return {
        name: `${FRAMEWORK_NAME[s.framework]} behind apiKeyAuth (memory store, default abuse protection) vs the hand-rolled check`,
        target: `>= ${percent(TARGET.memory)} of the hand-rolled check's req/s`,
        measured:
          `${percent(s.vsHandRolled)} (${rate(s.requestsPerSec)} vs ${rate(reference.requestsPerSec)} req/s; ` +
          `server CPU ${us(s.cpuPerRequestUs)} vs ${us(reference.cpuPerRequestUs)} per request)`,
        met: s.vsHandRolled >= TARGET.memory,
        explanation:
          `bare ${rate(bare.requestsPerSec)} req/s at ${us(bare.cpuPerRequestUs)} CPU per request; the hand-rolled check adds ${us(reference.cpuPerRequestUs - bare.cpuPerRequestUs)}, ` +
          `apiKeyAuth adds ${us(s.cpuPerRequestUs - bare.cpuPerRequestUs)}, the ${SPIN_US} µs calibration ${us(spinOf(s.framework).cpuPerRequestUs - bare.cpuPerRequestUs)} per request. ` +
          `Each round pools ${s.processes} processes of each of the two (the rounds: ${perRound}); within a round the fastest of apiKeyAuth's processes did ${percent(s.processSpread)} more req/s than the slowest, ` +
          `the hand-rolled check's ${percent(reference.processSpread)} (median over rounds), though all ran the same code. ` +
          `The hand-rolled check with a quota and the same two quota headers as apiKeyAuth's keeps ${percent(withQuotaOf(s.framework).vsHandRolled)} of the hand-rolled check's req/s ` +
          `(server CPU ${us(withQuotaOf(s.framework).cpuPerRequestUs)}, client ${us(withQuotaOf(s.framework).clientCpuPerRequestUs)} vs ${us(reference.clientCpuPerRequestUs)} per request).`,
      }
    })
  const checks: Check[] = [...handRolledChecks, ...summary
    .filter((s) => s.auth === 'redis')
    .map((s) => {
      const target = TARGET[s.auth as 'memory' | 'redis']
      const bare = bareOf(s.framework)
      const met = s.vsBare >= target
      const added = s.cpuPerRequestUs - bare.cpuPerRequestUs
      const calibration = spinOf(s.framework)
      return {
        name: `${FRAMEWORK_NAME[s.framework]} behind apiKeyAuth (${s.auth} store) vs bare`,
        target: `>= ${percent(target)} of bare req/s`,
        measured: `${percent(s.vsBare)} (${rate(s.requestsPerSec)} vs ${rate(bare.requestsPerSec)} req/s)`,
        met,
        explanation:
          `server CPU per request ${us(s.cpuPerRequestUs)} vs ${us(bare.cpuPerRequestUs)} bare (+${us(added)}). ` +
          (s.processes > 1
            ? `Each round pools ${s.processes} processes of each of the two (the rounds: ${s.barePerRound.map((ratio) => percent(ratio)).join(', ')}); within a round the fastest of the Redis store's processes did ${percent(s.processSpread)} more req/s than the slowest, bare's ${percent(bare.processSpread)} (median over rounds). `
            : '') +
          `A middleware that only burns ${SPIN_US} µs keeps ${percent(calibration.vsBare)} of bare req/s here (+${us(calibration.cpuPerRequestUs - bare.cpuPerRequestUs)} CPU per request): ` +
          `on loopback with client and server on ${cpus().length} cores, every µs of server work also makes each response's write cost more (the client sleeps more and is woken per response)` +
          (met ? '.' : `; to keep ${percent(target)} of ${rate(bare.requestsPerSec)} req/s a middleware may add only ${us(bare.cpuPerRequestUs * (1 / target - 1))} CPU per request on this machine.`),
      }
    })]

  return {
    id: 'http',
    title: 'HTTP overhead',
    tables: [
      {
        title:
          `HTTP, GET /hello on 127.0.0.1 (autocannon: ${connections} connections, ${durationSec} s per app process in ${slices} interleaved slice(s) after ${warmupSec} s warm-up; ` +
          (instances > 1 ? `${instances} processes each of ${pooledApps}; ` : '') +
          `median of ${rounds} round(s))`,
        columns: ['framework', 'app', 'req/s', 'vs bare', 'vs hand-rolled', 'server CPU/req', 'CPU-bound vs bare', 'client CPU/req', 'client core busy', 'latency p50', 'latency p99'],
        rows: summary.map((s) => [
          s.framework,
          LABEL[s.auth],
          rate(s.requestsPerSec),
          percent(s.vsBare),
          percent(s.vsHandRolled),
          us(s.cpuPerRequestUs),
          percent(s.cpuBoundVsBare),
          us(s.clientCpuPerRequestUs),
          percent(s.clientBusy),
          latency(s.latencyP50Ms),
          latency(s.latencyP99Ms),
        ]),
        notes: [
          pinned
            ? `autocannon runs in the benchmark process pinned to core ${CORES.client}, each app in its own process pinned to core ${CORES.server} (taskset); redis-server is not pinned.`
            : 'autocannon runs in the benchmark process, each app in its own process, not pinned (no taskset or fewer than 2 cores): they share the CPUs (and redis-server).',
          'hand-rolled: SHA-256 of the bearer token, a Map lookup, revoked, expiry and scope checks, 401 JSON on failure (bench/src/lib/hand-rolled.ts); vs hand-rolled: req/s ratio to it within one round, median over rounds.',
          'hand-rolled check + quota headers: the same check plus a fixed-window per-key counter that sends RateLimit-Policy and RateLimit as apiKeyAuth does with its default per-key quota (informational: what those two headers cost any middleware here).',
          'vs bare: req/s ratio within one round, median over rounds. Server CPU/req: the app process\'s user + system CPU time per response. Latency p50: the median slice\'s; p99: the worst slice\'s (of a pooled app, the middle of its processes\' worst slices).',
          `Each round starts every app of a framework, warming each as soon as it is up (a Node process that serves a trickle of I/O before its first heavy load can stay much slower afterwards, see docs/benchmarks.md), then gives them the load in turns of ${round(durationSec / slices, 2)} s, in a random order each time, so the machine\'s other work falls on all of them alike.`,
          instances > 1
            ? `Every app in a target's ratio (${pooledApps}) runs in ${instances} processes per round, pooled: identical processes taking turns on the same core can differ by several percent over a round, and one process of each would carry that into the ratio. The other apps run in one process each.`
            : 'Every app runs in one process per round (profile.http.instances is 1).',
          'Client CPU/req: the load generator\'s own CPU time per response (autocannon parses each response in JavaScript, header by header); client core busy: its CPU time over the time of its turns. Near 100%, the client bounds req/s, and each response header line costs req/s on the client as well as on the server.',
          'Every request carries the same valid token (cache hit); the bare app ignores it.',
          `The ${SPIN_US} µs busy middleware is a calibration: it does nothing but spin, about as long as apiKeyAuth takes per call in process.`,
        ],
      },
    ],
    checks,
    notes: [],
    data: {
      durationSec,
      warmupSec,
      connections,
      rounds,
      slices,
      instances,
      pinned,
      frameworks: FRAMEWORKS,
      runs: runs.map((r) => ({ ...r, requestsPerSec: round(r.requestsPerSec, 1), cpuPerRequestUs: round(r.cpuPerRequestUs, 2), clientCpuPerRequestUs: round(r.clientCpuPerRequestUs, 2), instanceRequestsPerSec: r.instanceRequestsPerSec.map((value) => round(value, 1)) })),
      summary,
    },
  }
}
