import { createHash, randomBytes } from 'node:crypto'
import { createKeyring, FastTestHasher, MemoryStore, type Keyring, type KeyStore } from '@keyrot/core'
import { RedisStore } from '@keyrot/redis'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'
import { frameworks, type RunningApp } from './apps.js'
import { get, jsonOf } from './client.js'

// Real sockets for every adapter (Express, Koa, Fastify, Hono), each framework's own client-IP handling (X-Forwarded-For from
// loopback is trusted: Express's `trust proxy`, Koa's `app.proxy`), and both
// stores: the memory store and a real redis-server.

const importKey = randomBytes(32)
let server: RedisServer
const stores: RedisStore[] = []

beforeAll(async () => {
  server = await startRedisServer()
})

afterAll(async () => {
  for (const store of stores) await store.close()
  await server?.stop()
})

function redisStore(): RedisStore {
  const store = new RedisStore({ client: new Redis(server.port, '127.0.0.1', { lazyConnect: true }), keyPrefix: `t${stores.length}` })
  stores.push(store)
  return store
}

function keyringOn(store: KeyStore): Keyring {
  return createKeyring({ store, hasher: new FastTestHasher(), prefix: 'sk_test', importKey, importedPrefixes: ['old_'], rateLimit: false })
}

function bearer(token: string, ip: string): Record<string, string> {
  return { authorization: `Bearer ${token}`, 'x-forwarded-for': ip }
}

function codeOf(body: unknown): unknown {
  return (body as { error?: { code?: unknown } } | undefined)?.error?.code
}


describe.each([
  ['memory store', () => new MemoryStore() as KeyStore],
  ['Redis store', () => redisStore() as KeyStore],
])('over HTTP on the %s', (_label, makeStore) => {
  describe.each(frameworks)('$framework', ({ start }) => {
    let app: RunningApp
    let keyring: Keyring

    beforeAll(async () => {
      keyring = keyringOn(makeStore())
      app = await start({ keyring, flaky: keyring, guarded: keyring }, { trustProxy: true })
    })

    afterAll(async () => {
      await app?.close()
      await keyring?.close()
    })

    it('answers 403 KEYROT_IP_NOT_ALLOWED from outside the list only to a caller holding the secret', async () => {
      const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci', allowedIps: ['203.0.113.0/24', '2001:db8::/32'] })
      expect((await get(app.port, '/whoami', bearer(token, '203.0.113.10'))).status).toBe(200)
      expect((await get(app.port, '/whoami', bearer(token, '2001:db8::10'))).status).toBe(200)
      const outside = await get(app.port, '/whoami', bearer(token, '198.51.100.10'))
      expect(outside.status).toBe(403)
      expect(codeOf(jsonOf(outside))).toBe('KEYROT_IP_NOT_ALLOWED')
      // Not a credential problem: no challenge to send another key.
      expect(outside.headers['www-authenticate']).toBeUndefined()
      expect(outside.headers['cache-control']).toBe('no-store')
      expect(outside.body).not.toContain('203.0.113')

      // Without the secret: the usual 401, whatever the IP.
      const forged = `${token.slice(0, -12)}${'A'.repeat(12)}`
      const guess = await get(app.port, '/whoami', bearer(forged, '198.51.100.10'))
      expect(guess.status).toBe(401)
      expect(codeOf(jsonOf(guess))).toBe('KEYROT_INVALID_KEY')

      // Changed later: the new list applies on the next request.
      await keyring.setAllowedIps(key.id, ['198.51.100.0/24'])
      expect((await get(app.port, '/whoami', bearer(token, '198.51.100.10'))).status).toBe(200)
      expect((await get(app.port, '/whoami', bearer(token, '203.0.113.10'))).status).toBe(403)
    })

    it('verifies imported keys in their existing format, plaintext and legacy SHA-256 alike, and rotates them into keyrot tokens', async () => {
      const plain = `old_${randomBytes(20).toString('hex')}`
      const legacy = `old_${randomBytes(20).toString('hex')}`
      const sha256 = createHash('sha256').update(legacy).digest('hex')
      await keyring.import({ tenantId: 'acme', name: 'plain', token: plain, scopes: ['admin'] })
      const { key } = await keyring.import({ tenantId: 'acme', name: 'legacy', legacy: { sha256, tokenPrefix: 'old_' } })

      const whoami = await get(app.port, '/whoami', bearer(legacy, '203.0.113.10'))
      expect(whoami.status).toBe(200)
      expect((jsonOf(whoami) as { apiKey: { id: string } }).apiKey.id).toBe(key.id)
      expect((await get(app.port, '/admin', bearer(plain, '203.0.113.10'))).status).toBe(200)
      expect((await get(app.port, '/admin', bearer(legacy, '203.0.113.10'))).status).toBe(403)
      const unknown = await get(app.port, '/whoami', bearer(`old_${randomBytes(20).toString('hex')}`, '203.0.113.10'))
      expect(unknown.status).toBe(401)
      expect(codeOf(jsonOf(unknown))).toBe('KEYROT_INVALID_KEY')

      const rotated = await keyring.rotate(key.id)
      expect(rotated.token.startsWith('sk_test_')).toBe(true)
      expect((await get(app.port, '/whoami', bearer(rotated.token, '203.0.113.10'))).status).toBe(200)
      // The old token keeps working through its grace period, with a Sunset header.
      const inGrace = await get(app.port, '/whoami', bearer(legacy, '203.0.113.10'))
      expect(inGrace.status).toBe(200)
      expect(inGrace.headers['sunset']).toBeDefined()
    })
  })
})
