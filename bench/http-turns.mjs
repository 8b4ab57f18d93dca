// Runs chosen apps of the HTTP section (bench/dist/workers/http-app.js), each
// in its own process pinned to core 0 (every thread, taskset -a), and gives
// them load in turns from this process (autocannon, 50 connections), then
// prints each process's requests and server CPU per request. For looking at
// one effect at a time outside `npm run bench`: which processes, how many,
// in which start order. A trailing digit only tells identical apps apart.
// Needs a redis-server for the `redis` app (--redis, default
// redis://127.0.0.1:6379).
// Build first: node scripts/setup.mjs --build-only
// Example: taskset -c 1 node bench/http-turns.mjs --framework koa --apps memory,redis,memory2,redis2 --turns 16
import { execFileSync, fork } from 'node:child_process'
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'

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

/** The next message of `type` from a worker (its protocol: bench/src/lib/worker-side.ts). */
function next(child, type) {
  return new Promise((resolve, reject) => {
    const on = (message) => {
      if (message.type === type) {
        child.off('message', on)
        resolve(message.data)
      } else if (message.type === 'error') reject(new Error(message.message))
    }
    child.on('message', on)
  })
}

async function cpuOf(child) {
  const reply = next(child, 'reply')
  child.send({ question: 'cpu' })
  const { user, system } = await reply
  return user + system
}

const apps = []
try {
  for (const name of values.apps.split(',')) {
    const auth = name.replace(/\d+$/, '')
    const config = { framework: values.framework, auth, redisUrl: values.redis }
    const child = fork(new URL('./dist/workers/http-app.js', import.meta.url), [JSON.stringify(config)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' })
    apps.push({ name, child, requests: 0, cpuUs: 0 })
    const ready = await next(child, 'ready')
    execFileSync('taskset', ['-a', '-p', '-c', '0', String(child.pid)], { stdio: 'ignore' })
    apps.at(-1).load = { url: `http://127.0.0.1:${ready.port}/hello`, connections: 50, headers: { authorization: `Bearer ${ready.token}` } }
    // --warm-first: load each app for a second as soon as it is up, before the idle time.
    if (values['warm-first']) await autocannon({ ...apps.at(-1).load, duration: 1 })
  }
  // --idle: the apps wait this long after start before any request (what a process does while idle can change how fast it runs later).
  // --trickle: meanwhile one request to each app every this many ms (health checks, say).
  const trickle = Number(values.trickle) > 0 ? setInterval(() => {
    for (const app of apps) fetch(app.load.url, { headers: app.load.headers }).then((response) => response.arrayBuffer(), () => undefined)
  }, Number(values.trickle)) : undefined
  await new Promise((resolve) => setTimeout(resolve, Number(values.idle) * 1000))
  clearInterval(trickle)
  for (const app of apps) await autocannon({ ...app.load, duration: 1 })
  for (let turn = 0; turn < turns; turn++) {
    for (const app of turn % 2 === 0 ? apps : [...apps].reverse()) {
      const before = await cpuOf(app.child)
      const result = await autocannon({ ...app.load, duration: turnSeconds, sampleInt: 25 })
      app.cpuUs += (await cpuOf(app.child)) - before
      app.requests += result.requests.total
    }
  }
  for (const app of apps) console.log(`${app.name.padEnd(20)} ${String(app.requests).padStart(8)} requests  ${(app.cpuUs / app.requests).toFixed(1).padStart(6)} µs server CPU per request`)
} finally {
  for (const app of apps) if (app.child.connected) app.child.disconnect()
}
