import { createKeyring, createMetrics, FastTestHasher } from '@keyrot/core'
import express5 from 'express'
import express4 from 'express4'
import type { ErrorRequestHandler } from 'express'
import { Gauge, Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { loopbackTestServers } from '../../../test/support/listen.js'
import { apiKeyAuth } from './api-key-auth.js'
import { metricsHandler } from './metrics.js'

const { serve, cleanups } = loopbackTestServers()

describe.each([
  ['Express 5', express5],
  ['Express 4', express4 as unknown as typeof express5],
])('metricsHandler on %s', (_name, createApp) => {
  it('serves the registry with its content type, counting the requests the middleware saw', async () => {
    const keyring = createKeyring({ hasher: new FastTestHasher() })
    cleanups.push(() => keyring.close())
    const registry = new Registry()
    createMetrics({ keyring, registry })
    const app = createApp()
    app.get('/metrics', metricsHandler(registry))
    app.get('/v1/things', apiKeyAuth({ keyring }), (_req, res) => {
      res.json({ ok: true })
    })
    const base = await serve(app)
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci' })

    expect((await fetch(`${base}/v1/things`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200)
    expect((await fetch(`${base}/v1/things`)).status).toBe(401)

    const response = await fetch(`${base}/metrics`)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe(registry.contentType)
    expect(response.headers.get('cache-control')).toBe('no-store')
    const text = await response.text()
    expect(text).toContain('keyrot_verifications_total{result="ok"} 1')
    expect(text).toContain('keyrot_verifications_total{result="KEYROT_MISSING_KEY"} 1')
    expect(text).not.toContain(token)
  })

  it('passes a failing collector to the error handler', async () => {
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
    const app = createApp()
    app.get('/metrics', metricsHandler(registry))
    const onError: ErrorRequestHandler = (error, _req, res, _next) => {
      errors.push(error)
      res.status(500).end()
    }
    app.use(onError)
    const base = await serve(app)
    expect((await fetch(`${base}/metrics`)).status).toBe(500)
    expect(errors).toMatchObject([{ message: 'collector failed' }])
  })
})

it('metricsHandler refuses something that is not a registry', () => {
  expect(() => metricsHandler({} as Registry)).toThrow(TypeError)
})
