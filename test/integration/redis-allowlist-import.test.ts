import { createHash, randomBytes } from 'node:crypto'
import { createKeyring, FastTestHasher, LEGACY_SHA256_PREFIX, type Keyring } from '@keyrot/core'
import { RedisStore } from '@keyrot/redis'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'

// allowedIps and imported keys on a real redis-server, shared by two keyrings
// (two replicas): the record fields, the change feed and the import index.

const importKey = randomBytes(32)
let server: RedisServer
let raw: Redis
const keyrings: Keyring[] = []

beforeAll(async () => {
  server = await startRedisServer()
  raw = new Redis(server.port, '127.0.0.1')
})

afterAll(async () => {
  for (const keyring of keyrings) await keyring.close()
  raw?.disconnect()
  await server?.stop()
})

async function replicas(prefix: string): Promise<[Keyring, Keyring, RedisStore]> {
  const make = async () => {
    const store = new RedisStore({ client: new Redis(server.port, '127.0.0.1', { lazyConnect: true }), keyPrefix: prefix, retention: '1h' })
    await store.waitUntilReady()
    await store.invalidationReady()
    const keyring = createKeyring({ store, hasher: new FastTestHasher(), importKey, importedPrefixes: ['old_'], rateLimit: false })
    keyrings.push(keyring)
    return { keyring, store }
  }
  const a = await make()
  const b = await make()
  return [a.keyring, b.keyring, a.store]
}

async function until(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error('condition never met')
}

/** Every string key and hash value under `prefix`. */
async function dump(prefix: string): Promise<string> {
  const keys = await raw.keys(`${prefix}:*`)
  const parts: string[] = [...keys]
  for (const key of keys) {
    const type = await raw.type(key)
    if (type === 'string') parts.push((await raw.get(key)) ?? '')
    if (type === 'hash') parts.push(JSON.stringify(await raw.hgetall(key)))
  }
  return parts.join('\n')
}

describe('allowedIps on Redis', () => {
  it('is stored with the key, kept by rotation, and a change reaches the other replica at once', async () => {
    const [a, b] = await replicas('ips')
    const { token, key } = await a.create({ tenantId: 'acme', name: 'ci', allowedIps: ['203.0.113.0/24', '2001:db8::/32'] })
    expect((await b.get(key.id))?.allowedIps).toEqual(['203.0.113.0/24', '2001:db8::/32'])
    expect((await b.verify(token, { clientIp: '::ffff:203.0.113.4' })).ok).toBe(true)
    const outside = await b.verify(token, { clientIp: '198.51.100.4' })
    expect(!outside.ok && outside.error.code).toBe('KEYROT_IP_NOT_ALLOWED')

    // b has the state cached; a's change is published and b drops it.
    await a.setAllowedIps(key.id, ['198.51.100.0/24'])
    await until(async () => (await b.verify(token, { clientIp: '198.51.100.4' })).ok)
    const old = await b.verify(token, { clientIp: '203.0.113.4' })
    expect(!old.ok && old.error.code).toBe('KEYROT_IP_NOT_ALLOWED')

    const rotated = await a.rotate(key.id)
    expect((await b.get(rotated.key.id))?.allowedIps).toEqual(['198.51.100.0/24'])
    await a.setAllowedIps(rotated.key.id, null)
    expect((await b.get(rotated.key.id))?.allowedIps).toBeUndefined()
    expect((await b.verify(rotated.token, { clientIp: '203.0.113.4' })).ok).toBe(true)
  })
})

describe('imported keys on Redis', () => {
  it('finds a legacy token through the index on another replica, upgrades it, and then Redis holds no unsalted hash of it', async () => {
    const [a, b, store] = await replicas('imp')
    const token = `old_${randomBytes(24).toString('base64url')}`
    const sha256 = createHash('sha256').update(token).digest('hex')
    const { key } = await a.import({ tenantId: 'acme', name: 'legacy', legacy: { sha256, tokenPrefix: 'old_' } })
    const record = await store.get(key.id)
    expect(record?.hash).toBe(LEGACY_SHA256_PREFIX + sha256)
    expect(await raw.get(store.layout.importIndex(record?.importIndex as string))).toBe(key.id)

    // Importing again, from either replica, finds the key.
    expect(await b.import({ tenantId: 'acme', name: 'legacy', legacy: { sha256, tokenPrefix: 'old_' } })).toMatchObject({ created: false, key: { id: key.id } })

    expect((await b.verify(token)).ok).toBe(true)
    await until(async () => !(await store.get(key.id))?.hash.startsWith(LEGACY_SHA256_PREFIX))
    const everything = await dump('imp')
    expect(everything).not.toContain(sha256)
    expect(everything).not.toContain(token)
    // Still verifies on both replicas after the upgrade (a proves it afresh).
    expect((await a.verify(token)).ok).toBe(true)
    expect((await b.verify(token)).ok).toBe(true)
  })

  it('replaces a legacy hash once when both replicas verify it first at the same time', async () => {
    const [a, b, store] = await replicas('imp3')
    const token = `old_${randomBytes(24).toString('base64url')}`
    const sha256 = createHash('sha256').update(token).digest('hex')
    const { key } = await a.import({ tenantId: 'acme', name: 'legacy', legacy: { sha256, tokenPrefix: 'old_' } })
    const legacy = LEGACY_SHA256_PREFIX + sha256
    // The store's side: a replacement names the hash it replaces; a second one finds it gone and writes nothing.
    expect(await store.updateHash(key.id, '$first', legacy)).toBe(true)
    expect(await store.updateHash(key.id, '$second', legacy)).toBe(false)
    expect((await store.get(key.id))?.hash).toBe('$first')
    await store.updateHash(key.id, legacy)
    const results = await Promise.all([a.verify(token), b.verify(token), a.verify(token), b.verify(token)])
    expect(results.every((result) => result.ok)).toBe(true)
    await until(async () => !(await store.get(key.id))?.hash.startsWith(LEGACY_SHA256_PREFIX))
    expect(await dump('imp3')).not.toContain(sha256)
  })

  it('keeps the index entry of a revoked key until the record goes, so importing the token again finds the revoked key', async () => {
    const [a, , store] = await replicas('imp2')
    const token = `old_${randomBytes(24).toString('base64url')}`
    const expiresAt = Date.now() + 3_600_000
    const { key } = await a.import({ tenantId: 'acme', name: 'plain', token, expiresAt })
    const index = store.layout.importIndex((await store.get(key.id))?.importIndex as string)
    const ttl = await raw.pttl(index)
    // The key's deadline plus the store's retention (1h).
    expect(ttl).toBeGreaterThan(7_000_000)
    expect(ttl).toBeLessThanOrEqual(7_200_000)
    expect((await a.verify(token)).ok).toBe(true)
    await a.revoke(key.id)
    expect(await raw.get(index)).toBe(key.id)
    // Expiring with the record (two PTTL reads a few ms apart).
    expect(Math.abs((await raw.pttl(index)) - (await raw.pttl(store.layout.record(key.id))))).toBeLessThan(1_000)
    expect((await a.verify(token)).ok).toBe(false)
    // Re-running an import file after a revocation does not bring the token back.
    expect(await a.import({ tenantId: 'acme', name: 'plain', token, expiresAt })).toMatchObject({ created: false, key: { id: key.id } })
    expect((await a.verify(token)).ok).toBe(false)
    expect(await dump('imp2')).not.toContain(token)
  })
})
