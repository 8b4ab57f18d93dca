// Requests through the Koa middleware, imported as ESM: a good key, none, and one without the scope.
import { createKeyring, MemoryStore } from '@keyrot/core'
import { apiKeyAuth } from '@keyrot/koa'
import Koa from 'koa'
import { fileURLToPath } from 'node:url'

const keyring = createKeyring({ store: new MemoryStore() })
const reader = await keyring.create({ tenantId: 'acme', name: 'koa-esm', scopes: ['read'] })
const writer = await keyring.create({ tenantId: 'acme', name: 'koa-esm-writer', scopes: ['write'] })
const app = new Koa()
app.use(apiKeyAuth({ keyring, scopes: ['read'] }))
app.use((ctx) => {
  ctx.body = { tenant: ctx.state.apiKey.tenantId, id: ctx.state.apiKey.id }
})
const server = app.listen(0, '127.0.0.1')
await new Promise((resolve) => server.once('listening', resolve))
const url = 'http://127.0.0.1:' + server.address().port + '/v1/things'
async function answer(response) {
  return { status: response.status, challenge: response.headers.get('www-authenticate'), body: await response.json() }
}
try {
  const ok = await fetch(url, { headers: { 'x-api-key': reader.token } })
  const missing = await fetch(url)
  const forbidden = await fetch(url, { headers: { authorization: 'Bearer ' + writer.token } })
  console.log(JSON.stringify({
    resolved: fileURLToPath(import.meta.resolve('@keyrot/koa')),
    keyId: reader.key.id,
    ok: await answer(ok),
    missing: await answer(missing),
    forbidden: await answer(forbidden),
  }))
} finally {
  server.close()
  await keyring.close()
}
