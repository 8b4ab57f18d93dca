// What RedisStore costs on a local redis-server: verify with a store read on
// every call (cache.stateTtl 0, Argon2 proof cached), verify from the cached
// state, rotate, revoke (with the durability round trip), and how long an
// invalidation takes to reach another replica. Starts its own redis-server on
// a free loopback port and stops it. FastTestHasher: figures are Redis and
// keyrot, not Argon2.
// Build first: node scripts/setup.mjs --build-only && node bench/redis-store.mjs
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createKeyring, FastTestHasher } from '@keyrot/core'
import { RedisStore } from '@keyrot/redis'
import { Redis } from 'ioredis'

const OPERATIONS = 5_000
const CONCURRENCY = 64
const PROPAGATION_SAMPLES = 200
const MAX_SECONDS = 60
const started = Date.now()

const port = await new Promise((resolve) => {
  const server = createServer().listen(0, '127.0.0.1', () => {
    const { port } = server.address()
    server.close(() => resolve(port))
  })
})
const directory = mkdtempSync(join(tmpdir(), 'keyrot-bench-redis-'))
const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', directory], { stdio: 'ignore' })
const stopRedis = () => {
  redis.kill('SIGKILL')
  rmSync(directory, { recursive: true, force: true })
}
process.once('exit', stopRedis)
for (let i = 0; spawnSync('redis-cli', ['-p', String(port), 'PING'], { encoding: 'utf8' }).stdout.trim() !== 'PONG'; i++) {
  if (i > 100) throw new Error('redis-server did not start')
  await new Promise((resolve) => setTimeout(resolve, 50))
}

function print(label, microseconds, note) {
  console.log(`${label.padEnd(56)} ${microseconds.toFixed(1).padStart(8)} µs/op  ${Math.round(1e6 / microseconds).toLocaleString('en-US').padStart(8)} op/s  ${note}`)
}

async function sequential(label, operation) {
  for (let i = 0; i < 200; i++) await operation(i) // warm up
  const t0 = process.hrtime.bigint()
  let done = 0
  for (; done < OPERATIONS && Date.now() - started < MAX_SECONDS * 1000; done++) await operation(done)
  print(label, Number(process.hrtime.bigint() - t0) / done / 1000, `(${done} in a row)`)
}

async function concurrent(label, operation) {
  const t0 = process.hrtime.bigint()
  let next = 0
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, worker) => {
      while (next < OPERATIONS && Date.now() - started < MAX_SECONDS * 1000) {
        next++
        await operation(worker)
      }
    }),
  )
  print(label, Number(process.hrtime.bigint() - t0) / next / 1000, `(${next}, ${CONCURRENCY} in flight)`)
}

const client = new Redis(port, '127.0.0.1', { lazyConnect: true })
const hasher = new FastTestHasher()
const storeA = new RedisStore({ client, keyPrefix: 'bench' })
const storeB = new RedisStore({ client, keyPrefix: 'bench' })
const uncached = createKeyring({ store: storeA, hasher, prefix: 'sk_test', cache: { stateTtl: 0 }, rateLimit: false })
const cached = createKeyring({ store: storeB, hasher, prefix: 'sk_test', rateLimit: false })
await storeA.waitUntilReady()
await Promise.all([storeA.invalidationReady(), storeB.invalidationReady()])

// One key per concurrent worker: concurrent verifies of one key would share one store read.
const tokens = []
for (let i = 0; i < CONCURRENCY; i++) tokens.push((await uncached.create({ tenantId: 'bench', name: `hot key ${i}` })).token)
const ok = async (keyring, token = tokens[0]) => {
  const result = await keyring.verify(token)
  if (!result.ok) throw new Error(`verify failed: ${result.error.code}`)
}
await sequential('verify, store read every call', () => ok(uncached))
await concurrent('verify, store read every call, one key per worker', (worker) => ok(uncached, tokens[worker]))
await sequential('verify, cached state', () => ok(cached))

const keys = []
for (let i = 0; i < 1_000; i++) keys.push((await uncached.create({ tenantId: 'bench', name: `key ${i}` })).key.id)
let rotating = 0
await sequential('rotate (one Lua script + tenant index)', async () => {
  if (rotating >= keys.length) keys.push((await uncached.create({ tenantId: 'bench', name: 'more' })).key.id)
  await uncached.rotate(keys[rotating++])
})
const toRevoke = []
for (let i = 0; i < 1_000; i++) toRevoke.push((await uncached.create({ tenantId: 'bench', name: `revoke ${i}` })).key.id)
let revoking = 0
await sequential('revoke (script + INFO replication, no replica)', async () => {
  const keyId = toRevoke[revoking++] ?? (await uncached.create({ tenantId: 'bench', name: 'more' })).key.id
  await uncached.revoke(keyId)
})

// Propagation: revoke through A, time until B's store hands the event to its listeners.
const lags = []
for (let i = 0; i < PROPAGATION_SAMPLES && Date.now() - started < MAX_SECONDS * 1000; i++) {
  const { key } = await uncached.create({ tenantId: 'bench', name: `propagation ${i}` })
  const seen = new Promise((resolve) => {
    const stop = storeB.subscribe((event) => {
      if (event.type === 'key' && event.keyId === key.id) {
        stop()
        resolve(performance.now())
      }
    })
  })
  const t0 = performance.now()
  await uncached.revoke(key.id)
  lags.push((await seen) - t0)
}
lags.sort((a, b) => a - b)
const pct = (p) => lags[Math.min(lags.length - 1, Math.floor(lags.length * p))].toFixed(2)
console.log(`invalidation revoke -> other replica: p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms, max ${pct(1)} ms (${lags.length} revocations)`)

await uncached.close()
await cached.close()
stopRedis()
