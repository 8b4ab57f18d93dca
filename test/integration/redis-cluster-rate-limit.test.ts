import { randomBytes } from 'node:crypto'
import { RedisRateLimiter } from '@keyrot/redis'
import { Cluster } from 'ioredis'
import { afterAll, beforeAll } from 'vitest'
import { describeRateLimiterContract } from '../contract/rate-limiter-contract.js'
import { startRedisCluster, type RedisCluster } from '../helpers/redis-server.js'

/**
 * The limiter contract on a 3-master Redis Cluster: one admission reads an
 * IP's and a key id's counters in one script, which works only because both
 * carry the `{abuse}` hash tag (no CROSSSLOT).
 */

let cluster: RedisCluster
const cleanup: (() => Promise<void> | void)[] = []

beforeAll(async () => {
  cluster = await startRedisCluster(3)
}, 60_000)

afterAll(async () => {
  for (const close of cleanup.reverse()) await close()
  await cluster?.stop()
})

function limiter(keyPrefix: string): RedisRateLimiter {
  const client = new Cluster(cluster.nodes, { lazyConnect: true })
  const created = new RedisRateLimiter({ client, keyPrefix, timeout: '2s' })
  cleanup.push(() => client.disconnect())
  cleanup.push(() => created.close())
  return created
}

describeRateLimiterContract('RedisRateLimiter (3-master Redis Cluster, two connections)', async () => {
  const keyPrefix = `rl${randomBytes(5).toString('hex')}`
  return { limiter: limiter(keyPrefix), peer: limiter(keyPrefix) }
})
