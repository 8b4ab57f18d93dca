import type { ApiKey, Keyring } from '@keyrot/core'
import { getRequestListener } from '@hono/node-server'
import { apiKeyAuth as expressApiKeyAuth } from '@keyrot/express'
import { apiKeyAuth as fastifyApiKeyAuth, apiKeyHook as fastifyApiKeyHook } from '@keyrot/fastify'
import { apiKeyAuth as honoApiKeyAuth } from '@keyrot/hono'
import { apiKeyAuth as koaApiKeyAuth } from '@keyrot/koa'
import express5 from 'express'
import express4 from 'express4'
import type { ErrorRequestHandler, RequestHandler } from 'express'
import fastify5 from 'fastify'
import fastify4 from 'fastify4'
import { Hono } from 'hono'
import Koa3 from 'koa'
import Koa2 from 'koa2'
import type { Middleware } from 'koa'
import { expectTypeOf } from 'vitest'
import { listen, type RunningApp } from '../support/listen.js'

/**
 * What every test app serves, whatever the framework:
 * - `/whoami`: any valid key; echoes the key the middleware attached.
 * - `/admin`: a key with the `admin` scope.
 * - `/metered`: like `/whoami`, spending 5 credits of a key with credits.
 * - `/flaky`: like `/whoami`, on a keyring whose store the test can break.
 * - `/guarded`: like `/whoami`, on a keyring with tight rate limits.
 * - `/broken`: a `clientIp` option that throws, to see where unexpected errors go.
 */
export interface AppKeyrings {
  keyring: Keyring
  flaky: Keyring
  guarded: Keyring
}

export interface AppOptions {
  /** Trust `X-Forwarded-For` from loopback: Express's `trust proxy`, Koa's `app.proxy`. Default `false`. */
  trustProxy?: boolean
}

export type { RunningApp }

export type AppFactory = (keyrings: AppKeyrings, options?: AppOptions) => Promise<RunningApp>

const throwingClientIp = (): string => {
  throw new Error('clientIp failed')
}

function expressApp(createApp: typeof express5): AppFactory {
  return async ({ keyring, flaky, guarded }, { trustProxy = false } = {}) => {
    const errors: unknown[] = []
    const app = createApp()
    app.set('trust proxy', trustProxy ? 'loopback' : false)
    const echo: RequestHandler = (req, res) => {
      res.json({ apiKey: req.apiKey })
    }
    app.get('/whoami', expressApiKeyAuth({ keyring }), echo)
    app.get('/admin', expressApiKeyAuth({ keyring, scopes: ['admin'] }), echo)
    app.get('/metered', expressApiKeyAuth({ keyring, cost: 5 }), echo)
    app.get('/flaky', expressApiKeyAuth({ keyring: flaky }), echo)
    app.get('/guarded', expressApiKeyAuth({ keyring: guarded }), echo)
    app.get('/broken', expressApiKeyAuth({ keyring, clientIp: throwingClientIp }), echo)
    const onError: ErrorRequestHandler = (error, _req, res, _next) => {
      errors.push(error)
      res.status(500).json({ unexpected: true })
    }
    app.use(onError)
    return listen(app, errors)
  }
}

function koaApp(KoaClass: typeof Koa3): AppFactory {
  return async ({ keyring, flaky, guarded }, { trustProxy = false } = {}) => {
    const errors: unknown[] = []
    const app = new KoaClass()
    app.proxy = trustProxy
    app.on('error', (error: unknown) => errors.push(error))
    const routes: Record<string, Middleware> = {
      '/whoami': koaApiKeyAuth({ keyring }),
      '/admin': koaApiKeyAuth({ keyring, scopes: ['admin'] }),
      '/metered': koaApiKeyAuth({ keyring, cost: 5 }),
      '/flaky': koaApiKeyAuth({ keyring: flaky }),
      '/guarded': koaApiKeyAuth({ keyring: guarded }),
      '/broken': koaApiKeyAuth({ keyring, clientIp: throwingClientIp }),
    }
    app.use(async (ctx, next) => {
      const auth = ctx.method === 'GET' ? routes[ctx.path] : undefined
      if (!auth) return next()
      await auth(ctx, async () => {
        // `@keyrot/koa` types the state it sets (checked by tsc).
        expectTypeOf(ctx.state.apiKey).toEqualTypeOf<ApiKey | undefined>()
        ctx.body = { apiKey: ctx.state.apiKey }
      })
    })
    return listen(app.callback(), errors)
  }
}

function fastifyApp(createApp: typeof fastify5): AppFactory {
  return async ({ keyring, flaky, guarded }, { trustProxy = false } = {}) => {
    const errors: unknown[] = []
    const app = createApp({ trustProxy: trustProxy ? '127.0.0.1' : false })
    app.setErrorHandler((error, _request, reply) => {
      errors.push(error)
      return reply.code(500).send({ unexpected: true })
    })
    // The main keyring's plugin adds the onRequest hook; the others are per route.
    await app.register(fastifyApiKeyAuth, { keyring })
    const echo = async (request: import('fastify').FastifyRequest) => {
      // `@keyrot/fastify` declares `request.apiKey` (checked by tsc).
      expectTypeOf(request.apiKey).toEqualTypeOf<ApiKey | null>()
      return { apiKey: request.apiKey }
    }
    app.get('/whoami', echo)
    app.get('/admin', { config: { keyrot: { scopes: ['admin'] } } }, echo)
    // Other keyrings: the main hook steps aside, a per-route hook takes over.
    const own = (other: Keyring, clientIp?: () => string) => ({ config: { keyrot: false as const }, preHandler: fastifyApiKeyHook({ keyring: other, ...(clientIp ? { clientIp } : {}) }) })
    app.get('/flaky', own(flaky), echo)
    app.get('/guarded', own(guarded), echo)
    app.get('/metered', { config: { keyrot: false as const }, preHandler: fastifyApiKeyHook({ keyring, cost: 5 }) }, echo)
    app.get('/broken', own(keyring, throwingClientIp), echo)
    await app.ready()
    return listen((req, res) => app.routing(req, res), errors)
  }
}

function honoApp(): AppFactory {
  return async ({ keyring, flaky, guarded }, { trustProxy = false } = {}) => {
    const errors: unknown[] = []
    const app = new Hono()
    app.onError((error, c) => {
      errors.push(error)
      return c.json({ unexpected: true }, 500)
    })
    // Hono has no proxy setting: a `clientIp` option reads what the proxy sets.
    const forwarded = trustProxy ? { clientIp: (c: import('hono').Context) => c.req.header('x-forwarded-for')?.split(',')[0]?.trim() } : {}
    const route = (path: string, auth: ReturnType<typeof honoApiKeyAuth>) =>
      app.get(path, auth, (c) => {
        // `@keyrot/hono` types the variable it sets (checked by tsc).
        expectTypeOf(c.get('apiKey')).toEqualTypeOf<ApiKey>()
        // Hono's c.json() says `application/json`; the table compares routes' answers byte for byte.
        return c.json({ apiKey: c.get('apiKey') }, 200, { 'Content-Type': 'application/json; charset=utf-8' })
      })
    route('/whoami', honoApiKeyAuth({ keyring, ...forwarded }))
    route('/admin', honoApiKeyAuth({ keyring, scopes: ['admin'], ...forwarded }))
    route('/metered', honoApiKeyAuth({ keyring, cost: 5, ...forwarded }))
    route('/flaky', honoApiKeyAuth({ keyring: flaky, ...forwarded }))
    route('/guarded', honoApiKeyAuth({ keyring: guarded, ...forwarded }))
    route('/broken', honoApiKeyAuth({ keyring, clientIp: throwingClientIp }))
    return listen(getRequestListener(app.fetch), errors)
  }
}

/** The frameworks the adapters support, each served over a real socket. */
export const frameworks: Array<{ framework: string; start: AppFactory }> = [
  { framework: 'express5', start: expressApp(express5) },
  { framework: 'express4', start: expressApp(express4 as unknown as typeof express5) },
  { framework: 'koa3', start: koaApp(Koa3) },
  { framework: 'koa2', start: koaApp(Koa2 as unknown as typeof Koa3) },
  { framework: 'fastify5', start: fastifyApp(fastify5) },
  { framework: 'fastify4', start: fastifyApp(fastify4 as unknown as typeof fastify5) },
  { framework: 'hono', start: honoApp() },
]
