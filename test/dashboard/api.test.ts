import { readdirSync, readFileSync } from 'node:fs'
import { createKeyring, FastTestHasher, MemoryStore } from '@keyrot/core'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { DASHBOARD_CSP } from '../../packages/cli/src/dashboard/index.js'
import { createServer, listen } from '../../packages/cli/src/index.js'
import { startDashboardServer, type DashboardServer } from './server.js'

const STATIC = new URL('../../packages/cli/src/dashboard/static/', import.meta.url)

async function get(url: string, token?: string, headers: Record<string, string> = {}) {
  const response = await fetch(url, { headers: { ...headers, ...(token ? { authorization: `Bearer ${token}` } : {}) }, redirect: 'manual' })
  const text = await response.text()
  let body: any = text
  try {
    body = JSON.parse(text)
  } catch {
    // not JSON
  }
  return { status: response.status, headers: response.headers, body }
}

describe('dashboard page and usage routes', () => {
  let server: DashboardServer

  beforeEach(async () => {
    server = await startDashboardServer()
  })

  afterEach(async () => {
    await server.close()
  })

  describe('the page', () => {
    it('/dashboard redirects to /dashboard/ (relative, so a path prefix keeps working)', async () => {
      const answer = await get(`${server.base}/dashboard`)
      expect(answer.status).toBe(302)
      expect(answer.headers.get('location')).toBe('dashboard/')
    })

    it('is served with a strict CSP and no caching surprises; its assets have their types', async () => {
      const page = await get(server.page)
      expect(page.status).toBe(200)
      expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8')
      expect(page.headers.get('content-security-policy')).toBe(DASHBOARD_CSP)
      expect(DASHBOARD_CSP).toContain("default-src 'self'")
      expect(DASHBOARD_CSP).toContain("frame-ancestors 'none'")
      expect(page.headers.get('x-content-type-options')).toBe('nosniff')
      expect(page.headers.get('referrer-policy')).toBe('no-referrer')
      expect(page.headers.get('x-frame-options')).toBe('DENY')
      expect(page.body).toContain('<script type="module" src="app.js"></script>')

      const script = await get(`${server.page}app.js`)
      expect(script.status).toBe(200)
      expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8')
      expect(script.headers.get('content-security-policy')).toBe(DASHBOARD_CSP)
      const css = await get(`${server.page}style.css`)
      expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8')
    })

    it('answers 304 to a revalidation with the same ETag', async () => {
      const first = await get(`${server.page}app.js`)
      const etag = first.headers.get('etag')
      expect(etag).toMatch(/^"[\w-]{27}"$/)
      const again = await get(`${server.page}app.js`, undefined, { 'if-none-match': etag as string })
      expect(again.status).toBe(304)
    })

    it('serves only its own files: anything else under /dashboard/ is the JSON 404', async () => {
      for (const path of ['nope.js', '..%2Fpackage.json', 'app.js.map']) {
        const answer = await get(`${server.page}${path}`)
        expect(answer.status, path).toBe(404)
        expect(answer.body.error.code).toBe('KEYROT_ROUTE_NOT_FOUND')
      }
    })

    it('ships no inline script or style and loads nothing from another origin', () => {
      const files = readdirSync(STATIC)
      expect(files.sort()).toEqual(['app.js', 'favicon.svg', 'index.html', 'style.css'])
      for (const name of files) {
        // The SVG namespace is a name, not a request.
        const text = readFileSync(new URL(name, STATIC), 'utf8').replaceAll('xmlns="http://www.w3.org/2000/svg"', '')
        expect(text, name).not.toMatch(/https?:\/\/|\/\/[a-z0-9.-]+\.[a-z]{2,}\//i)
        expect(text, name).not.toMatch(/@import|url\(/)
      }
      const html = readFileSync(new URL('index.html', STATIC), 'utf8')
      expect(html.match(/<script\b[^>]*>/g)).toEqual(['<script type="module" src="app.js">'])
      expect(html).not.toMatch(/\sstyle=|\son[a-z]+=/i)
      const script = readFileSync(new URL('app.js', STATIC), 'utf8')
      // The admin key is kept in sessionStorage only: never localStorage, a cookie or a URL.
      expect(script).not.toMatch(/localStorage|document\.cookie/)
      expect(script).toContain('sessionStorage.setItem(STORAGE_KEY, key)')
    })
  })

  describe('GET /v1/keys/:id/usage and /v1/keys/:id/grace-clients', () => {
    it('count the requests this server verified, per minute, and list the clients still on a key in grace', async () => {
      const { keyring, adminToken } = server
      const issued = await keyring.create({ tenantId: 'acme', name: 'billing' })
      for (let i = 0; i < 3; i++) expect((await get(`${server.base}/v1/whoami`, issued.token)).status).toBe(200)
      const rotated = await keyring.rotate(issued.key.id, { gracePeriod: '1h' })
      expect((await get(`${server.base}/v1/whoami`, issued.token, { 'user-agent': 'legacy-billing/1.0' })).status).toBe(200)
      expect((await get(`${server.base}/v1/whoami`, rotated.token, { 'user-agent': 'billing/2.0' })).status).toBe(200)

      const usage = await get(`${server.base}/v1/keys/${issued.key.id}/usage?minutes=5`, adminToken)
      expect(usage.status).toBe(200)
      expect(usage.headers.get('cache-control')).toBe('no-store')
      expect(usage.body).toMatchObject({ keyId: issued.key.id, bucketMs: 60_000, scope: 'process' })
      expect(usage.body.counts).toHaveLength(5)
      // The requests may straddle a minute boundary: the last two minutes hold them all.
      expect(usage.body.counts.reduce((a: number, b: number) => a + b, 0)).toBe(4)
      expect(usage.body.counts.slice(0, 3)).toEqual([0, 0, 0])
      expect(usage.body.from % 60_000).toBe(0)
      expect(typeof usage.body.now).toBe('number')

      const defaultWindow = await get(`${server.base}/v1/keys/${rotated.key.id}/usage`, adminToken)
      expect(defaultWindow.body.counts).toHaveLength(60)
      expect(defaultWindow.body.counts.reduce((a: number, b: number) => a + b, 0)).toBe(1)

      const clients = await get(`${server.base}/v1/keys/${issued.key.id}/grace-clients`, adminToken)
      expect(clients.status).toBe(200)
      expect(clients.body.clients).toHaveLength(1)
      expect(clients.body.clients[0]).toMatchObject({ clientIp: '127.0.0.1', userAgent: 'legacy-billing/1.0', requests: 1 })
      expect(clients.body.omittedClients).toBe(0)
      expect((await get(`${server.base}/v1/keys/${rotated.key.id}/grace-clients`, adminToken)).body.clients).toEqual([])
    })

    it('need an admin key: 401 without one, 403 with a key lacking the admin scope', async () => {
      const reader = await server.keyring.create({ tenantId: 'acme', name: 'reader', scopes: ['read'] })
      for (const path of ['usage', 'grace-clients']) {
        const none = await get(`${server.base}/v1/keys/${reader.key.id}/${path}`)
        expect(none.status).toBe(401)
        expect(none.body.error.code).toBe('KEYROT_MISSING_KEY')
        const forbidden = await get(`${server.base}/v1/keys/${reader.key.id}/${path}`, reader.token)
        expect(forbidden.status).toBe(403)
        expect(forbidden.body.error.code).toBe('KEYROT_INSUFFICIENT_SCOPE')
      }
    })

    it('answer bad input with a 400 naming the field, and an unknown key with a 404', async () => {
      const { adminToken, adminKeyId } = server
      for (const minutes of ['abc', '0', '1441', '-5', '1.5', '']) {
        const answer = await get(`${server.base}/v1/keys/${adminKeyId}/usage?minutes=${minutes}`, adminToken)
        expect(answer.status, minutes).toBe(400)
        expect(answer.body.error).toEqual({
          code: 'KEYROT_INVALID_INPUT',
          field: 'minutes',
          message: 'Invalid minutes: must be a whole number of minutes from 1 to 1440',
        })
      }
      const unknownParameter = await get(`${server.base}/v1/keys/${adminKeyId}/grace-clients?since=1h`, adminToken)
      expect(unknownParameter.status).toBe(400)
      expect(unknownParameter.body.error.field).toBe('since')
      const badId = await get(`${server.base}/v1/keys/not-a-key/usage`, adminToken)
      expect(badId.status).toBe(400)
      expect(badId.body.error.field).toBe('id')
      for (const path of ['usage', 'grace-clients']) {
        const missing = await get(`${server.base}/v1/keys/0000000000000000/${path}`, adminToken)
        expect(missing.status).toBe(404)
        expect(missing.body.error.code).toBe('KEYROT_KEY_NOT_FOUND')
      }
    })

    it('are in the OpenAPI document, as admin operations with their response schemas', async () => {
      const document = (await get(`${server.base}/openapi.json`)).body
      const usage = document.paths['/v1/keys/{id}/usage'].get
      expect(usage.operationId).toBe('getKeyUsage')
      expect(usage.tags).toEqual(['admin'])
      expect(usage.parameters.map((parameter: { name: string; in: string }) => `${parameter.in}:${parameter.name}`)).toEqual(['path:id', 'query:minutes'])
      expect(usage.responses['200'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/KeyUsagePerMinute' })
      const clients = document.paths['/v1/keys/{id}/grace-clients'].get
      expect(clients.operationId).toBe('getGraceClients')
      expect(Object.keys(clients.responses).sort()).toEqual(['200', '400', '401', '403', '404', '429', '503'])
      expect(document.components.schemas.GraceClients.properties.clients.type).toBe('array')
    })
  })

  it('createServer({ dashboard: false }) serves neither the page nor its usage routes', async () => {
    const keyring = createKeyring({ store: new MemoryStore(), hasher: new FastTestHasher(), rateLimit: false })
    const admin = await keyring.create({ tenantId: 'ops', name: 'admin', scopes: ['admin'] })
    const running = await listen(createServer({ keyring, dashboard: false }), { port: 0, onClose: () => keyring.close() })
    try {
      expect((await get(`${running.url}/dashboard/`)).status).toBe(404)
      expect((await get(`${running.url}/v1/keys/${admin.key.id}/usage`, admin.token)).status).toBe(404)
      expect((await get(`${running.url}/openapi.json`)).body.paths['/v1/keys/{id}/usage']).toBeUndefined()
    } finally {
      await running.close()
    }
  })
})
