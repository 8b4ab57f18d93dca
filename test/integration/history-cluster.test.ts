import { randomBytes } from 'node:crypto'
import { createKeyring, FastTestHasher, type Keyring } from '@keyrot/core'
import { RedisHistoryLog, RedisStore } from '@keyrot/redis'
import { Cluster } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { redisCli, startRedisCluster, type RedisCluster } from '../helpers/redis-server.js'
import { dumpRedis, SecretLedger } from '../support/secret-scan.js'

/**
 * The shared admin history on a real 3-master Redis Cluster: the stream and
 * its head share the `{history}` hash tag, so the compare-and-set append
 * script and the head-plus-page transactions of verify() run in one slot.
 */

let cluster: RedisCluster
let raw: Cluster
const cleanup: (() => Promise<unknown> | unknown)[] = []

beforeAll(async () => {
  cluster = await startRedisCluster(3)
  raw = new Cluster(cluster.nodes)
})

afterAll(async () => {
  for (const close of cleanup.reverse()) await close()
  raw?.disconnect()
  await cluster?.stop()
})

function replica(keyPrefix: string): Keyring {
  const client = new Cluster(cluster.nodes, { lazyConnect: true })
  const store = new RedisStore({ client, keyPrefix, invalidation: false, timeout: '2s' })
  const keyring = createKeyring({ store, history: RedisHistoryLog.forStore(store, { timeout: '2s' }), hasher: new FastTestHasher(), gracePeriod: '1h', prefix: 'sk_test' })
  cleanup.push(() => client.disconnect())
  cleanup.push(() => keyring.close())
  return keyring
}

describe('RedisHistoryLog on a 3-master Redis Cluster', () => {
  it('keeps one chain for two replicas acting at once, shows a family, and reports a deleted entry', async () => {
    const keyPrefix = `hc${randomBytes(5).toString('hex')}`
    const a = replica(keyPrefix)
    const b = replica(keyPrefix)
    const ledger = new SecretLedger()
    const created = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 ? a : b).create({ tenantId: `t${i % 3}`, name: `k${i}` })))
    const rotated = await Promise.all(created.map(({ key }, i) => (i % 2 ? b : a).rotate(key.id)))
    const first = created[0]?.key.id as string
    await a.revoke(first, { reason: 'grace cut short' })
    const emergency = await b.emergencyRotate(rotated[0]?.key.id as string, { incidentId: 'INC-77' })
    for (const issued of [...created, ...rotated, emergency]) ledger.addToken(issued.token)

    // Each action returned once its entry was appended: b sees a's actions, in the order they happened.
    const history = await b.history(first)
    expect(history.map((e) => e.action)).toEqual(['key.created', 'key.rotated', 'key.revoked', 'key.emergency_rotated'])
    expect(history[3]).toMatchObject({ keyId: rotated[0]?.key.id, newKeyId: emergency.key.id, incidentId: 'INC-77' })
    expect(await a.verifyHistory()).toMatchObject({ ok: true, checked: 26, problems: [], last: { seq: 26 } })

    // Every family's keys live on whichever master owns their slot; the history is in one slot.
    const streamKey = `${keyPrefix}:{history}:stream`
    const slot = Number(redisCli(cluster.ports[0] as number, 'CLUSTER', 'KEYSLOT', streamKey).trim())
    expect(Number(redisCli(cluster.ports[0] as number, 'CLUSTER', 'KEYSLOT', `${keyPrefix}:{history}:head`).trim())).toBe(slot)
    expect(await raw.xlen(streamKey)).toBe(26)

    const corpora = (await Promise.all(cluster.ports.map((port) => dumpRedis(port)))).flat()
    expect(ledger.scan(corpora)).toEqual([])

    const items = (await raw.xrange(streamKey, '-', '+')) as [string, string[]][]
    await raw.xdel(streamKey, (items[10] as [string, string[]])[0])
    const result = await b.verifyHistory()
    expect(result.ok).toBe(false)
    expect(result.problems).toEqual([expect.objectContaining({ kind: 'broken_link', seq: 12 })])
  })
})
