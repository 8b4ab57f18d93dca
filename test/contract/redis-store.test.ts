import { RedisStore } from '@keyrot/redis'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'
import { describeRedisStoreSuites, dumpRedis, expectNoTokens, RedisTestStores } from './redis-checks.js'

let server: RedisServer
let raw: Redis
const stores = new RedisTestStores(() => new Redis(server.port, '127.0.0.1', { lazyConnect: true }), 't')

beforeAll(async () => {
  server = await startRedisServer()
  raw = new Redis(server.port, '127.0.0.1')
})

afterAll(async () => {
  await stores.close()
  raw?.disconnect()
  await server?.stop()
})

describeRedisStoreSuites({ contract: 'RedisStore (redis-server)', keyring: 'redis-server' }, stores, {
  raw: () => raw,
  flushScripts: async () => {
    await raw.script('FLUSH')
  },
})

describe('the application client', () => {
  it('is only a template: never connected, its keyPrefix not applied to the store', async () => {
    const client = new Redis(server.port, '127.0.0.1', { lazyConnect: true, keyPrefix: 'app:' })
    const store = stores.make(undefined, {}, client)
    const { createKeyring, FastTestHasher } = await import('@keyrot/core')
    const keyring = createKeyring({ store, hasher: new FastTestHasher(), prefix: 'sk_test' })
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'template' })
    stores.tokens.push(token)
    expect((await keyring.verify(token)).ok).toBe(true)
    expect(await raw.exists(store.layout.record(key.id))).toBe(1)
    expect(client.status).toBe('wait')
    await keyring.close()
    expect(client.status).toBe('wait')
  })
})

describe('after every suite above', () => {
  it('finds no token and no secret in any key or value in Redis, only hashes', async () => {
    expectNoTokens(await dumpRedis([raw]), stores.tokens)
  })
})
