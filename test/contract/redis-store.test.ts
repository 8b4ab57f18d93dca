import { randomBytes } from 'node:crypto'
import { RedisStore, type RedisStoreOptions } from '@keyrot/redis'
import { Redis } from 'ioredis'
import { afterAll, beforeAll } from 'vitest'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'
import { describeStoreContract } from './store-contract.js'

let server: RedisServer
const clients: Redis[] = []
const tokens: string[] = []

beforeAll(async () => {
  server = await startRedisServer()
})

afterAll(async () => {
  for (const client of clients) client.disconnect()
  await server?.stop()
})

function appClient(): Redis {
  const client = new Redis(server.port, '127.0.0.1', { lazyConnect: true })
  clients.push(client)
  return client
}

function makeStore(keyPrefix: string, extra: Partial<RedisStoreOptions> = {}): RedisStore {
  return new RedisStore({ client: appClient(), keyPrefix, ...extra })
}

describeStoreContract(
  'RedisStore (redis-server)',
  async () => {
    const keyPrefix = `t${randomBytes(6).toString('hex')}`
    const store = makeStore(keyPrefix)
    const peer = makeStore(keyPrefix)
    const opened: RedisStore[] = []
    return {
      store,
      peer,
      reopen: async () => {
        await store.flushUsage()
        const reader = makeStore(keyPrefix, { invalidation: false })
        opened.push(reader)
        return reader
      },
      dispose: async () => {
        for (const reader of opened) await reader.close()
      },
    }
  },
  { onToken: (token) => tokens.push(token) },
)
