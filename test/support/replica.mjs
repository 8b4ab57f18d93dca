#!/usr/bin/env node
// One API replica for the multi-process suites: Express 5 on the BUILT
// @keyrot/core, @keyrot/express and @keyrot/redis (dist, as users run them),
// on a Redis shared with the other replicas. Configured by environment only:
//
//   REDIS_URL            redis://127.0.0.1:<port> (required; with REDIS_CLUSTER, any master)
//   REDIS_CLUSTER        '1': REDIS_URL is a node of a Redis Cluster (ioredis Cluster client)
//   PORT                 port on 127.0.0.1; 0 (default) lets the OS pick
//   REPLICA_NAME         name in every log line (default 'replica')
//   KEY_PREFIX           RedisStore keyPrefix (default 'keyrot')
//   STORE_TIMEOUT_MS     RedisStore timeout (default 500)
//   STATE_TTL_MS         keyring cache.stateTtl (default 5000; 0 reads Redis on every verify)
//   FLUSH_INTERVAL_MS    RedisStore usage.flushInterval (default 1000)
//   HEARTBEAT_INTERVAL_MS / HEARTBEAT_TIMEOUT_MS   invalidation heartbeats (default 1000 / 3000)
//   KEYROT_MASTER_KEYS   master keys for signing secrets (optional)
//   STALE_IF_ERROR_MS    keyring cache.staleIfError (default: the keyring's, 30 s)
//   KEYROT_PROOF_KEY     the fleet-wide proof key (optional; the keyring reads it itself)
//   ARGON2_MEMORY_KIB / ARGON2_TIME_COST   Argon2id parameters (default 1024 / 1)
//   RATE_LIMITER         'redis': abuse protection on, with RedisRateLimiter on the
//                        store's Redis (IP limits off, every client is 127.0.0.1;
//                        per-key quota 6,000/min); unset: rate limits off
//
// Argon2id runs with small parameters (m=1024 KiB, t=1, p=1) so that the
// suites can create and prove hundreds of keys on a 2-core machine; the code
// path is the production one, only the work factor is lower. Rate limits are
// off unless RATE_LIMITER is set: every suite sends from 127.0.0.1, and the
// limits have their own tests.
//
// Prints one JSON line `{"event":"replica.listening","port":N,...}` on stdout
// once Redis and the invalidation feed are ready, then pino lines: one per
// request, every keyring event, the audit trail and the store's warnings.
// The admin routes (POST /admin/...) answer loopback clients only.
import { once } from 'node:events'
import {
  Argon2Hasher,
  attachAuditLog,
  createKeyring,
  createMetrics,
  errorResponse,
  asKeyrotError,
  masterKeysFromEnv,
} from '@keyrot/core'
import { apiKeyAuth, metricsHandler } from '@keyrot/express'
import { RedisRateLimiter, RedisStore } from '@keyrot/redis'
import express from 'express'
import { Cluster, Redis } from 'ioredis'
import pino from 'pino'
import { Registry } from 'prom-client'

const env = process.env
const name = env.REPLICA_NAME ?? 'replica'
const number = (variable, fallback) => {
  const raw = env[variable]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value < 0) throw new TypeError(`${variable} must be a non-negative number; got ${JSON.stringify(raw)}`)
  return value
}
if (!env.REDIS_URL) throw new TypeError('REDIS_URL is required')

const logger = pino({ base: { replica: name, pid: process.pid } })

// The application's own client: a template the store duplicates (it never connects itself).
const client = env.REDIS_CLUSTER === '1' ? new Cluster([env.REDIS_URL], { lazyConnect: true }) : new Redis(env.REDIS_URL, { lazyConnect: true })
client.on('error', () => {})
const store = new RedisStore({
  client,
  keyPrefix: env.KEY_PREFIX ?? 'keyrot',
  timeout: number('STORE_TIMEOUT_MS', 500),
  usage: { flushInterval: number('FLUSH_INTERVAL_MS', 1000) },
  invalidation: {
    heartbeatInterval: number('HEARTBEAT_INTERVAL_MS', 1000),
    heartbeatTimeout: number('HEARTBEAT_TIMEOUT_MS', 3000),
  },
  logger: logger.child({ component: 'keyrot-redis' }),
})
// Why a read failed (the 503 answer says only "unavailable"): logged for diagnosis, and scanned for secrets like every line.
const readRecord = store.get.bind(store)
store.get = async (keyId) => {
  try {
    return await readRecord(keyId)
  } catch (error) {
    logger.warn({ component: 'store', keyId, err: { name: error?.name, message: error?.message, cause: error?.cause?.message } }, 'store read failed')
    throw error
  }
}
const keyring = createKeyring({
  store,
  hasher: new Argon2Hasher({ memoryCost: number('ARGON2_MEMORY_KIB', 1024), timeCost: number('ARGON2_TIME_COST', 1), parallelism: 1 }),
  cache: {
    stateTtl: number('STATE_TTL_MS', 5000),
    ...(env.STALE_IF_ERROR_MS ? { staleIfError: number('STALE_IF_ERROR_MS', 0) } : {}),
  },
  rateLimit:
    env.RATE_LIMITER === 'redis'
      ? { limiter: RedisRateLimiter.forStore(store), failuresPerIp: false, ipBlock: false, perKey: { limit: 6_000, window: '1m' } }
      : false,
  logger: logger.child({ component: 'keyrot' }),
  ...(env.KEYROT_MASTER_KEYS ? { signing: { masterKeys: masterKeysFromEnv(env) } } : {}),
})
attachAuditLog(keyring, logger.child({ component: 'keyrot-audit' }))
for (const event of ['cache.reset', 'invalidation.received', 'key.expired', 'key.used_in_grace', 'store.down', 'store.up', 'ratelimit.fallback', 'store.reset', 'keys.lost']) {
  keyring.on(event, (payload) => logger.info({ component: 'keyrot-events', keyrotEvent: event, payload }, `event ${event}`))
}
const registry = new Registry()
createMetrics({ keyring, registry })

const app = express()
app.disable('x-powered-by')
app.use((req, res, next) => {
  const started = performance.now()
  res.on('finish', () => {
    logger.info(
      { component: 'http', method: req.method, path: req.path, status: res.statusCode, ms: Math.round((performance.now() - started) * 10) / 10 },
      'request',
    )
  })
  next()
})
app.get('/health', (_req, res) => res.json({ ok: true, replica: name }))
app.get('/metrics', metricsHandler(registry))
app.get('/v1/whoami', apiKeyAuth({ keyring }), (req, res) => {
  res.json({ replica: name, keyId: req.apiKey.id, state: req.apiKey.state })
})

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1'])
const admin = express.Router()
admin.use((req, res, next) => {
  if (!LOOPBACK.has(req.socket.remoteAddress ?? '')) {
    res.status(403).json({ error: { code: 'KEYROT_INVALID_REQUEST', message: 'The admin routes answer loopback clients only.' } })
    return
  }
  next()
})
admin.use(express.json({ limit: '16kb' }))
const route = (path, action) =>
  admin.post(path, (req, res, next) => {
    action(req.body ?? {}).then((body) => res.json(body), next)
  })
route('/create', (body) => keyring.create({ tenantId: body.tenantId ?? 'acme', name: body.name ?? 'test key', scopes: body.scopes, credits: body.credits }))
route('/credits', (body) => keyring.credits(body.keyId).then((credits) => ({ credits })))
route('/rotate', (body) => keyring.rotate(body.keyId, body.gracePeriodMs === undefined ? {} : { gracePeriod: `${body.gracePeriodMs}ms` }))
route('/revoke', (body) => keyring.revoke(body.keyId, { reason: body.reason }).then((key) => ({ key })))
route('/end-grace', (body) => keyring.endGrace(body.keyId).then((key) => ({ key })))
route('/emergency-rotate', (body) => keyring.emergencyRotate(body.keyId, { incidentId: body.incidentId ?? 'INC-1' }))
route('/signing-secret', (body) => keyring.createSigningSecret({ tenantId: body.tenantId ?? 'acme', name: body.name ?? 'webhooks' }))
route('/key', (body) => keyring.get(body.keyId).then((key) => ({ key })))
route('/flush-usage', () => store.flushUsage().then(() => ({ flushed: true })))
app.use('/admin', admin)

// Errors from admin routes (and anything unexpected) become the shared JSON error answer.
app.use((error, _req, res, _next) => {
  const keyrotError = asKeyrotError(error)
  logger.warn({ component: 'http', err: { name: keyrotError.name, code: keyrotError.code, message: keyrotError.message } }, 'request failed')
  const answer = errorResponse(keyrotError)
  if (res.headersSent) return
  res.status(answer.status).set(answer.headers).json(answer.body)
})

await store.waitUntilReady(10_000)
await store.invalidationReady(10_000)
const server = app.listen(number('PORT', 0), '127.0.0.1')
await once(server, 'listening')
server.keepAliveTimeout = 30_000
// The one line a test waits for: plain JSON, like the pino lines around it.
process.stdout.write(`${JSON.stringify({ event: 'replica.listening', replica: name, pid: process.pid, port: server.address().port })}\n`)

let closing = false
async function shutdown(signal) {
  if (closing) return
  closing = true
  logger.info({ signal }, 'replica shutting down')
  server.close()
  server.closeAllConnections()
  // Flushes pending usage counts to Redis before the process ends.
  await keyring.close()
  process.exit(0)
}
process.on('SIGTERM', () => void shutdown('SIGTERM'))
process.on('SIGINT', () => void shutdown('SIGINT'))
// A test process killed outright cannot stop its replicas: they notice they were orphaned and leave.
const parent = process.ppid
setInterval(() => {
  if (process.ppid !== parent) void shutdown('orphaned')
}, 1_000).unref()
