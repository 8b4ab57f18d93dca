import { createHash, randomBytes } from 'node:crypto'
import { createKeyring, FastTestHasher, LEGACY_SHA256_PREFIX, type Keyring } from '@keyrot/core'
import { RedisStore } from '@keyrot/redis'
import { Cluster } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedisCluster, type RedisCluster } from '../helpers/redis-server.js'

// On a real 3-master Redis Cluster: the import index lives outside the key
// family's slot (a legacy token has no family), so its one-key scripts must
// work on whichever node owns it; allowedIps changes go through the sharded
// invalidation channel.

const importKey = randomBytes(32)
let cluster: RedisCluster
const opened: Keyring[] = []

beforeAll(async () => {
  cluster = await startRedisCluster(3)
})

afterAll(async () => {
  for (const keyring of opened) await keyring.close()
  await cluster?.stop()
})

function replica(): { keyring: Keyring; store: RedisStore } {
  const store = new RedisStore({ client: new Cluster(cluster.nodes, { lazyConnect: true }), keyPrefix: 'cl' })
  const keyring = createKeyring({ store, hasher: new FastTestHasher(), importKey, importedPrefixes: ['old_'], rateLimit: false })
  opened.push(keyring)
  return { keyring, store }
}

describe('allowedIps and imported keys on Redis Cluster', () => {
  it('imports, finds, upgrades and revokes keys whose index entries land on every node', async () => {
    const { keyring: a, store } = replica()
    const { keyring: b } = replica()
    await store.waitUntilReady()
    const tokens = Array.from({ length: 12 }, () => `old_${randomBytes(20).toString('hex')}`)
    const keys = []
    for (const [i, token] of tokens.entries()) {
      const input = i % 2 === 0 ? { token } : { legacy: { sha256: createHash('sha256').update(token).digest('hex'), tokenPrefix: 'old_' } }
      keys.push((await a.import({ tenantId: 'acme', name: `k${i}`, allowedIps: ['203.0.113.0/24'], ...input })).key)
    }
    for (const [i, token] of tokens.entries()) {
      const result = await b.verify(token, { clientIp: '203.0.113.9' })
      expect(result.ok && result.key.id).toBe(keys[i]?.id)
      const outside = await b.verify(token, { clientIp: '198.51.100.9' })
      expect(!outside.ok && outside.error.code).toBe('KEYROT_IP_NOT_ALLOWED')
    }
    for (let i = 1; i < tokens.length; i += 2) {
      const id = keys[i]?.id as string
      for (let tries = 0; tries < 200 && (await store.get(id))?.hash.startsWith(LEGACY_SHA256_PREFIX); tries++) await new Promise((r) => setTimeout(r, 10))
      expect((await store.get(id))?.hash.startsWith(LEGACY_SHA256_PREFIX)).toBe(false)
    }
    expect((await a.import({ tenantId: 'acme', name: 'again', token: tokens[0] as string })).created).toBe(false)
    await a.revoke(keys[0]?.id as string)
    // The revoked key keeps its entry (until its record goes): importing the token again finds it, revoked.
    expect(await store.findImported((await store.get(keys[0]?.id as string))?.importIndex as string)).toBe(keys[0]?.id)
    expect(await a.import({ tenantId: 'acme', name: 'again', token: tokens[0] as string })).toMatchObject({ created: false, key: { state: 'revoked' } })
    expect((await a.verify(tokens[0] as string)).ok).toBe(false)
    await a.setAllowedIps(keys[2]?.id as string, null)
    expect((await b.get(keys[2]?.id as string))?.allowedIps).toBeUndefined()
  })
})
