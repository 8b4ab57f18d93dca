// A Koa API guarded by keyrot. Build the packages first, then run:
//   node scripts/setup.mjs --build-only && node examples/koa-app/server.mjs
// PORT picks the port (default 3000; 0 for any free one).
import Koa from 'koa'
import { createKeyring, errorResponse, isKeyrotError, MemoryStore } from '@keyrot/core'
import { apiKeyAuth } from '@keyrot/koa'

const keyring = createKeyring({ store: new MemoryStore(), gracePeriod: '1h' })
const app = new Koa()
// Behind a load balancer, set app.proxy = true (and app.maxIpsCount) so that
// ctx.ip, which keyrot uses for lockouts, is the client's and not the proxy's.
app.proxy = false

const anyKey = apiKeyAuth({ keyring })
const readers = apiKeyAuth({ keyring, scopes: ['read'] })

const routes = {
  // Who am I: the key the middleware verified (never the token).
  'GET /v1/whoami': [readers, (ctx) => {
    const { id, tenantId, scopes, expiresAt } = ctx.state.apiKey
    ctx.body = { id, tenantId, scopes, expiresAt }
  }],
  // Rotate the calling key: the new token is in this response only; the old
  // one keeps working for an hour, and its responses carry `Sunset`.
  'POST /v1/keys/rotate': [anyKey, async (ctx) => {
    const { token, key, previous } = await keyring.rotate(ctx.state.apiKey.id)
    ctx.status = 201
    ctx.body = { token, id: key.id, previousExpiresAt: previous.expiresAt }
  }],
}

// keyrot errors thrown by route handlers (a second rotation of one key: 409).
app.use(async (ctx, next) => {
  try {
    await next()
  } catch (error) {
    if (!isKeyrotError(error)) throw error
    const { status, headers, body } = errorResponse(error)
    ctx.status = status
    ctx.set(headers)
    ctx.body = body
  }
})

app.use(async (ctx, next) => {
  const route = routes[`${ctx.method} ${ctx.path}`]
  if (!route) return next()
  const [auth, handler] = route
  await auth(ctx, () => handler(ctx))
})

const { token } = await keyring.create({ tenantId: 'acme', name: 'demo', scopes: ['read'] })
const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  const url = `http://127.0.0.1:${server.address().port}`
  console.log(`keyrot Koa example on ${url}`)
  // The only copy of the demo key's secret: printed once, as a CLI prints a key it creates.
  console.log(`demo key: ${token}`)
  console.log(`try: curl -H "Authorization: Bearer <demo key>" ${url}/v1/whoami`)
})

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    server.close()
    server.closeAllConnections()
    void keyring.close()
  })
}
