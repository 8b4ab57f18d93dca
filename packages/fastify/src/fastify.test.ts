import { createKeyring, createMetrics, FastTestHasher } from '@keyrot/core'
import fastify5 from 'fastify'
import fastify4 from 'fastify4'
import { Gauge, Registry } from 'prom-client'
import { afterAll, describe, expect, it } from 'vitest'
import { apiKeyAuth } from './api-key-auth.js'
import { metricsHandler } from './metrics.js'

const keyring = createKeyring({ hasher: new FastTestHasher(), rateLimit: false })
afterAll(() => keyring.close())

describe.each([
  ['Fastify 5', fastify5],
  ['Fastify 4', fastify4 as unknown as typeof fastify5],
])('@keyrot/fastify on %s', (_name, createApp) => {
  it('with addHook: false, guards only the routes whose preHandler is fastify.verifyApiKey(), with their scopes', async () => {
    const app = createApp()
    await app.register(apiKeyAuth, { keyring, addHook: false })
    app.get('/open', async (request) => ({ apiKey: request.apiKey }))
    app.get('/admin', { preHandler: app.verifyApiKey({ scopes: ['admin'] }) }, async (request) => ({ id: request.apiKey?.id }))
    const reader = await keyring.create({ tenantId: 'acme', name: 'reader', scopes: ['read'] })
    const admin = await keyring.create({ tenantId: 'acme', name: 'admin', scopes: ['admin'] })
    const open = await app.inject({ url: '/open' })
    expect({ status: open.statusCode, body: open.json() }).toEqual({ status: 200, body: { apiKey: null } })
    const refused = await app.inject({ url: '/admin', headers: { authorization: `Bearer ${reader.token}` } })
    expect(refused.statusCode).toBe(403)
    expect(refused.headers['www-authenticate']).toMatch(/insufficient_scope.*scope="admin"$/)
    const passed = await app.inject({ url: '/admin', headers: { authorization: `Bearer ${admin.token}` } })
    expect({ status: passed.statusCode, body: passed.json() }).toEqual({ status: 200, body: { id: admin.key.id } })
    await app.close()
  })

  it("adds a route's config.keyrot scopes to the plugin's, and config.keyrot: false makes a route public", async () => {
    const app = createApp()
    await app.register(apiKeyAuth, { keyring, scopes: ['read'] })
    app.get('/health', { config: { keyrot: false } }, async () => 'ok')
    app.get('/things', async (request) => ({ tenant: request.apiKey?.tenantId }))
    app.get('/admin', { config: { keyrot: { scopes: ['admin'] } } }, async () => 'admin')
    const reader = await keyring.create({ tenantId: 'acme', name: 'reader', scopes: ['read'] })
    const adminOnly = await keyring.create({ tenantId: 'acme', name: 'admin only', scopes: ['admin'] })
    const both = await keyring.create({ tenantId: 'acme', name: 'both', scopes: ['read', 'admin'] })
    const status = async (url: string, token?: string) =>
      (await app.inject({ url, headers: token ? { authorization: `Bearer ${token}` } : {} })).statusCode
    expect(await status('/health')).toBe(200)
    expect(await status('/things')).toBe(401)
    expect(await status('/things', reader.token)).toBe(200)
    expect(await status('/things', adminOnly.token)).toBe(403)
    expect(await status('/admin', reader.token)).toBe(403)
    expect(await status('/admin', adminOnly.token)).toBe(403)
    expect(await status('/admin', both.token)).toBe(200)
    await app.close()
  })

  it('metricsHandler serves the registry with its content type, and a failing collector reaches the error handler', async () => {
    const registry = new Registry()
    createMetrics({ keyring, registry })
    const app = createApp()
    app.get('/metrics', metricsHandler(registry))
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
    app.get('/broken', metricsHandler(broken))
    app.setErrorHandler((error, _request, reply) => {
      errors.push(error)
      return reply.code(500).send({})
    })
    const response = await app.inject({ url: '/metrics' })
    expect(response.statusCode).toBe(200)
    expect(response.headers['content-type']).toBe(registry.contentType)
    expect(response.headers['cache-control']).toBe('no-store')
    expect(response.body).toContain('keyrot_verifications_total')
    expect((await app.inject({ url: '/broken' })).statusCode).toBe(500)
    expect(errors).toMatchObject([{ message: 'collector failed' }])
    await app.close()
  })
})

it('metricsHandler refuses something that is not a registry', () => {
  expect(() => metricsHandler({} as Registry)).toThrow(TypeError)
})
