import { createKeyring, FastTestHasher, type InvalidationEvent, type Keyring } from '@keyrot/core'
import { RedisStore } from '@keyrot/redis'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'

/**
 * Two replicas (two keyrings, each with its own RedisStore and client) on
 * one real Redis. Cached states are trusted for a minute here, so only the
 * invalidation feed can explain a replica seeing a change sooner.
 */

let server: RedisServer
let raw: Redis
const opened: Keyring[] = []

beforeAll(async () => {
  server = await startRedisServer()
  raw = new Redis(server.port, '127.0.0.1')
})

afterAll(async () => {
  for (const keyring of opened) await keyring.close()
  raw?.disconnect()
  await server?.stop()
})

function replica(): { keyring: Keyring; store: RedisStore; events: InvalidationEvent[] } {
  const store = new RedisStore({ client: new Redis(server.port, '127.0.0.1', { lazyConnect: true }), keyPrefix: 'replicas' })
  const keyring = createKeyring({ store, hasher: new FastTestHasher(), prefix: 'sk_test', cache: { stateTtl: '60s' } })
  const events: InvalidationEvent[] = []
  store.subscribe((event) => events.push(event))
  opened.push(keyring)
  return { keyring, store, events }
}

describe('invalidation between replicas', () => {
  it('makes replica B refuse a key revoked on replica A although B had it cached', async () => {
    const a = replica()
    const b = replica()
    await Promise.all([a.store.invalidationReady(), b.store.invalidationReady()])
    const { token, key } = await a.keyring.create({ tenantId: 'acme', name: 'shared' })
    expect(await b.keyring.verify(token)).toMatchObject({ ok: true })
    expect(await b.keyring.verify(token)).toMatchObject({ ok: true, cached: true })
    await a.keyring.revoke(key.id, { reason: 'leaked' })
    await expect.poll(() => b.events.some((e) => e.type === 'key' && e.keyId === key.id), { timeout: 2_000 }).toBe(true)
    const refused = await b.keyring.verify(token)
    expect(refused.ok === false && refused.error.code).toBe('KEYROT_KEY_REVOKED')
  })

  it('resets B when its subscriber is killed, so a change published meanwhile is never missed', async () => {
    const a = replica()
    const b = replica()
    await Promise.all([a.store.invalidationReady(), b.store.invalidationReady()])
    const { token, key } = await a.keyring.create({ tenantId: 'acme', name: 'killed feed' })
    expect(await b.keyring.verify(token)).toMatchObject({ ok: true })
    expect(await b.keyring.verify(token)).toMatchObject({ ok: true, cached: true })
    const resetsBefore = b.events.filter((e) => e.type === 'reset').length
    expect(Number(await raw.client('KILL', 'TYPE', 'pubsub'))).toBeGreaterThanOrEqual(2)
    // Published while B's subscriber is away (it reconnects after >= 50 ms).
    await a.keyring.revoke(key.id)
    await expect.poll(() => b.events.filter((e) => e.type === 'reset').length, { timeout: 5_000 }).toBeGreaterThan(resetsBefore)
    const refused = await b.keyring.verify(token)
    expect(refused.ok === false && refused.error.code).toBe('KEYROT_KEY_REVOKED')
    // Once subscribed again B says so with another reset, and changes reach it again.
    await expect.poll(() => b.events.some((e) => e.type === 'reset' && /reconnected/.test(e.reason)), { timeout: 5_000 }).toBe(true)
    const second = await a.keyring.create({ tenantId: 'acme', name: 'after reconnect' })
    expect(await b.keyring.verify(second.token)).toMatchObject({ ok: true })
    await a.keyring.revoke(second.key.id)
    await expect.poll(() => b.events.some((e) => e.type === 'key' && e.keyId === second.key.id), { timeout: 2_000 }).toBe(true)
  })
})
