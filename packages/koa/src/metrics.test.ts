import { createKeyring, createMetrics, FastTestHasher } from '@keyrot/core'
import Koa3 from 'koa'
import Koa2 from 'koa2'
import { Gauge, Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { loopbackTestServers } from '../../../test/support/listen.js'
import { apiKeyAuth } from './api-key-auth.js'
import { metricsHandler } from './metrics.js'

const servers = loopbackTestServers()
const cleanups = servers.cleanups
const serve = (app: Koa3) => servers.serve(app.callback())

describe.each([
  ['Koa 3', Koa3],
  ['Koa 2', Koa2 as unknown as typeof Koa3],
])('metricsHandler on %s', (_name, KoaApp) => {
  it('answers /metrics with the registry and its content type, and passes other paths on', async () => {
    const keyring = createKeyring({ hasher: new FastTestHasher() })
    cleanups.push(() => keyring.close())
    const registry = new Registry()
    createMetrics({ keyring, registry })
    const app = new KoaApp()
    app.use(metricsHandler(registry, { path: '/metrics' }))
    app.use(apiKeyAuth({ keyring }))
    app.use((ctx) => {
      ctx.body = { ok: true }
    })
    const base = await serve(app)
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci' })

    expect((await fetch(`${base}/v1/things`, { headers: { 'x-api-key': token } })).status).toBe(200)
    expect((await fetch(`${base}/v1/things`, { headers: { 'x-api-key': 'sk_live_nope' } })).status).toBe(401)

    const response = await fetch(`${base}/metrics`)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe(registry.contentType)
    expect(response.headers.get('cache-control')).toBe('no-store')
    const text = await response.text()
    expect(text).toContain('keyrot_verifications_total{result="ok"} 1')
    expect(text).toContain('keyrot_verifications_total{result="KEYROT_INVALID_KEY"} 1')
    expect(text).not.toContain(token)
    // POST /metrics is not the exposition: it reaches the auth middleware.
    expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(401)
  })

  it('throws a failing collector to Koa', async () => {
    const registry = new Registry()
    new Gauge({
      name: 'broken_gauge',
      help: 'throws when collected',
      registers: [registry],
      collect() {
        throw new Error('collector failed')
      },
    })
    const errors: unknown[] = []
    const app = new KoaApp()
    app.silent = true
    app.on('error', (error: unknown) => errors.push(error))
    app.use(metricsHandler(registry))
    const base = await serve(app)
    expect((await fetch(`${base}/metrics`)).status).toBe(500)
    expect(errors).toMatchObject([{ message: 'collector failed' }])
  })
})

it('metricsHandler refuses a bad registry or path', () => {
  expect(() => metricsHandler({} as Registry)).toThrow(TypeError)
  expect(() => metricsHandler(new Registry(), { path: 'metrics' })).toThrow(/path/)
})
