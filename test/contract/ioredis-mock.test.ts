import { randomBytes } from 'node:crypto'
import { RedisStore } from '@keyrot/redis'
import type { Redis } from 'ioredis'
import RedisMock from 'ioredis-mock'
import { describeStoreContract } from './store-contract.js'

/**
 * The contract against ioredis-mock 8.13.1 (which declares ioredis ^5 as
 * its peer, matching the ioredis 5.9.2 we build on): a fast check that needs
 * no server. The mock re-implements Redis partly, so the real servers
 * (redis-store.test.ts, redis-cluster.test.ts) are what proves the store;
 * durability, timeouts and reconnect resets are tested only there.
 *
 * What the mock lacks, and how this file copes:
 * - no connection `status` (real ioredis reports 'ready'): duplicates are
 *   marked ready here;
 * - no `WAIT`, and no `eval`/`evalsha` inside `pipeline()` (the store's
 *   durability path pipelines the script with `INFO replication`):
 *   durability is off here.
 * EVALSHA with its NOSCRIPT reply, Lua, key expiry and pub/sub between mock
 * instances work, so the whole suite, subscriptions included, runs.
 */
function mockClient(): Redis {
  const client = new RedisMock() as unknown as Redis
  const duplicate = client.duplicate.bind(client)
  client.duplicate = ((overrides?: object) => {
    const copy = duplicate(overrides)
    Object.defineProperty(copy, 'status', { value: 'ready' })
    return copy
  }) as Redis['duplicate']
  return client
}

describeStoreContract(
  'RedisStore (ioredis-mock)',
  async () => {
    const keyPrefix = `m${randomBytes(6).toString('hex')}`
    const store = new RedisStore({ client: mockClient(), keyPrefix, durability: false })
    const peer = new RedisStore({ client: mockClient(), keyPrefix, durability: false })
    return { store, peer, reopen: async () => (await store.flushUsage(), peer) }
  },
  { subscribe: true },
)
