import { createKeyring, createMetrics, FastTestHasher } from '@keyrot/core'
import { Hono } from 'hono'
import { Gauge, Registry } from 'prom-client'
import { afterAll, expect, it } from 'vitest'
import { apiKeyAuth, type ApiKeyEnv } from './api-key-auth.js'
import { metricsHandler } from './metrics.js'

const keyring = createKeyring({ hasher: new FastTestHasher(), rateLimit: false })
afterAll(() => keyring.close())

it('works without @hono/node-server too (app.request): headers from the Fetch request, no client IP unless clientIp says', async () => {
  const seen: Array<string | undefined> = []
  const stop = keyring.on('verification.succeeded', (event) => seen.push(event.clientIp))
  // `app.use()` does not re-type `app`: the Env says what the middleware sets.
  const app = new Hono<ApiKeyEnv>()
  app.use('/v1/*', apiKeyAuth({ keyring }))
  app.use('/v2/*', apiKeyAuth({ keyring, clientIp: (c) => c.req.header('x-real-ip') }))
  app.get('/v1/things', (c) => c.json({ tenant: c.get('apiKey').tenantId }))
  app.get('/v2/things', (c) => c.json({ tenant: c.get('apiKey').tenantId }))
  const { token } = await keyring.create({ tenantId: 'acme', name: 'ci' })
  expect((await app.request('/v1/things')).status).toBe(401)
  const ok = await app.request('/v1/things', { headers: { 'x-api-key': token } })
  expect({ status: ok.status, body: await ok.json() }).toEqual({ status: 200, body: { tenant: 'acme' } })
  expect((await app.request('/v2/things', { headers: { authorization: `Bearer ${token}`, 'x-real-ip': '198.51.100.4' } })).status).toBe(200)
  stop()
  expect(seen).toEqual([undefined, '198.51.100.4'])
})

it('metricsHandler serves the registry with its content type, and a failing collector reaches app.onError', async () => {
  const registry = new Registry()
  createMetrics({ keyring, registry })
  const broken = new Registry()
  new Gauge({
    name: 'broken_gauge',
    help: 'throws when collected',
    registers: [broken],
    collect() {
      throw new Error('collector failed')
    },
  })
  const errors: unknown[] = []
  const app = new Hono()
  app.onError((error, c) => {
    errors.push(error)
    return c.json({}, 500)
  })
  app.get('/metrics', metricsHandler(registry))
  app.get('/broken', metricsHandler(broken))
  const response = await app.request('/metrics')
  expect(response.status).toBe(200)
  expect(response.headers.get('content-type')).toBe(registry.contentType)
  expect(response.headers.get('cache-control')).toBe('no-store')
  expect(await response.text()).toContain('keyrot_verifications_total')
  expect((await app.request('/broken')).status).toBe(500)
  expect(errors).toMatchObject([{ message: 'collector failed' }])
  expect(() => metricsHandler({} as Registry)).toThrow(TypeError)
})
