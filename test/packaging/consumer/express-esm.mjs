// A key authenticates a request through the Express middleware, imported as ESM.
import { createKeyring, MemoryStore } from '@keyrot/core'
import { apiKeyAuth } from '@keyrot/express'
import express from 'express'
import { fileURLToPath } from 'node:url'

const keyring = createKeyring({ store: new MemoryStore() })
const { token, key } = await keyring.create({ tenantId: 'acme', name: 'esm', scopes: ['read'] })
const app = express()
app.get('/v1/things', apiKeyAuth({ keyring, scopes: ['read'] }), (req, res) => res.json({ tenant: req.apiKey.tenantId, id: req.apiKey.id }))
const server = app.listen(0, '127.0.0.1')
await new Promise((resolve) => server.once('listening', resolve))
const url = 'http://127.0.0.1:' + server.address().port + '/v1/things'
try {
  const ok = await fetch(url, { headers: { authorization: 'Bearer ' + token } })
  const missing = await fetch(url)
  console.log(JSON.stringify({
    resolved: [fileURLToPath(import.meta.resolve('@keyrot/core')), fileURLToPath(import.meta.resolve('@keyrot/express'))],
    keyId: key.id,
    ok: { status: ok.status, body: await ok.json() },
    missing: { status: missing.status, challenge: missing.headers.get('www-authenticate'), body: await missing.json() },
  }))
} finally {
  server.close()
  await keyring.close()
}
