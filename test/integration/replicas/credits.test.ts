import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedisCluster, startRedisServer, type RedisCluster, type RedisServer } from '../../helpers/redis-server.js'
import { ensureBuilt } from '../../support/build.js'
import { admin, callWithKey, closeAgents, startReplicas, type Exchange, type IssuedKeyBody, type Replica } from '../../support/replicas.js'

/**
 * Credits are exact across replicas: three Express replicas (separate
 * processes, built packages, real HTTP on loopback) hammer one key family
 * with 1,000 credits, through the old and the new token of a rotation in
 * grace, on one redis-server and on a 3-master Redis Cluster. Exactly
 * 1,000 requests are accepted; every other one is 429
 * KEYROT_CREDITS_EXHAUSTED. Each run prints the count accepted.
 */

const CREDITS = 1_000
const REQUESTS = 1_500
/** Requests in flight per replica. */
const CONCURRENCY = 24

let server: RedisServer | undefined
let cluster: RedisCluster | undefined
const fleets: Replica[][] = []

beforeAll(async () => {
  await ensureBuilt()
  ;[server, cluster] = await Promise.all([startRedisServer(), startRedisCluster(3)])
}, 120_000)

afterAll(async () => {
  closeAgents()
  await Promise.all(fleets.flat().map((replica) => replica.stop()))
  await Promise.all([server?.stop(), cluster?.stop()])
})

/** Sends `total` requests spread over the replicas and tokens, `CONCURRENCY` in flight per replica; bounded in count. */
async function hammer(replicas: Replica[], tokens: string[], total: number): Promise<Exchange[]> {
  const exchanges: Exchange[] = []
  let next = 0
  await Promise.all(
    replicas.flatMap((replica, r) =>
      Array.from({ length: CONCURRENCY }, async () => {
        for (;;) {
          const i = next++
          if (i >= total) return
          exchanges.push(await callWithKey(replica, tokens[(i + r) % tokens.length] as string, 10_000))
        }
      }),
    ),
  )
  return exchanges
}

describe.each([
  ['one redis-server', () => ({ redisUrl: (server as RedisServer).url })],
  ['a 3-master Redis Cluster', () => ({ redisUrl: `redis://127.0.0.1:${(cluster as RedisCluster).ports[0]}`, cluster: true })],
])('credits across 3 replica processes on %s', (label, target) => {
  it(`accept exactly ${CREDITS} of ${REQUESTS} requests to one key family, old and new token alike, then 429 with the next refill`, async () => {
    const replicas = await startReplicas(3, { ...target(), keyPrefix: 'credits' })
    fleets.push(replicas)
    const [A, B, C] = replicas as [Replica, Replica, Replica]
    const old = await admin<IssuedKeyBody>(A, 'create', { name: 'metered', credits: { remaining: CREDITS, refill: { amount: CREDITS, interval: '1d' } } })
    const next = await admin<IssuedKeyBody & { previous: unknown }>(B, 'rotate', { keyId: old.key.id, gracePeriodMs: 3_600_000 })

    const started = performance.now()
    const exchanges = await hammer(replicas, [old.token, next.token], REQUESTS)
    const seconds = (performance.now() - started) / 1000
    const accepted = exchanges.filter((exchange) => exchange.status === 200)
    const refused = exchanges.filter((exchange) => exchange.status === 429 && exchange.code === 'KEYROT_CREDITS_EXHAUSTED')
    const perReplica = Object.fromEntries(replicas.map((replica) => [replica.name, accepted.filter((exchange) => exchange.replica === replica.name).length]))
    console.log(
      `credits on ${label}: ${accepted.length} of ${exchanges.length} requests accepted for ${CREDITS} credits ` +
        `(per replica ${JSON.stringify(perReplica)}; ${refused.length} refused 429 KEYROT_CREDITS_EXHAUSTED; ${(exchanges.length / seconds).toFixed(0)} req/s)`,
    )
    expect(exchanges).toHaveLength(REQUESTS)
    expect(accepted).toHaveLength(CREDITS)
    expect(refused).toHaveLength(REQUESTS - CREDITS)
    // Both tokens spent from the one balance, on every replica.
    for (const replica of replicas) expect(perReplica[replica.name]).toBeGreaterThan(0)
    const remainingSeen = accepted.map((exchange) => Number(exchange.headers['x-credits-remaining']))
    expect(new Set(remainingSeen).size).toBe(CREDITS)
    expect(Math.min(...remainingSeen)).toBe(0)

    const last = await callWithKey(C, next.token)
    expect(last.status).toBe(429)
    expect(last.headers['x-credits-remaining']).toBe('0')
    const retryAfter = Number(last.headers['retry-after'])
    expect(retryAfter).toBeGreaterThan(86_000)
    expect(retryAfter).toBeLessThanOrEqual(86_400)
    expect(last.headers['x-credits-reset']).toBe(last.headers['retry-after'])
    const { credits } = await admin<{ credits: { remaining: number; refill: unknown } }>(A, 'credits', { keyId: next.key.id })
    expect(credits).toMatchObject({ remaining: 0, refill: { amount: CREDITS, intervalMs: 86_400_000 } })
  }, 120_000)
})
