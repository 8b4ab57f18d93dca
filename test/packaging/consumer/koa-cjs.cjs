// The Koa middleware from require(): a good key passes, a tampered one gets the public invalid-key answer.
const { createKeyring, MemoryStore } = require('@keyrot/core')
const { apiKeyAuth } = require('@keyrot/koa')
const Koa = require('koa')

async function main() {
  const keyring = createKeyring({ store: new MemoryStore() })
  const { token, key } = await keyring.create({ tenantId: 'acme', name: 'koa-cjs' })
  const app = new Koa()
  app.use(apiKeyAuth({ keyring }))
  app.use((ctx) => {
    ctx.body = { id: ctx.state.apiKey.id }
  })
  const server = app.listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  const url = 'http://127.0.0.1:' + server.address().port + '/'
  try {
    const ok = await fetch(url, { headers: { authorization: 'Bearer ' + token } })
    const tampered = await fetch(url, { headers: { authorization: 'Bearer ' + token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A') } })
    console.log(JSON.stringify({
      resolved: require.resolve('@keyrot/koa'),
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
