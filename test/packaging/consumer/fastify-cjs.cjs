// The Fastify plugin from require(): a good key passes, a tampered one gets the public invalid-key answer.
const { createKeyring, MemoryStore } = require('@keyrot/core')
const { apiKeyAuth } = require('@keyrot/fastify')
const Fastify = require('fastify')

async function main() {
  const keyring = createKeyring({ store: new MemoryStore() })
  const { token, key } = await keyring.create({ tenantId: 'acme', name: 'fastify-cjs' })
  const app = Fastify()
  await app.register(apiKeyAuth, { keyring, addHook: false })
  app.get('/', { preHandler: app.verifyApiKey() }, async (request) => ({ id: request.apiKey.id }))
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  try {
    const ok = await fetch(address, { headers: { authorization: 'Bearer ' + token } })
    const tampered = await fetch(address, { headers: { authorization: 'Bearer ' + token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A') } })
    console.log(JSON.stringify({
      resolved: require.resolve('@keyrot/fastify'),
      keyId: key.id,
      ok: { status: ok.status, body: await ok.json() },
      tampered: { status: tampered.status, body: await tampered.json() },
    }))
  } finally {
    await app.close()
    await keyring.close()
  }
}
main().catch((error) => {
  console.error(error)
  process.exit(1)
})
