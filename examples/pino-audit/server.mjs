// An Express API on keyrot with an audit trail in pino's JSON lines (stdout),
// Prometheus metrics at /metrics and notices before keys stop working.
// Build the packages first, then run:
//   node scripts/setup.mjs --build-only && node examples/pino-audit/server.mjs | npx pino-pretty
// PORT picks the port (default 3000; 0 for any free one). GRACE sets the
// grace period of rotations (default '1h').
import express from 'express'
import pino from 'pino'
import { collectDefaultMetrics, Registry } from 'prom-client'
import { attachAuditLog, createKeyring, createMetrics, isKeyrotError, errorResponse, MemoryStore, watchExpiry } from '@keyrot/core'
import { apiKeyAuth, metricsHandler } from '@keyrot/express'

const log = pino({ base: { service: 'things-api' } })

// The keyring's own logger gets warnings and errors only: admin actions are
// in the audit trail below, once.
const keyring = createKeyring({
  store: new MemoryStore(),
  gracePeriod: process.env.GRACE ?? '1h',
  logger: log.child({ component: 'keyrot' }, { level: 'warn' }),
})

// One line per verification attempt, admin action and notice. No token, secret or hash ever.
attachAuditLog(keyring, log.child({ component: 'keyrot-audit' }))

// Customers to tell: their clients still use a key whose grace period ends
// soon, or a key that expires within a week. Replace log.warn with your
// mailer or pager.
keyring.on('key.grace_ending_soon', (notice) => {
  if (notice.lastUsedInGraceAt === null) return // nobody uses the old key any more: nothing to say
  log.warn({ notify: notice.tenantId, keyId: notice.keyId, endsAt: new Date(notice.expiresAt).toISOString() }, 'tell the customer: old API key stops soon and is still in use')
})
keyring.on('key.expiring_soon', (notice) => {
  log.warn({ notify: notice.tenantId, keyId: notice.keyId, expiresAt: new Date(notice.expiresAt).toISOString() }, 'tell the customer: API key expires soon')
})
const watcher = watchExpiry(keyring, { graceEndingWithin: '30m', expiringWithin: '7d', interval: '1m' })

// Metrics: keyrot's plus Node's process metrics, in one registry of our own.
const registry = new Registry()
collectDefaultMetrics({ register: registry })
createMetrics({ keyring, registry, tenantStates: true })

const app = express()
// In production serve /metrics on an internal port or behind auth: it shows tenant ids (tenantStates).
app.get('/metrics', metricsHandler(registry))

app.get('/v1/whoami', apiKeyAuth({ keyring, scopes: ['read'] }), (req, res) => {
  const { id, tenantId, scopes, expiresAt } = req.apiKey
  res.json({ id, tenantId, scopes, expiresAt })
})

// Rotate the calling key: the new token is in this response only.
app.post('/v1/keys/rotate', apiKeyAuth({ keyring }), async (req, res, next) => {
  try {
    const { token, key, previous } = await keyring.rotate(req.apiKey.id)
    res.status(201).json({ token, id: key.id, previousExpiresAt: previous.expiresAt })
  } catch (error) {
    next(error)
  }
})

app.use((error, _req, res, _next) => {
  if (!isKeyrotError(error)) {
    log.error({ err: error }, 'unhandled error')
    res.status(500).json({ error: { message: 'internal error' } })
    return
  }
  const { status, headers, body } = errorResponse(error)
  res.status(status).set(headers).json(body)
})

const { token } = await keyring.create({ tenantId: 'acme', name: 'demo', scopes: ['read'] })
const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  const url = `http://127.0.0.1:${server.address().port}`
  // On stderr, away from the JSON log: the only copy of the demo key's secret, printed once.
  console.error(`keyrot pino-audit example on ${url}`)
  console.error(`demo key: ${token}`)
  console.error(`try: curl -H "Authorization: Bearer <demo key>" ${url}/v1/whoami ; curl ${url}/metrics`)
})

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    watcher.stop()
    server.close()
    server.closeAllConnections()
    void keyring.close()
  })
}
