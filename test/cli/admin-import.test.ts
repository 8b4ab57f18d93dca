import { createHash, randomBytes } from 'node:crypto'
import { createKeyring, FastTestHasher, MemoryStore, type Keyring } from '@keyrot/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createServer, listen, type RunningServer } from '../../packages/cli/src/index.js'

// `POST /v1/keys/import` of `keyrot serve`, in process over a real socket:
// a plaintext import and a legacy SHA-256 import verify in their own format,
// a second import is idempotent, the token never comes back, bad input is a
// 400, another tenant is refused, and a server without an import key says 501.

let keyring: Keyring
let running: RunningServer
let base: string
let opsAdmin: string
let acmeAdmin: string

beforeAll(async () => {
  keyring = createKeyring({ store: new MemoryStore(), hasher: new FastTestHasher(), rateLimit: false, importKey: randomBytes(32), importedPrefixes: ['old_'] })
  opsAdmin = (await keyring.create({ tenantId: 'ops', name: 'admin', scopes: ['admin', 'admin:*'] })).token
  acmeAdmin = (await keyring.create({ tenantId: 'acme', name: 'acme-admin', scopes: ['admin'] })).token
  running = await listen(createServer({ keyring, dashboard: false }), { port: 0, onClose: () => keyring.close() })
  base = running.url
})

afterAll(async () => {
  await running?.close()
})

async function call(url: string, token: string, body: unknown): Promise<{ status: number; text: string; body: any }> {
  const response = await fetch(`${url}/v1/keys/import`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  const text = await response.text()
  return { status: response.status, text, body: JSON.parse(text) }
}

describe('admin API: POST /v1/keys/import', () => {
  it('imports a plaintext token (201), then again idempotently (200), and never answers with the token', async () => {
    const token = `old_${randomBytes(18).toString('hex')}`
    const first = await call(base, opsAdmin, { tenantId: 'acme', name: 'ci', scopes: ['read'], token })
    expect(first.status).toBe(201)
    expect(first.body.created).toBe(true)
    expect(first.body.key).toMatchObject({ tenantId: 'acme', name: 'ci', scopes: ['read'], state: 'active' })
    expect(first.text).not.toContain(token)
    const again = await call(base, opsAdmin, { tenantId: 'acme', name: 'ci', scopes: ['read'], token })
    expect(again.status).toBe(200)
    expect(again.body).toMatchObject({ created: false, key: { id: first.body.key.id } })
    const verified = await keyring.verify(token, { scopes: ['read'] })
    expect(verified.ok && verified.key.id).toBe(first.body.key.id)
  })

  it('imports a legacy SHA-256 whose token then verifies unchanged', async () => {
    const token = `old_${randomBytes(18).toString('hex')}`
    const sha256 = createHash('sha256').update(token).digest('hex')
    const imported = await call(base, acmeAdmin, { tenantId: 'acme', name: 'legacy', legacy: { sha256, tokenPrefix: 'old_' } })
    expect(imported.status).toBe(201)
    expect(imported.text).not.toContain(sha256)
    const verified = await keyring.verify(token)
    expect(verified.ok && verified.key.id).toBe(imported.body.key.id)
  })

  it('answers bad input with 400, another tenant with 403, and never a 5xx', async () => {
    const token = `old_${randomBytes(18).toString('hex')}`
    const both = await call(base, opsAdmin, { tenantId: 'acme', name: 'x', token, legacy: { sha256: 'a'.repeat(64), tokenPrefix: 'old_' } })
    expect(both.status).toBe(400)
    expect(both.body.error.code).toBe('KEYROT_INVALID_INPUT')
    expect((await call(base, opsAdmin, { tenantId: 'acme', name: 'x' })).status).toBe(400)
    const badHash = await call(base, opsAdmin, { tenantId: 'acme', name: 'x', legacy: { sha256: 'zz', tokenPrefix: 'old_' } })
    expect(badHash.status).toBe(400)
    const wrongPrefix = await call(base, opsAdmin, { tenantId: 'acme', name: 'x', token: `new_${randomBytes(8).toString('hex')}` })
    expect(wrongPrefix.status).toBe(400)
    expect(wrongPrefix.text).not.toContain('new_')
    const otherTenant = await call(base, acmeAdmin, { tenantId: 'ops', name: 'x', token })
    expect(otherTenant.status).toBe(403)
    expect(otherTenant.body.error.code).toBe('KEYROT_ADMIN_TENANT_FORBIDDEN')
  })

  it('answers 501 KEYROT_IMPORT_NOT_CONFIGURED on a server without imported prefixes', async () => {
    const plain = createKeyring({ store: new MemoryStore(), hasher: new FastTestHasher(), rateLimit: false })
    const admin = (await plain.create({ tenantId: 'ops', name: 'admin', scopes: ['admin', 'admin:*'] })).token
    const server = await listen(createServer({ keyring: plain, dashboard: false }), { port: 0, onClose: () => plain.close() })
    try {
      const refused = await call(server.url, admin, { tenantId: 'acme', name: 'x', token: 'old_abcdefabcdef' })
      expect(refused.status).toBe(501)
      expect(refused.body.error.code).toBe('KEYROT_IMPORT_NOT_CONFIGURED')
    } finally {
      await server.close()
    }
  })
})
