import { createKeyring, FastTestHasher, MemoryStore, type Keyring } from '@keyrot/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createServer, listen, type RunningServer } from '../../packages/cli/src/index.js'

// The admin API of `keyrot serve` in process, over a real socket: a key's IP
// allowlist at creation, shown, changed, lifted, and refused when invalid.

let keyring: Keyring
let running: RunningServer
let admin: string
let base: string

beforeAll(async () => {
  keyring = createKeyring({ store: new MemoryStore(), hasher: new FastTestHasher(), rateLimit: false })
  admin = (await keyring.create({ tenantId: 'ops', name: 'admin', scopes: ['admin', 'admin:*'] })).token
  running = await listen(createServer({ keyring, dashboard: false }), { port: 0, onClose: () => keyring.close() })
  base = running.url
})

afterAll(async () => {
  await running?.close()
})

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${admin}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  return { status: response.status, body: await response.json() }
}

describe('admin API: allowedIps', () => {
  it('creates a key with a list, shows it, changes it and lifts it', async () => {
    const created = await call('POST', '/v1/keys', { tenantId: 'acme', name: 'ci', allowedIps: ['203.0.113.0/24', '2001:db8::/32'] })
    expect(created.status).toBe(201)
    expect(created.body.key.allowedIps).toEqual(['203.0.113.0/24', '2001:db8::/32'])
    const id = created.body.key.id as string
    expect((await call('GET', `/v1/keys/${id}`)).body.key.allowedIps).toEqual(['203.0.113.0/24', '2001:db8::/32'])

    const changed = await call('POST', `/v1/keys/${id}/allowed-ips`, { allowedIps: ['198.51.100.7'] })
    expect(changed.status).toBe(200)
    expect(changed.body.key.allowedIps).toEqual(['198.51.100.7/32'])
    const outside = await keyring.verify(created.body.token, { clientIp: '203.0.113.1' })
    expect(!outside.ok && outside.error.code).toBe('KEYROT_IP_NOT_ALLOWED')
    expect((await keyring.verify(created.body.token, { clientIp: '198.51.100.7' })).ok).toBe(true)

    const lifted = await call('POST', `/v1/keys/${id}/allowed-ips`, { allowedIps: null })
    expect(lifted.status).toBe(200)
    expect(lifted.body.key.allowedIps).toBeUndefined()
    expect((await keyring.verify(created.body.token, { clientIp: '203.0.113.1' })).ok).toBe(true)
  })

  it('refuses an invalid CIDR with 400 KEYROT_INVALID_INPUT naming the field, at create and later', async () => {
    const refused = await call('POST', '/v1/keys', { tenantId: 'acme', name: 'ci', allowedIps: ['203.0.113.0/33'] })
    expect(refused.status).toBe(400)
    expect(refused.body.error).toMatchObject({ code: 'KEYROT_INVALID_INPUT', field: 'allowedIps' })
    expect(refused.body.error.message).toContain('203.0.113.0/33')
    const { key } = await keyring.create({ tenantId: 'acme', name: 'x' })
    const later = await call('POST', `/v1/keys/${key.id}/allowed-ips`, { allowedIps: ['not-an-ip'] })
    expect(later.status).toBe(400)
    expect(later.body.error.code).toBe('KEYROT_INVALID_INPUT')
    expect((await call('POST', `/v1/keys/${key.id}/allowed-ips`, { allowedIps: [] })).status).toBe(400)
    expect((await call('POST', '/v1/keys/0000000000000000/allowed-ips', { allowedIps: ['10.0.0.0/8'] })).status).toBe(404)
  })
})
