import { createKeyring, FastTestHasher, type InvalidationEvent, type Keyring } from '@keyrot/core'
import { RedisStore } from '@keyrot/redis'
import { Cluster, Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { redisCli, startRedisCluster, type RedisCluster } from '../helpers/redis-server.js'

/**
 * Invalidation over sharded pub/sub (SSUBSCRIBE / SPUBLISH) on a real
 * 3-master cluster, including the channel's slot moving to another master.
 */

let cluster: RedisCluster
const opened: Keyring[] = []

beforeAll(async () => {
  cluster = await startRedisCluster(3)
})

afterAll(async () => {
  for (const keyring of opened) await keyring.close()
  await cluster?.stop()
})

function replica(keyPrefix: string): { keyring: Keyring; store: RedisStore; events: InvalidationEvent[] } {
  const store = new RedisStore({
    client: new Cluster(cluster.nodes, { lazyConnect: true }),
    keyPrefix,
    invalidation: { heartbeatInterval: 200, heartbeatTimeout: 800 },
  })
  const keyring = createKeyring({ store, hasher: new FastTestHasher(), prefix: 'sk_test', cache: { stateTtl: '60s' } })
  const events: InvalidationEvent[] = []
  store.subscribe((event) => events.push(event))
  opened.push(keyring)
  return { keyring, store, events }
}

const keyEvent = (events: InvalidationEvent[], keyId: string) => events.some((e) => e.type === 'key' && e.keyId === keyId)

/** Node id and port of every master, from CLUSTER NODES. */
function masters(): { id: string; port: number; slots: string[] }[] {
  return redisCli(cluster.ports[0] as number, 'CLUSTER', 'NODES')
    .trim()
    .split('\n')
    .map((line) => line.split(' '))
    .filter((fields) => (fields[2] ?? '').includes('master'))
    .map((fields) => ({ id: fields[0] as string, port: Number((fields[1] ?? '').split(':')[1]?.split('@')[0]), slots: fields.slice(8) }))
}

function ownerOf(slot: number): { id: string; port: number } {
  for (const master of masters()) {
    for (const range of master.slots) {
      const [from = Number.NaN, to = from] = range.split('-').map(Number)
      if (slot >= from && slot <= to) return master
    }
  }
  throw new Error(`no owner for slot ${slot}`)
}

/** Moves `slot` (and any keys in it) to another master, as `redis-cli --cluster reshard` does. */
async function moveSlot(slot: number): Promise<void> {
  const source = ownerOf(slot)
  const target = masters().find((m) => m.id !== source.id) as { id: string; port: number }
  redisCli(target.port, 'CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', source.id)
  redisCli(source.port, 'CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', target.id)
  const keys = redisCli(source.port, 'CLUSTER', 'GETKEYSINSLOT', String(slot), '1000').split('\n').filter(Boolean)
  if (keys.length > 0) redisCli(source.port, 'MIGRATE', '127.0.0.1', String(target.port), '', '0', '5000', 'KEYS', ...keys)
  for (const master of masters()) redisCli(master.port, 'CLUSTER', 'SETSLOT', String(slot), 'NODE', target.id)
}

describe('invalidation on a Redis Cluster', () => {
  it('makes replica B refuse a key revoked on replica A although B had it cached', async () => {
    const a = replica('cinv1')
    const b = replica('cinv1')
    await Promise.all([a.store.invalidationReady(), b.store.invalidationReady()])
    const { token, key } = await a.keyring.create({ tenantId: 'acme', name: 'shared' })
    expect(await b.keyring.verify(token)).toMatchObject({ ok: true })
    expect(await b.keyring.verify(token)).toMatchObject({ ok: true, cached: true })
    await a.keyring.revoke(key.id)
    await expect.poll(() => keyEvent(b.events, key.id), { timeout: 2_000 }).toBe(true)
    const refused = await b.keyring.verify(token)
    expect(refused.ok === false && refused.error.code).toBe('KEYROT_KEY_REVOKED')
  })

  it('resets when the channel slot moves to another master, then delivers again', async () => {
    const a = replica('cinv2')
    const b = replica('cinv2')
    await Promise.all([a.store.invalidationReady(), b.store.invalidationReady()])
    const probe = new Redis(cluster.ports[0] as number, '127.0.0.1')
    const slot = Number(await probe.cluster('KEYSLOT', b.store.layout.channel))
    probe.disconnect()
    const resetsBefore = b.events.filter((e) => e.type === 'reset').length
    await moveSlot(slot)
    await expect.poll(() => b.events.filter((e) => e.type === 'reset').length, { timeout: 5_000 }).toBeGreaterThan(resetsBefore)
    // After the move, changes reach B again (it re-subscribed on the slot's new owner).
    await expect
      .poll(
        async () => {
          const { key } = await a.keyring.create({ tenantId: 'acme', name: 'after the move' })
          await a.keyring.revoke(key.id)
          await new Promise((resolve) => setTimeout(resolve, 200))
          return keyEvent(b.events, key.id)
        },
        { timeout: 10_000, interval: 100 },
      )
      .toBe(true)
  })
})
