// Requests through the Fastify plugin, imported as ESM: a good key, none, and one without the route's scope.
import { createKeyring, MemoryStore } from '@keyrot/core'
import { apiKeyAuth } from '@keyrot/fastify'
import Fastify from 'fastify'
import { fileURLToPath } from 'node:url'

const keyring = createKeyring({ store: new MemoryStore() })
const reader = await keyring.create({ tenantId: 'acme', name: 'fastify-esm', scopes: ['read'] })
const app = Fastify()
await app.register(apiKeyAuth, { keyring })
app.get('/v1/things', async (request) => ({ tenant: request.apiKey.tenantId, id: request.apiKey.id }))
app.get('/v1/admin', { config: { keyrot: { scopes: ['admin'] } } }, async () => 'admin')
const address = await app.listen({ port: 0, host: '127.0.0.1' })
async function answer(response) {
  return { status: response.status, challenge: response.headers.get('www-authenticate'), body: await response.json() }
}
try {
  const ok = await fetch(address + '/v1/things', { headers: { 'x-api-key': reader.token } })
  const missing = await fetch(address + '/v1/things')
  const forbidden = await fetch(address + '/v1/admin', { headers: { authorization: 'Bearer ' + reader.token } })
  console.log(JSON.stringify({
    resolved: fileURLToPath(import.meta.resolve('@keyrot/fastify')),
    fastify: app.version,
    keyId: reader.key.id,
    ok: await answer(ok),
    missing: await answer(missing),
    forbidden: await answer(forbidden),
  }))
} finally {
  await app.close()
  await keyring.close()
}
