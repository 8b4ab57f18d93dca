import { getRequestListener } from '@hono/node-server'
import { createKeyring, FastTestHasher, type Keyring } from '@keyrot/core'
import { apiKeyAuth as expressAuth, signedRequest as expressSigned } from '@keyrot/express'
import { apiKeyAuth as fastifyAuth, apiKeyHook as fastifyHook } from '@keyrot/fastify'
import { apiKeyAuth as honoAuth } from '@keyrot/hono'
import { apiKeyAuth as koaAuth, signedRequest as koaSigned } from '@keyrot/koa'
import express from 'express'
import fastify from 'fastify'
import { Hono } from 'hono'
import Koa from 'koa'
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest'
import { listen, type RunningApp } from '../support/listen.js'
import { get, jsonOf } from './client.js'

// Every adapter checks its options when it is built, as keyring.create checks
// its input: a mistake throws a TypeError naming the option at start-up,
// rather than answering 403 (or letting everything through) on every request.

const keyring: Keyring = createKeyring({ hasher: new FastTestHasher() })
afterAll(() => keyring.close())

type Factory = (options: unknown) => unknown
const factories: Array<[string, Factory]> = [
  ['express', (o) => expressAuth(o as never)],
  ['koa', (o) => koaAuth(o as never)],
  ['hono', (o) => honoAuth(o as never)],
  ['fastify apiKeyHook', (o) => fastifyHook(o as never)],
  [
    'fastify plugin',
    // Fastify runs a plugin when the app is readied: the error surfaces there.
    async (o) => {
      const app = fastify()
      try {
        await app.register(fastifyAuth, o as never)
        return await app.ready()
      } finally {
        await app.close()
      }
    },
  ],
]

const bad: Array<[string, Record<string, unknown>, RegExp]> = [
  ["scopes: 'read' (a string, not an array)", { scopes: 'read' }, /scopes must be an array.*\["read"\]/],
  ["scopes: ''", { scopes: '' }, /scopes must be an array/],
  ["scopes: ['']", { scopes: [''] }, /scopes each scope must be 1-64 characters/],
  ["scopes: ['read all']", { scopes: ['read all'] }, /scopes each scope/],
  ['scopes: [1]', { scopes: [1] }, /scopes each scope/],
  ["clientIp: '127.0.0.1'", { clientIp: '127.0.0.1' }, /clientIp must be a function/],
  ["realm: ''", { realm: '' }, /realm must be 1-128 printable ASCII/],
  ["realm: 'caf\u00e9'", { realm: 'caf\u00e9' }, /realm must be/],
]

describe.each(factories)('%s refuses impossible options at construction', (_name, build) => {
  it.each(bad)('%s', async (_label, extra, message) => {
    await expect(async () => build({ keyring, ...extra })).rejects.toThrow(TypeError)
    await expect(async () => build({ keyring, ...extra })).rejects.toThrow(message)
  })

  it('without a keyring', async () => {
    await expect(async () => build({})).rejects.toThrow(/needs \{ keyring \}/)
    await expect(async () => build({ keyring: {} })).rejects.toThrow(TypeError)
  })

  it('accepts good options', async () => {
    await expect((async () => build({ keyring, scopes: ['read', 'write'], realm: 'my api', clientIp: () => '127.0.0.1' }))()).resolves.toBeDefined()
  })
})

it("refuses a route's config.keyrot with a string for scopes when the route is added", async () => {
  const app = fastify()
  await app.register(fastifyAuth, { keyring })
  expect(() => app.get('/admin', { config: { keyrot: { scopes: 'admin' as never } } }, () => 'ok')).toThrow(
    /config\.keyrot of GET \/admin scopes must be an array/,
  )
  await app.close()
})

describe('the factory mounted instead of its result answers 500 JSON and logs once', () => {
  const running: RunningApp[] = []
  afterEach(async () => {
    for (const app of running.splice(0)) await app.close()
    vi.restoreAllMocks()
  })

  const apps: Array<[string, string, () => Promise<RunningApp>]> = [
    [
      'express: app.get(path, apiKeyAuth, handler)',
      'apiKeyAuth({ keyring })',
      () => {
        const app = express()
        app.get('/x', expressAuth as never, (_req, res) => {
          res.json({ reached: true })
        })
        return listen(app, [])
      },
    ],
    [
      'express: app.post(path, signedRequest, handler)',
      'signedRequest({ keyring })',
      () => {
        const app = express()
        app.get('/x', expressSigned as never, (_req, res) => {
          res.json({ reached: true })
        })
        return listen(app, [])
      },
    ],
    [
      'koa: app.use(apiKeyAuth)',
      'apiKeyAuth({ keyring })',
      () => {
        const app = new Koa()
        app.use(koaAuth as never)
        app.use((ctx) => {
          ctx.body = { reached: true }
        })
        return listen(app.callback(), [])
      },
    ],
    [
      'koa: app.use(signedRequest)',
      'signedRequest({ keyring })',
      () => {
        const app = new Koa()
        app.use(koaSigned as never)
        return listen(app.callback(), [])
      },
    ],
    [
      'hono: app.use(apiKeyAuth)',
      'apiKeyAuth({ keyring })',
      () => {
        const app = new Hono()
        app.use(honoAuth as never)
        app.get('/x', (c) => c.json({ reached: true }))
        return listen(getRequestListener(app.fetch), [])
      },
    ],
    [
      'fastify: preHandler: fastify.verifyApiKey',
      'fastify.verifyApiKey({ scopes })',
      async () => {
        const app = fastify()
        await app.register(fastifyAuth, { keyring, addHook: false })
        app.get('/x', { preHandler: app.verifyApiKey as never }, () => ({ reached: true }))
        await app.ready()
        return listen((req, res) => app.routing(req, res), [])
      },
    ],
    [
      'fastify: preHandler: apiKeyHook',
      'apiKeyHook({ keyring })',
      async () => {
        const app = fastify()
        app.get('/x', { preHandler: fastifyHook as never }, () => ({ reached: true }))
        await app.ready()
        return listen((req, res) => app.routing(req, res), [])
      },
    ],
    [
      'fastify: preHandler: apiKeyAuth (the plugin)',
      'fastify.register(apiKeyAuth, { keyring })',
      async () => {
        const app = fastify()
        app.get('/x', { preHandler: fastifyAuth as never }, () => ({ reached: true }))
        await app.ready()
        return listen((req, res) => app.routing(req, res), [])
      },
    ],
  ]

  it.each(apps)('%s', async (_name, fix, start) => {
    const logged = vi.spyOn(console, 'error').mockImplementation(() => undefined)
    const app = await start()
    running.push(app)
    for (let i = 0; i < 2; i++) {
      const response = await get(app.port, '/x')
      expect(response.status).toBe(500)
      expect(response.headers['content-type']).toMatch(/^application\/json/)
      const body = jsonOf(response) as { error: { code: string; message: string } }
      expect(body.error.code).toBe('KEYROT_MIDDLEWARE_MISUSE')
      expect(body.error.message).toContain(`call it, as ${fix}`)
    }
    // Once per factory and process: an earlier case may already have logged this factory's misuse.
    expect(logged.mock.calls.filter(([line]) => String(line).includes(`as ${fix}`)).length).toBeLessThanOrEqual(1)
  })
})
