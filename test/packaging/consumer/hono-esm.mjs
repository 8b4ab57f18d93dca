// Requests through the Hono middleware on @hono/node-server, imported as ESM: a good key, none, and one without the scope.
import { createKeyring, MemoryStore } from '@keyrot/core'
import { apiKeyAuth } from '@keyrot/hono'
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { fileURLToPath } from 'node:url'

const keyring = createKeyring({ store: new MemoryStore() })
const reader = await keyring.create({ tenantId: 'acme', name: 'hono-esm', scopes: ['read'] })
const seen = []
keyring.on('verification.succeeded', (event) => seen.push(event.clientIp))
const app = new Hono()
app.get('/v1/things', apiKeyAuth({ keyring, scopes: ['read'] }), (c) => c.json({ tenant: c.get('apiKey').tenantId, id: c.get('apiKey').id }))
app.get('/v1/admin', apiKeyAuth({ keyring, scopes: ['admin'] }), (c) => c.text('admin'))
const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' })
await new Promise((resolve) => server.once('listening', resolve))
const base = 'http://127.0.0.1:' + server.address().port
async function answer(response) {
  return { status: response.status, challenge: response.headers.get('www-authenticate'), body: await response.json() }
}
try {
  const ok = await fetch(base + '/v1/things', { headers: { 'x-api-key': reader.token } })
  const missing = await fetch(base + '/v1/things')
  const forbidden = await fetch(base + '/v1/admin', { headers: { authorization: 'Bearer ' + reader.token } })
  console.log(JSON.stringify({
    resolved: fileURLToPath(import.meta.resolve('@keyrot/hono')),
    keyId: reader.key.id,
    ok: await answer(ok),
    missing: await answer(missing),
    forbidden: await answer(forbidden),
    clientIps: seen,
  }))
} finally {
  server.close()
  await keyring.close()
}
