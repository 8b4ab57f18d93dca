// The Hono middleware from require(): a good key passes, a tampered one gets the public invalid-key answer.
const { createKeyring, MemoryStore } = require('@keyrot/core')
const { apiKeyAuth } = require('@keyrot/hono')
const { serve } = require('@hono/node-server')
const { Hono } = require('hono')

async function main() {
  const keyring = createKeyring({ store: new MemoryStore() })
  const { token, key } = await keyring.create({ tenantId: 'acme', name: 'hono-cjs' })
  const app = new Hono()
  app.use(apiKeyAuth({ keyring }))
  app.get('/', (c) => c.json({ id: c.get('apiKey').id }))
  const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' })
  await new Promise((resolve) => server.once('listening', resolve))
  const url = 'http://127.0.0.1:' + server.address().port + '/'
  try {
    const ok = await fetch(url, { headers: { authorization: 'Bearer ' + token } })
    const tampered = await fetch(url, { headers: { authorization: 'Bearer ' + token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A') } })
    console.log(JSON.stringify({
      resolved: require.resolve('@keyrot/hono'),
      keyId: key.id,
      ok: { status: ok.status, body: await ok.json() },
      tampered: { status: tampered.status, body: await tampered.json() },
    }))
  } finally {
    server.close()
    await keyring.close()
  }
}
main().catch((error) => {
  console.error(error)
  process.exit(1)
})
