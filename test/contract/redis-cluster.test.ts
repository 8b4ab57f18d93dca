import { readFileSync } from 'node:fs'
import { Cluster } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedisCluster, type RedisCluster } from '../helpers/redis-server.js'
import { describeRedisStoreSuites, dumpRedis, expectNoTokens, RedisTestStores } from './redis-checks.js'

let cluster: RedisCluster
let raw: Cluster
const stores = new RedisTestStores(() => new Cluster(cluster.nodes, { lazyConnect: true }), 'c')

beforeAll(async () => {
  cluster = await startRedisCluster(3)
  raw = new Cluster(cluster.nodes)
  await new Promise<void>((resolve) => raw.once('ready', () => resolve()))
})

afterAll(async () => {
  await stores.close()
  raw?.disconnect()
  await cluster?.stop()
})

describeRedisStoreSuites({ contract: 'RedisStore (3-master Redis Cluster)', keyring: 'a 3-master Redis Cluster' }, stores, {
  raw: () => raw,
  flushScripts: async () => {
    await Promise.all(raw.nodes('master').map((node) => node.script('FLUSH')))
  },
})

describe('cluster layout', () => {
  it('keeps a rotation in one slot and spreads families over every master', async () => {
    const store = stores.make()
    const { createKeyring, FastTestHasher } = await import('@keyrot/core')
    const keyring = createKeyring({ store, hasher: new FastTestHasher(), prefix: 'sk_test' })
    const owners = new Set<string>()
    for (let i = 0; i < 12; i++) {
      const { token, key } = await keyring.create({ tenantId: 'spread', name: `key ${i}` })
      stores.tokens.push(token)
      const rotated = await keyring.rotate(key.id)
      stores.tokens.push(rotated.token)
      const slots = await Promise.all(
        [store.layout.record(key.id), store.layout.credential(key.id), store.layout.record(rotated.key.id), store.layout.credential(rotated.key.id)].map(
          (name) => raw.cluster('KEYSLOT', name) as Promise<number>,
        ),
      )
      expect(new Set(slots).size).toBe(1)
      for (const node of raw.nodes('master')) {
        // Only the slot's owner counts keys in it.
        if (Number(await node.cluster('COUNTKEYSINSLOT', slots[0] as number)) > 0) owners.add(`${node.options.host}:${node.options.port}`)
      }
    }
    // 12 random families on 3 masters: all on one master has probability 3 * 3^-12.
    expect(owners.size).toBeGreaterThan(1)
    const listed = await keyring.list({ tenantId: 'spread' })
    expect(listed).toHaveLength(24)
    expect(listed.filter((key) => key.state === 'grace')).toHaveLength(12)
  })
})

describe('record migration on a Cluster', () => {
  it('converts the format 1 records on every master, idempotently (keyrot store migrate)', async () => {
    const fixture = JSON.parse(readFileSync(new URL('../integration/fixtures/legacy-redis-c44bd26.json', import.meta.url), 'utf8')) as {
      tokens: Record<string, { id: string }>
      keys: { key: string; type: string; expireAt: number; value: string | Record<string, string> }[]
    }
    // Records and credentials as the c44bd26 release wrote them (see test/integration/redis-migrate.test.ts).
    const floor = Date.now() + 3_600_000
    for (const { key, type, expireAt, value } of fixture.keys) {
      if (!key.includes(':rec:') && !key.includes(':cred:')) continue
      if (type === 'string') await raw.set(key, value as string)
      else await raw.hset(key, value as Record<string, string>)
      if (expireAt > 0) await raw.pexpireat(key, key.includes(':rec:') ? Math.max(expireAt, floor) : expireAt)
    }
    const store = stores.make('legacy')
    expect(await store.migrateRecords({ dryRun: true })).toMatchObject({ scanned: 11, converted: 11, current: 0, skipped: 0, dryRun: true })
    expect(await store.migrateRecords({ batchSize: 2 })).toMatchObject({ scanned: 11, converted: 11, current: 0, skipped: 0, dryRun: false })
    expect(await store.migrateRecords()).toMatchObject({ scanned: 11, converted: 0, current: 11, skipped: 0, dryRun: false })
    const rich = fixture.tokens['rich']!.id
    expect(await raw.hget(store.layout.record(rich), 'v')).toBe('2')
    expect(await store.get(rich)).toMatchObject({ id: rich, scopes: ['read', 'write'], metadata: { team: 'billing', n: 3 }, revokedAt: null })
  })
})

describe('after every suite above', () => {
  it('finds no token and no secret in any key or value on any master, only hashes', async () => {
    expectNoTokens(await dumpRedis(raw.nodes('master')), stores.tokens)
  })
})
