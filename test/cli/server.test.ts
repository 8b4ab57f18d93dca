import { request as httpRequest } from 'node:http'
import { createKeyring, FastTestHasher, ManualClock, MemoryStore, TOKEN_PATTERN, type Keyring } from '@keyrot/core'
import { RedisStore } from '@keyrot/redis'
import type { Express } from 'express'
import fc from 'fast-check'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { adminRoutes, createMetricsApp, createServer, listen, type RunningServer } from '../../packages/cli/src/index.js'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'
import { ensureBuilt, killChildren, runKeyrot, startServe } from './keyrot-bin.js'

interface Answer {
  status: number
  headers: Headers
  body: any
}

async function call(base: string, method: string, path: string, options: { token?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...options.headers }
  if (options.token) headers['authorization'] = `Bearer ${options.token}`
  let body: string | undefined
  if (options.raw !== undefined) body = options.raw
  else if (options.body !== undefined) body = JSON.stringify(options.body)
  if (body !== undefined && !Object.keys(headers).some((name) => name.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json'
  const response = await fetch(base + path, { method, headers, ...(body === undefined ? {} : { body }) })
  const text = await response.text()
  let parsed: unknown = text
  try {
    parsed = JSON.parse(text)
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, headers: response.headers, body: parsed }
}

describe('admin API (in process, MemoryStore)', () => {
  let keyring: Keyring
  let app: Express
  let running: RunningServer
  let base: string
  let admin: string
  let reader: string
  let clock: ManualClock

  beforeEach(async () => {
    clock = new ManualClock(Date.UTC(2030, 0, 1))
    // Abuse limits are core's to test; here they would turn the bad-input matrix into 429s.
    keyring = createKeyring({ store: new MemoryStore(), hasher: new FastTestHasher(), clock, rateLimit: false })
    admin = (await keyring.create({ tenantId: 'ops', name: 'admin', scopes: ['admin', 'admin:*'] })).token
    reader = (await keyring.create({ tenantId: 'acme', name: 'reader', scopes: ['read'] })).token
    app = createServer({ keyring })
    running = await listen(app, { port: 0, onClose: () => keyring.close() })
    base = running.url
  })

  afterEach(async () => {
    await running.close()
  })

  async function newKey(body: Record<string, unknown> = {}) {
    const answer = await call(base, 'POST', '/v1/keys', { token: admin, body: { tenantId: 'acme', name: 'ci', ...body } })
    expect(answer.status).toBe(201)
    return answer.body as { token: string; key: { id: string } }
  }

  describe('authentication', () => {
    it('no key: 401 with a bare Bearer challenge', async () => {
      const answer = await call(base, 'GET', '/v1/keys')
      expect(answer.status).toBe(401)
      expect(answer.body).toEqual({ error: { code: 'KEYROT_MISSING_KEY', message: 'No API key was sent.' } })
      expect(answer.headers.get('www-authenticate')).toBe('Bearer realm="keyrot-admin"')
    })

    it('a key without the admin scope: 403 insufficient_scope, nothing created', async () => {
      const answer = await call(base, 'POST', '/v1/keys', { token: reader, body: { tenantId: 'acme', name: 'sneaky', scopes: ['admin'] } })
      expect(answer.status).toBe(403)
      expect(answer.body.error.code).toBe('KEYROT_INSUFFICIENT_SCOPE')
      expect(answer.headers.get('www-authenticate')).toContain('error="insufficient_scope"')
      expect(answer.headers.get('www-authenticate')).toContain('scope="admin"')
      expect((await keyring.list({ tenantId: 'acme' })).map((key) => key.name)).toEqual(['reader'])
    })

    it('a wrong token: 401 invalid_token', async () => {
      const answer = await call(base, 'GET', '/v1/keys', { token: `${admin.slice(0, -8)}AAAAAAAA` })
      expect(answer.status).toBe(401)
      expect(answer.body.error.code).toBe('KEYROT_INVALID_KEY')
    })

    it('a revoked admin key: 401 KEYROT_KEY_REVOKED', async () => {
      const [adminKey] = await keyring.list({ tenantId: 'ops' })
      await keyring.revoke(adminKey!.id, { reason: 'test' })
      const answer = await call(base, 'GET', '/v1/keys', { token: admin })
      expect(answer.status).toBe(401)
      expect(answer.body.error.code).toBe('KEYROT_KEY_REVOKED')
    })

    it('an oversized body without a key is refused (401) before it is read', async () => {
      const answer = await call(base, 'POST', '/v1/keys', { raw: JSON.stringify({ name: 'x'.repeat(100_000) }) })
      expect(answer.status).toBe(401)
    })

    it('the sample route takes any valid key and says which one', async () => {
      const answer = await call(base, 'GET', '/v1/whoami', { token: reader })
      expect(answer.status).toBe(200)
      expect(answer.body).toMatchObject({ tenantId: 'acme', name: 'reader', scopes: ['read'], state: 'active' })
      expect((await call(base, 'GET', '/v1/whoami')).status).toBe(401)
    })
  })

  describe('bad input: 4xx with code and field, never 5xx', () => {
    const cases: [string, string, string, { body?: unknown; raw?: string; headers?: Record<string, string> }, number, string, string | undefined][] = [
      ['wrong type', 'POST', '/v1/keys', { body: { tenantId: 42, name: 'ci' } }, 400, 'KEYROT_INVALID_INPUT', 'tenantId'],
      ['wrong type in an array', 'POST', '/v1/keys', { body: { tenantId: 'acme', name: 'ci', scopes: ['read', 7] } }, 400, 'KEYROT_INVALID_INPUT', 'scopes.1'],
      ['scopes as a string', 'POST', '/v1/keys', { body: { tenantId: 'acme', name: 'ci', scopes: 'read' } }, 400, 'KEYROT_INVALID_INPUT', 'scopes'],
      ['unknown field', 'POST', '/v1/keys', { body: { tenantId: 'acme', name: 'ci', isAdmin: true } }, 400, 'KEYROT_INVALID_INPUT', 'isAdmin'],
      ['unknown nested field', 'POST', '/v1/keys', { body: { tenantId: 'acme', name: 'ci', rateLimit: { limit: 5, window: '1m', burst: 9 } } }, 400, 'KEYROT_INVALID_INPUT', 'rateLimit.burst'],
      ['missing field', 'POST', '/v1/keys', { body: { tenantId: 'acme' } }, 400, 'KEYROT_INVALID_INPUT', 'name'],
      ['tenant id the keyring refuses', 'POST', '/v1/keys', { body: { tenantId: 'a b', name: 'ci' } }, 400, 'KEYROT_INVALID_INPUT', 'tenantId'],
      ['scope the keyring refuses', 'POST', '/v1/keys', { body: { tenantId: 'acme', name: 'ci', scopes: ['no spaces'] } }, 400, 'KEYROT_INVALID_INPUT', 'scopes'],
      ['expiry in the past', 'POST', '/v1/keys', { body: { tenantId: 'acme', name: 'ci', expiresAt: '2000-01-01T00:00:00Z' } }, 400, 'KEYROT_INVALID_INPUT', 'expiresAt'],
      ['expiresAt and expiresIn', 'POST', '/v1/keys', { body: { tenantId: 'acme', name: 'ci', expiresAt: '2031-01-01T00:00:00Z', expiresIn: '1d' } }, 400, 'KEYROT_INVALID_INPUT', 'expiresIn'],
      ['malformed duration', 'POST', '/v1/keys', { body: { tenantId: 'acme', name: 'ci', expiresIn: 'soon' } }, 400, 'KEYROT_INVALID_INPUT', 'expiresIn'],
      ['negative rate limit', 'POST', '/v1/keys', { body: { tenantId: 'acme', name: 'ci', rateLimit: { limit: -1, window: '1m' } } }, 400, 'KEYROT_INVALID_INPUT', 'rateLimit.limit'],
      ['metadata as an array', 'POST', '/v1/keys', { body: { tenantId: 'acme', name: 'ci', metadata: [1] } }, 400, 'KEYROT_INVALID_INPUT', 'metadata'],
      ['malformed JSON', 'POST', '/v1/keys', { raw: '{"tenantId": "acme",' }, 400, 'KEYROT_INVALID_INPUT', 'body'],
      ['a JSON array', 'POST', '/v1/keys', { raw: '[1,2]' }, 400, 'KEYROT_INVALID_INPUT', 'body'],
      ['a JSON string', 'POST', '/v1/keys', { raw: '"acme"' }, 400, 'KEYROT_INVALID_INPUT', 'body'],
      ['no body', 'POST', '/v1/keys', {}, 400, 'KEYROT_INVALID_INPUT', 'body'],
      ['form encoding', 'POST', '/v1/keys', { raw: 'tenantId=acme&name=ci', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, 400, 'KEYROT_INVALID_INPUT', 'body'],
      ['huge body (1 MB)', 'POST', '/v1/keys', { raw: JSON.stringify({ tenantId: 'acme', name: 'ci', metadata: { blob: 'x'.repeat(1_000_000) } }) }, 413, 'KEYROT_PAYLOAD_TOO_LARGE', undefined],
      ['body just over 16kb', 'POST', '/v1/keys', { raw: JSON.stringify({ tenantId: 'acme', name: 'ci', metadata: { blob: 'x'.repeat(16 * 1024) } }) }, 413, 'KEYROT_PAYLOAD_TOO_LARGE', undefined],
      ['unsupported charset', 'POST', '/v1/keys', { raw: '{}', headers: { 'content-type': 'application/json; charset=latin1' } }, 400, 'KEYROT_INVALID_INPUT', 'body'],
      ['malformed key id', 'GET', '/v1/keys/not-a-key', {}, 400, 'KEYROT_INVALID_INPUT', 'id'],
      ['unknown key', 'GET', '/v1/keys/0000000000000000', {}, 404, 'KEYROT_KEY_NOT_FOUND', undefined],
      ['rotate an unknown key', 'POST', '/v1/keys/0000000000000000/rotate', { body: {} }, 404, 'KEYROT_KEY_NOT_FOUND', undefined],
      ['unknown query parameter', 'GET', '/v1/keys?tenant=acme&admin=1', {}, 400, 'KEYROT_INVALID_INPUT', 'admin'],
      ['repeated query parameter', 'GET', '/v1/keys?tenant=acme&tenant=ops', {}, 400, 'KEYROT_INVALID_INPUT', 'tenant'],
      ['bracket query parameter', 'GET', '/v1/keys?tenant[$ne]=x', {}, 400, 'KEYROT_INVALID_INPUT', 'tenant[$ne]'],
      ['unknown state', 'GET', '/v1/keys?state=sleeping', {}, 400, 'KEYROT_INVALID_INPUT', 'state'],
      ['limit not a number', 'GET', '/v1/keys?limit=many', {}, 400, 'KEYROT_INVALID_INPUT', 'limit'],
      ['expiring without a window', 'GET', '/v1/keys/expiring', {}, 400, 'KEYROT_INVALID_INPUT', 'within'],
      ['expiring with a bad window', 'GET', '/v1/keys/expiring?within=forever', {}, 400, 'KEYROT_INVALID_INPUT', 'within'],
      ['unused with a bad since', 'GET', '/v1/keys/unused?since=yesterday', {}, 400, 'KEYROT_INVALID_INPUT', 'since'],
      ['revoke without a reason', 'POST', '/v1/keys/0000000000000000/revoke', { body: {} }, 400, 'KEYROT_INVALID_INPUT', 'reason'],
      ['emergency without an incident', 'POST', '/v1/keys/0000000000000000/emergency-rotate', { body: { reason: 'x' } }, 400, 'KEYROT_INVALID_INPUT', 'incidentId'],
      ['expiry with two changes', 'POST', '/v1/keys/0000000000000000/expiry', { body: { extendBy: '1h', endNow: true } }, 400, 'KEYROT_INVALID_INPUT', 'body'],
      ['expiry endNow false', 'POST', '/v1/keys/0000000000000000/expiry', { body: { endNow: false } }, 400, 'KEYROT_INVALID_INPUT', 'endNow'],
      ['rotate with a bad grace period', 'POST', '/v1/keys/0000000000000000/rotate', { body: { gracePeriod: -5 } }, 400, 'KEYROT_INVALID_INPUT', 'gracePeriod'],
    ]

    it.each(cases)('%s: %s %s', async (_name, method, path, request, status, code, field) => {
      const answer = await call(base, method, path, { token: admin, ...request })
      expect(answer.status, JSON.stringify(answer.body)).toBe(status)
      expect(answer.headers.get('content-type')).toMatch(/^application\/json/)
      expect(answer.body.error.code).toBe(code)
      expect(typeof answer.body.error.message).toBe('string')
      if (field === undefined) expect(answer.body.error).not.toHaveProperty('field')
      else expect(answer.body.error.field).toBe(field)
    })

    it('a "__proto__" key in metadata pollutes nothing', async () => {
      const answer = await call(base, 'POST', '/v1/keys', { token: admin, raw: '{"tenantId":"acme","name":"ci","metadata":{"__proto__":{"polluted":true}}}' })
      expect([201, 400]).toContain(answer.status)
      expect(({} as Record<string, unknown>)['polluted']).toBeUndefined()
    })

    it('arbitrary JSON bodies get 201 or 400, never 5xx (property test, 150 runs)', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            fc.jsonValue(),
            fc.record(
              { tenantId: fc.oneof(fc.string(), fc.integer()), name: fc.oneof(fc.string(), fc.constant(null)), scopes: fc.array(fc.string()), expiresAt: fc.oneof(fc.integer(), fc.string()), rateLimit: fc.jsonValue() },
              { requiredKeys: [] },
            ),
          ),
          async (body) => {
            const answer = await call(base, 'POST', '/v1/keys', { token: admin, raw: JSON.stringify(body) })
            expect([201, 400, 413]).toContain(answer.status)
          },
        ),
        { numRuns: 150 },
      )
    }, 60_000)
  })

  describe('admin operations', () => {
    it('create, get, list, rotate, expiry, revoke, emergency-rotate', async () => {
      clock.advance(1) // newer than the keys made in beforeEach, so it lists first
      const created = await call(base, 'POST', '/v1/keys', { token: admin, body: { tenantId: 'acme', name: 'ci', scopes: ['read'], expiresIn: '90d', rateLimit: { limit: 100, window: '1m' } } })
      expect(created.status).toBe(201)
      expect(created.headers.get('cache-control')).toBe('no-store')
      expect(created.body.token).toMatch(new RegExp(`^${TOKEN_PATTERN.source}$`))
      expect(created.body.key).toMatchObject({ tenantId: 'acme', name: 'ci', expiresAt: clock.now() + 90 * 86_400_000, rateLimit: { limit: 100, windowMs: 60_000 } })
      expect(created.body.key).not.toHaveProperty('hash')
      const id = created.body.key.id as string

      expect((await call(base, 'GET', `/v1/keys/${id}`, { token: admin })).body.key.state).toBe('active')
      const listed = await call(base, 'GET', '/v1/keys?tenant=acme&state=active', { token: admin })
      expect(listed.body.keys.map((key: { id: string }) => key.id)).toEqual([id, expect.any(String)])

      const rotated = await call(base, 'POST', `/v1/keys/${id}/rotate`, { token: admin, body: { gracePeriod: '1h' } })
      expect(rotated.status).toBe(201)
      expect(rotated.body.previous).toMatchObject({ id, state: 'grace', expiresAt: clock.now() + 3_600_000 })
      const next = rotated.body.key.id as string

      const twice = await call(base, 'POST', `/v1/keys/${id}/rotate`, { token: admin })
      expect(twice.status).toBe(409)
      expect(twice.body.error.code).toBe('KEYROT_ALREADY_ROTATED')

      const expiring = await call(base, 'GET', '/v1/keys/expiring?within=2h', { token: admin })
      expect(expiring.body.keys.map((key: { id: string }) => key.id)).toEqual([id])

      const extended = await call(base, 'POST', `/v1/keys/${id}/expiry`, { token: admin, body: { extendBy: '1h' } })
      expect(extended.body.key.expiresAt).toBe(clock.now() + 2 * 3_600_000)
      const unsettable = await call(base, 'POST', `/v1/keys/${id}/expiry`, { token: admin, body: { expiresAt: null } })
      expect(unsettable.status).toBe(400)
      const ended = await call(base, 'POST', `/v1/keys/${id}/expiry`, { token: admin, body: { endNow: true } })
      expect(ended.body.key.expiresAt).toBe(clock.now())
      clock.advance(1)
      expect((await call(base, 'GET', `/v1/keys/${id}`, { token: admin })).body.key.state).toBe('expired')
      const set = await call(base, 'POST', `/v1/keys/${next}/expiry`, { token: admin, body: { expiresAt: '2031-01-01T00:00:00Z' } })
      expect(set.body.key.expiresAt).toBe(Date.UTC(2031, 0, 1))

      const emergency = await call(base, 'POST', `/v1/keys/${next}/emergency-rotate`, { token: admin, body: { incidentId: 'INC-42' } })
      expect(emergency.status).toBe(201)
      expect(emergency.body.revoked).toMatchObject({ id: next, state: 'revoked', incidentId: 'INC-42' })
      const successor = emergency.body.key.id as string
      expect((await call(base, 'POST', `/v1/keys/${next}/rotate`, { token: admin })).status).toBe(409)

      const revoked = await call(base, 'POST', `/v1/keys/${successor}/revoke`, { token: admin, body: { reason: 'retired' } })
      expect(revoked.status).toBe(200)
      expect(revoked.body.key).toMatchObject({ state: 'revoked', revokedReason: 'retired' })
      expect((await call(base, 'POST', `/v1/keys/${successor}/expiry`, { token: admin, body: { extendBy: '1h' } })).status).toBe(409)
    })

    it('unused?since lists keys not used since then', async () => {
      const used = await newKey({ name: 'used' })
      const idle = await newKey({ name: 'idle' })
      clock.advance(86_400_000)
      expect((await call(base, 'GET', '/v1/whoami', { token: used.token })).status).toBe(200)
      const unused = await call(base, 'GET', '/v1/keys/unused?since=12h&tenant=acme', { token: admin })
      expect(unused.status).toBe(200)
      const ids = unused.body.keys.map((key: { id: string }) => key.id)
      expect(ids).toContain(idle.key.id)
      expect(ids).not.toContain(used.key.id)
      const byDate = await call(base, 'GET', `/v1/keys/unused?since=${new Date(clock.now() - 3_600_000).toISOString()}&tenant=acme`, { token: admin })
      expect(byDate.body.keys.map((key: { id: string }) => key.id)).toEqual(ids)
    })
  })

  describe('service routes', () => {
    it('/openapi.json is an OpenAPI 3.1 document listing every route the app serves', async () => {
      const answer = await call(base, 'GET', '/openapi.json')
      expect(answer.status).toBe(200)
      const document = answer.body
      expect(document.openapi).toBe('3.1.0')
      const registered: string[] = []
      for (const layer of (app as unknown as { router: { stack: { route?: { path: string; methods: Record<string, boolean> } }[] } }).router.stack) {
        if (!layer.route) continue
        for (const method of Object.keys(layer.route.methods)) registered.push(`${method} ${layer.route.path.replace(/:(\w+)/g, '{$1}')}`)
      }
      const documented = Object.entries(document.paths as Record<string, Record<string, unknown>>).flatMap(([path, operations]) =>
        Object.keys(operations).map((method) => `${method} ${path}`),
      )
      expect(registered.length).toBeGreaterThanOrEqual(adminRoutes.length + 3)
      expect(documented.sort()).toEqual(registered.sort())
      for (const path of ['/v1/keys', '/v1/keys/{id}', '/v1/keys/{id}/rotate', '/v1/keys/{id}/revoke', '/v1/keys/{id}/emergency-rotate', '/v1/keys/{id}/expiry', '/v1/keys/expiring', '/v1/keys/unused', '/v1/signing-secrets', '/healthz', '/v1/whoami']) {
        expect(document.paths).toHaveProperty([path])
      }
      const create = document.paths['/v1/keys'].post
      expect(create.requestBody.content['application/json'].schema.additionalProperties).toBe(false)
      expect(create.requestBody.content['application/json'].schema.required).toEqual(['tenantId', 'name'])
      expect(create.responses['201'].content['application/json'].schema.properties.key.$ref).toBe('#/components/schemas/ApiKey')
      expect(document.components.schemas.ApiKey.properties).toHaveProperty('state')
      expect(JSON.stringify(document)).not.toContain('#/$defs/')
    })

    it('/healthz answers 200 when the store answers and 503 when it does not', async () => {
      expect((await call(base, 'GET', '/healthz')).body).toEqual({ status: 'ok' })
      const failing = createServer({ keyring, health: () => Promise.reject(new Error('down')), registry: new (await import('prom-client')).Registry() })
      const down = await listen(failing, { port: 0 })
      try {
        const answer = await call(down.url, 'GET', '/healthz')
        expect(answer.status).toBe(503)
        expect(answer.body).toEqual({ status: 'unavailable' })
      } finally {
        await down.close()
      }
    })

    it('/metrics is not on the API app; createMetricsApp serves the keyring metrics in the Prometheus format, no secrets in labels', async () => {
      const { Registry, collectDefaultMetrics } = await import('prom-client')
      const registry = new Registry()
      collectDefaultMetrics({ register: registry })
      const api = await listen(createServer({ keyring, registry }), { port: 0 })
      const metrics = await listen(createMetricsApp(registry), { port: 0 })
      try {
        await call(api.url, 'GET', '/v1/whoami', { token: reader })
        const hidden = await call(api.url, 'GET', '/metrics')
        expect(hidden.status).toBe(404)
        expect(hidden.body.error.code).toBe('KEYROT_ROUTE_NOT_FOUND')
        const answer = await call(metrics.url, 'GET', '/metrics')
        expect(answer.status).toBe(200)
        expect(answer.headers.get('content-type')).toMatch(/^text\/plain/)
        expect(answer.body).toMatch(/^keyrot_verifications_total\{result="ok"\} [1-9]/m)
        expect(answer.body).toContain('process_cpu_seconds_total')
        expect(answer.body).not.toContain(reader)
        expect((await call(metrics.url, 'GET', '/v1/keys', { token: admin })).status).toBe(404)
      } finally {
        await api.close()
        await metrics.close()
      }
    })

    it('unknown routes get a JSON 404', async () => {
      const answer = await call(base, 'GET', '/v2/nothing')
      expect(answer.status).toBe(404)
      expect(answer.body.error.code).toBe('KEYROT_ROUTE_NOT_FOUND')
    })
  })
})

describe('keyrot serve (spawned, real Redis)', () => {
  let redis: RedisServer
  let admin: string

  beforeAll(async () => {
    ensureBuilt()
    redis = await startRedisServer()
    const bootstrap = await runKeyrot(['create', '--redis', redis.url, '--tenant', 'ops', '--name', 'admin', '--scopes', 'admin,admin:*', '--json'])
    expect(bootstrap.code, bootstrap.stderr).toBe(0)
    admin = JSON.parse(bootstrap.stdout).token
  }, 240_000)

  afterAll(async () => {
    killChildren()
    await redis?.stop()
  })

  it('needs a store like the other commands', async () => {
    const result = await runKeyrot(['serve', '--port', '0'])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('keyrot serve needs a shared key store')
  })

  it('serves the admin API; SIGTERM finishes the request in flight, flushes usage counts and exits 0', async () => {
    const serve = await startServe(['--redis', redis.url])
    try {
      expect((await call(serve.url, 'GET', '/healthz')).body).toEqual({ status: 'ok' })
      const created = await call(serve.url, 'POST', '/v1/keys', { token: admin, body: { tenantId: 'acme', name: 'worker', scopes: ['read'] } })
      expect(created.status).toBe(201)
      const worker = created.body as { token: string; key: { id: string } }
      for (let i = 0; i < 5; i++) expect((await call(serve.url, 'GET', '/v1/whoami', { token: worker.token })).status).toBe(200)
      expect((await call(serve.url, 'GET', '/v1/keys/nope', { token: admin })).status).toBe(400)
      expect((await call(serve.url, 'GET', '/v1/keys', { token: worker.token })).status).toBe(403)

      // A request in flight: headers sent, body not finished.
      const body = JSON.stringify({ tenantId: 'acme', name: 'late' })
      const { port } = new URL(serve.url)
      const answer = new Promise<{ status: number; text: string }>((resolve, reject) => {
        const request = httpRequest(
          { host: '127.0.0.1', port: Number(port), method: 'POST', path: '/v1/keys', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
          (response) => {
            let text = ''
            response.setEncoding('utf8').on('data', (chunk: string) => (text += chunk))
            response.on('end', () => resolve({ status: response.statusCode ?? 0, text }))
          },
        )
        request.on('error', reject)
        request.write(body.slice(0, 10))
        setTimeout(() => {
          serve.child.kill('SIGTERM')
          setTimeout(async () => {
            try {
              // Still running (the request is not finished) but no longer accepting connections.
              expect(serve.child.exitCode).toBeNull()
              await expect(fetch(`${serve.url}/healthz`)).rejects.toThrow()
              request.end(body.slice(10))
            } catch (error) {
              reject(error)
            }
          }, 500)
        }, 500)
      })
      const late = await answer
      expect(late.status).toBe(201)
      expect(JSON.parse(late.text).key.name).toBe('late')
      expect(await serve.exited).toBe(0)
      expect(serve.output()).toContain('"event":"server.stopped"')
      expect(serve.output()).toContain(`"adminKeyId":"${admin.split('_')[2]}"`)
      for (const token of [admin, worker.token, JSON.parse(late.text).token]) expect(serve.output()).not.toContain(token)

      // The five uses were counted and flushed before exit.
      const inspected = await runKeyrot(['inspect', worker.key.id, '--json', '--redis', redis.url])
      expect(JSON.parse(inspected.stdout).key.usageCount).toBe(5)
    } finally {
      serve.child.kill('SIGKILL')
    }
  }, 60_000)

  it('/healthz turns 503 when Redis stops', async () => {
    const own = await startRedisServer()
    const serve = await startServe(['--redis', own.url])
    try {
      expect((await call(serve.url, 'GET', '/healthz')).status).toBe(200)
      await own.stop()
      const answer = await call(serve.url, 'GET', '/healthz')
      expect(answer.status).toBe(503)
      expect(answer.body).toEqual({ status: 'unavailable' })
      serve.child.kill('SIGTERM')
      expect(await serve.exited).toBe(0)
    } finally {
      serve.child.kill('SIGKILL')
      await own.stop()
    }
  }, 60_000)
})

describe('the admin API over a RedisStore (in process)', () => {
  let redis: RedisServer
  let client: Redis

  beforeAll(async () => {
    redis = await startRedisServer()
    client = new Redis(redis.url, { lazyConnect: true })
    await client.connect()
  }, 60_000)

  afterAll(async () => {
    client?.disconnect()
    await redis?.stop()
  })

  it('concurrent rotations of one key: exactly one 201, the others 409', async () => {
    const keyring = createKeyring({ store: new RedisStore({ client }), hasher: new FastTestHasher(), rateLimit: false })
    const running = await listen(createServer({ keyring }), { port: 0, onClose: () => keyring.close() })
    try {
      const admin = (await keyring.create({ tenantId: 'ops', name: 'admin', scopes: ['admin', 'admin:*'] })).token
      const target = (await keyring.create({ tenantId: 'acme', name: 'ci' })).key.id
      const answers = await Promise.all(Array.from({ length: 8 }, () => call(running.url, 'POST', `/v1/keys/${target}/rotate`, { token: admin, body: {} })))
      const statuses = answers.map((answer) => answer.status).sort()
      expect(statuses).toEqual([201, 409, 409, 409, 409, 409, 409, 409])
    } finally {
      await running.close()
    }
  })
})
