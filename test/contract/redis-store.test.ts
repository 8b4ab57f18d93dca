import { randomBytes } from 'node:crypto'
import { RedisStore, type RedisStoreOptions } from '@keyrot/redis'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'
import { describeKeyringOnRedis, dumpRedis, expectNoTokens } from './redis-checks.js'
import { describeStoreContract } from './store-contract.js'

let server: RedisServer
let raw: Redis
const clients: Redis[] = []
const stores: RedisStore[] = []
/** Every token minted in this file: none may be found in Redis at the end. */
const tokens: string[] = []

beforeAll(async () => {
  server = await startRedisServer()
  raw = new Redis(server.port, '127.0.0.1')
})

afterAll(async () => {
  for (const store of stores) await store.close()
  for (const client of clients) client.disconnect()
  raw?.disconnect()
  await server?.stop()
})

function appClient(): Redis {
  const client = new Redis(server.port, '127.0.0.1', { lazyConnect: true })
  clients.push(client)
  return client
}

function makeStore(keyPrefix: string, extra: Partial<RedisStoreOptions> = {}): RedisStore {
  const store = new RedisStore({ client: appClient(), keyPrefix, ...extra })
  stores.push(store)
  return store
}

const freshPrefix = () => `t${randomBytes(6).toString('hex')}`

describeStoreContract(
  'RedisStore (redis-server)',
  async () => {
    const keyPrefix = freshPrefix()
    return {
      store: makeStore(keyPrefix),
      peer: makeStore(keyPrefix),
      reopen: async () => {
        await stores.at(-2)?.flushUsage()
        return makeStore(keyPrefix, { invalidation: false })
      },
    }
  },
  { onToken: (token) => tokens.push(token) },
)

describeKeyringOnRedis('redis-server', () => ({
  makeStore: (options = {}) =>
    makeStore(options.keyPrefix ?? freshPrefix(), {
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.retention !== undefined ? { retention: options.retention } : {}),
    }),
  raw: () => raw,
  flushScripts: async () => {
    await raw.script('FLUSH')
  },
  onToken: (token) => tokens.push(token),
}))

describe('the application client', () => {
  it('is only a template: never connected, its keyPrefix not applied to the store', async () => {
    const client = new Redis(server.port, '127.0.0.1', { lazyConnect: true, keyPrefix: 'app:' })
    clients.push(client)
    const store = new RedisStore({ client, keyPrefix: freshPrefix() })
    stores.push(store)
    const { createKeyring, FastTestHasher } = await import('@keyrot/core')
    const keyring = createKeyring({ store, hasher: new FastTestHasher(), prefix: 'sk_test' })
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'template' })
    tokens.push(token)
    expect((await keyring.verify(token)).ok).toBe(true)
    expect(await raw.exists(store.layout.record(key.id))).toBe(1)
    expect(client.status).toBe('wait')
    await keyring.close()
    expect(client.status).toBe('wait')
  })
})

describe('after every suite above', () => {
  it('finds no token and no secret in any key or value in Redis, only hashes', async () => {
    expectNoTokens(await dumpRedis([raw]), tokens)
  })
})
