import { randomBytes } from 'node:crypto'
import { createKeyring, FastTestHasher, ManualClock, MemoryReplayStore, MemoryStore, signRequest, type Keyring } from '@keyrot/core'
import { signedRequest as expressSignedRequest } from '@keyrot/express'
import { signedRequest as koaSignedRequest } from '@keyrot/koa'
import { signedRequest as fastifySignedRequest } from '@keyrot/fastify'
import { signedRequest as honoSignedRequest } from '@keyrot/hono'
import { getRequestListener } from '@hono/node-server'
import fastify5 from 'fastify'
import fastify4 from 'fastify4'
import { Hono } from 'hono'
import express5 from 'express'
import express4 from 'express4'
import type { ErrorRequestHandler } from 'express'
import Koa3 from 'koa'
import Koa2 from 'koa2'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { listen, type RunningApp } from '../support/listen.js'

/**
 * Every app serves:
 * - `ANY /echo`: signed; answers the signing key's tenant, the path and the verified body.
 * - `POST /parsed`: (Express) `express.json({ verify })` runs first and keeps the bytes.
 * - `POST /consumed`: (Express) `express.json()` runs first and keeps nothing: a setup error.
 */
type AppFactory = (keyring: Keyring) => Promise<RunningApp>

function expressApp(createApp: typeof express5): AppFactory {
  return async (keyring) => {
    const errors: unknown[] = []
    const app = createApp()
    const guard = expressSignedRequest({ keyring, replayStore: new MemoryReplayStore({ clock: keyring.clock }), limit: 1024 })
    app.all('/echo', guard, (req, res) => {
      res.json({ tenant: req.signedRequest?.key.tenantId, path: req.originalUrl, body: req.signedRequest?.rawBody.toString('utf8') })
    })
    const keep = express5.json({ verify: (req, _res, buf) => ((req as unknown as { rawBody: Buffer }).rawBody = buf) })
    app.post('/parsed', keep, guard, (req, res) => {
      res.json({ tenant: req.signedRequest?.key.tenantId, parsed: req.body })
    })
    app.post('/consumed', express5.json(), guard, (_req, res) => {
      res.json({ reached: true })
    })
    const onError: ErrorRequestHandler = (error, _req, res, _next) => {
      errors.push(error)
      res.status(500).json({ unexpected: true })
    }
    app.use(onError)
    return listen(app, errors)
  }
}

function koaApp(Koa: typeof Koa3): AppFactory {
  return async (keyring) => {
    const errors: unknown[] = []
    const app = new Koa()
    app.on('error', (error: unknown) => errors.push(error))
    const guard = koaSignedRequest({ keyring, replayStore: new MemoryReplayStore({ clock: keyring.clock }), limit: 1024 })
    app.use(async (ctx, next) => {
      if (ctx.path !== '/echo') {
        ctx.status = 404
        return
      }
      await next()
    })
    app.use(guard)
    app.use((ctx) => {
      ctx.body = { tenant: ctx.state.signedRequest?.key.tenantId, path: ctx.originalUrl, body: ctx.state.signedRequest?.rawBody.toString('utf8') }
    })
    return listen(app.callback(), errors)
  }
}

function fastifyApp(createApp: typeof fastify5): AppFactory {
  return async (keyring) => {
    const errors: unknown[] = []
    const app = createApp()
    app.setErrorHandler((error, _request, reply) => {
      errors.push(error)
      return reply.code(500).send({ unexpected: true })
    })
    await app.register(fastifySignedRequest, { keyring, replayStore: new MemoryReplayStore({ clock: keyring.clock }), limit: 1024 })
    app.all('/echo', { config: { keyrotSigned: true } }, async (request) => ({
      tenant: request.signedRequest?.key.tenantId,
      path: request.url,
      body: request.signedRequest?.rawBody.toString('utf8'),
    }))
    await app.ready()
    return listen((req, res) => app.routing(req, res), errors)
  }
}

function honoApp(): AppFactory {
  return async (keyring) => {
    const errors: unknown[] = []
    const app = new Hono()
    app.onError((error, c) => {
      errors.push(error)
      return c.json({ unexpected: true }, 500)
    })
    app.all('/echo', honoSignedRequest({ keyring, replayStore: new MemoryReplayStore({ clock: keyring.clock }), limit: 1024 }), async (c) => {
      const url = new URL(c.req.url)
      // The body is still readable after verification.
      const text = await c.req.text()
      return c.json({ tenant: c.get('signedRequest').key.tenantId, path: `${url.pathname}${url.search}`, body: text })
    })
    return listen(getRequestListener(app.fetch), errors)
  }
}

const frameworks: [string, AppFactory][] = [
  ['Express 5', expressApp(express5)],
  ['Express 4', expressApp(express4 as unknown as typeof express5)],
  ['Koa 3', koaApp(Koa3)],
  ['Koa 2', koaApp(Koa2 as unknown as typeof Koa3)],
  ['Fastify 5', fastifyApp(fastify5)],
  ['Fastify 4', fastifyApp(fastify4 as unknown as typeof fastify5)],
  ['Hono', honoApp()],
]

describe.each(frameworks)('signedRequest() on %s', (name, createApp) => {
  const clock = new ManualClock(Date.UTC(2031, 4, 6, 12))
  const keyring = createKeyring({
    store: new MemoryStore(),
    clock,
    hasher: new FastTestHasher(),
    gracePeriod: '1h',
    signing: { masterKeys: [{ id: 'm1', key: randomBytes(32) }] },
  })
  let app: RunningApp
  let credentials: { keyId: string; secret: string }

  beforeAll(async () => {
    app = await createApp(keyring)
    const { key, secret } = await keyring.createSigningSecret({ tenantId: 'acme', name: name })
    credentials = { keyId: key.id, secret }
  })
  afterAll(async () => {
    await app.close()
    expect(app.errors.filter((error) => !(error instanceof TypeError && /consumed/.test(error.message)))).toEqual([])
  })

  const send = (path: string, init: { method?: string; body?: string; headers?: Record<string, string> } = {}) =>
    fetch(`http://127.0.0.1:${app.port}${path}`, {
      method: init.method ?? 'POST',
      headers: { 'content-type': 'application/json', ...init.headers },
      ...(init.body !== undefined ? { body: init.body } : {}),
    })
  const signed = (path: string, body = '', overrides: Partial<Parameters<typeof signRequest>[0]> = {}, method = 'POST') =>
    signRequest({ ...credentials, method, url: `http://127.0.0.1:${app.port}${path}`, body, clock, ...overrides })

  it('accepts a signed request and hands over the verified body bytes', async () => {
    const body = JSON.stringify({ amount: 42, note: 'café ✓' })
    const response = await send('/echo?dry=1&x=%20y', { body, headers: signed('/echo?dry=1&x=%20y', body) })
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ tenant: 'acme', path: '/echo?dry=1&x=%20y', body })
  })

  it('accepts a signed GET without a body', async () => {
    const response = await send('/echo', { method: 'GET', headers: signed('/echo', '', {}, 'GET') })
    expect(response.status).toBe(200)
  })

  it('refuses a replay with 401 KEYROT_REPLAYED_REQUEST', async () => {
    const headers = signed('/echo', '{}')
    expect((await send('/echo', { body: '{}', headers })).status).toBe(200)
    const replay = await send('/echo', { body: '{}', headers })
    expect(replay.status).toBe(401)
    expect(await replay.json()).toEqual({ error: { code: 'KEYROT_REPLAYED_REQUEST', message: 'This signed request was already received.' } })
  })

  it('refuses stale and future timestamps with 401 KEYROT_STALE_TIMESTAMP', async () => {
    for (const offset of [-6 * 60_000, 6 * 60_000]) {
      const response = await send('/echo', { body: '{}', headers: signed('/echo', '{}', { timestamp: clock.now() + offset }) })
      expect(response.status).toBe(401)
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe('KEYROT_STALE_TIMESTAMP')
    }
  })

  it('refuses a tampered body with 401 KEYROT_INVALID_SIGNATURE and a challenge', async () => {
    const response = await send('/echo', { body: '{"amount":43}', headers: signed('/echo', '{"amount":42}') })
    expect(response.status).toBe(401)
    expect(response.headers.get('www-authenticate')).toMatch(/^KeyrotSignature realm="api", error="invalid_signature"/)
    expect(response.headers.get('cache-control')).toBe('no-store')
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe('KEYROT_INVALID_SIGNATURE')
  })

  it('refuses an unsigned request with 401 KEYROT_MISSING_SIGNATURE', async () => {
    const response = await send('/echo', { body: '{}' })
    expect(response.status).toBe(401)
    expect(response.headers.get('www-authenticate')).toBe('KeyrotSignature realm="api"')
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe('KEYROT_MISSING_SIGNATURE')
  })

  it('refuses a body over the limit with 413 before reading it', async () => {
    const body = 'x'.repeat(2048)
    const response = await send('/echo', { body, headers: signed('/echo', body) })
    expect(response.status).toBe(413)
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe('KEYROT_PAYLOAD_TOO_LARGE')
  })

  it('refuses an unsigned request without reading its body, however large', async () => {
    const response = await send('/echo', { body: 'x'.repeat(64 * 1024) })
    expect(response.status).toBe(401)
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe('KEYROT_MISSING_SIGNATURE')
  })

  it('keeps accepting the old secret during a rotation, with Sunset', async () => {
    const rotated = await keyring.rotate(credentials.keyId)
    const old = await send('/echo', { body: '{}', headers: signed('/echo', '{}') })
    expect(old.status).toBe(200)
    expect(old.headers.get('sunset')).toBe(new Date(clock.now() + 3_600_000).toUTCString())
    const fresh = await send('/echo', { body: '{}', headers: signed('/echo', '{}', { keyId: rotated.key.id, secret: rotated.token }) })
    expect(fresh.status).toBe(200)
    expect(fresh.headers.get('sunset')).toBeNull()
    credentials = { keyId: rotated.key.id, secret: rotated.token }
  })

  if (name.startsWith('Express')) {
    it('uses the bytes a JSON parser kept, and reports a parser that kept none as a setup error', async () => {
      const body = '{"amount":7}'
      const parsed = await send('/parsed', { body, headers: signed('/parsed', body) })
      expect(parsed.status).toBe(200)
      expect(await parsed.json()).toEqual({ tenant: 'acme', parsed: { amount: 7 } })
      const consumed = await send('/consumed', { body, headers: signed('/consumed', body) })
      expect(consumed.status).toBe(500)
      expect(app.errors.some((error) => error instanceof TypeError && /consumed/.test(error.message))).toBe(true)
    })
  }
})

describe('signedRequest() options', () => {
  it('refuses bad options at construction', () => {
    const keyring = createKeyring({ hasher: new FastTestHasher(), signing: { masterKeys: [{ id: 'm', key: randomBytes(32) }] } })
    for (const factory of [expressSignedRequest, koaSignedRequest]) {
      expect(() => factory({ keyring, limit: 0 })).toThrow(/limit must be a positive integer/)
      expect(() => factory({ keyring: createKeyring() })).toThrow(/signing needs master keys/)
      expect(() => factory(undefined as never)).toThrow(TypeError)
    }
  })
})
