// Runs chosen apps of the HTTP section (bench/dist/workers/http-app.js), each
// in its own process pinned to the server core as the section pins them, and
// gives them the section's load (autocannon, 50 connections) in turns from
// this process, then prints each process's requests and server CPU per
// request. For looking at
// one effect at a time outside `npm run bench`: which processes, how many,
// in which start order. A trailing digit only tells identical apps apart.
// Needs a redis-server for the `redis` app (--redis, default
// redis://127.0.0.1:6379).
// Build first: node scripts/setup.mjs --build-only
// Example: taskset -c 1 node bench/http-turns.mjs --framework koa --apps memory,redis,memory2,redis2 --turns 16
import { parseArgs } from 'node:util'
import { CORES, pin } from './dist/lib/pinning.js'
import { startWorker } from './dist/lib/processes.js'
import { load } from './dist/sections/http.js'

const { values } = parseArgs({
  options: {
    framework: { type: 'string', default: 'koa' },
    apps: { type: 'string', default: 'memory,redis' },
    turns: { type: 'string', default: '16' },
    'turn-seconds': { type: 'string', default: '0.25' },
    redis: { type: 'string', default: 'redis://127.0.0.1:6379' },
    idle: { type: 'string', default: '0' },
    trickle: { type: 'string', default: '0' },
    'warm-first': { type: 'boolean', default: false },
  },
})
const turns = Number(values.turns)
const turnSeconds = Number(values['turn-seconds'])
if (!Number.isInteger(turns) || turns < 1 || turns > 200) throw new RangeError('--turns must be a whole number from 1 to 200')
if (!(turnSeconds > 0 && turnSeconds <= 10)) throw new RangeError('--turn-seconds must be above 0 and at most 10')

/** The app process's CPU time so far, µs (the worker answers `ask('cpu')` with process.cpuUsage()). */
async function cpuOf(worker) {
  const { user, system } = await worker.ask('cpu')
  return user + system
}

const apps = []
try {
  for (const name of values.apps.split(',')) {
    const config = { framework: values.framework, auth: name.replace(/\d+$/, ''), redisUrl: values.redis }
    const { worker, ready } = await startWorker('http-app', { config, timeoutMs: 20_000 })
    apps.push({ name, worker, ready, requests: 0, cpuUs: 0 })
    if (worker.child.pid !== undefined) pin(worker.child.pid, CORES.server)
    // --warm-first: load each app for a second as soon as it is up, before the idle time.
    if (values['warm-first']) await load(ready, 1, 50)
  }
  // --idle: the apps wait this long after start before any request (what a process does while idle can change how fast it runs later).
  // --trickle: meanwhile one request to each app every this many ms (health checks, say).
  const trickle = Number(values.trickle) > 0 ? setInterval(() => {
    for (const { ready } of apps) fetch(`http://127.0.0.1:${ready.port}/hello`, { headers: { authorization: `Bearer ${ready.token}` } }).then((response) => response.arrayBuffer(), () => undefined)
  }, Number(values.trickle)) : undefined
  await new Promise((resolve) => setTimeout(resolve, Number(values.idle) * 1000))
  clearInterval(trickle)
  for (const app of apps) await load(app.ready, 1, 50)
  for (let turn = 0; turn < turns; turn++) {
    for (const app of turn % 2 === 0 ? apps : [...apps].reverse()) {
      const before = await cpuOf(app.worker)
      const result = await load(app.ready, turnSeconds, 50)
      app.cpuUs += (await cpuOf(app.worker)) - before
      app.requests += result.requests.total
    }
  }
  for (const app of apps) console.log(`${app.name.padEnd(20)} ${String(app.requests).padStart(8)} requests  ${(app.cpuUs / app.requests).toFixed(1).padStart(6)} µs server CPU per request`)
} finally {
  await Promise.all(apps.map((app) => app.worker.stop()))
}
