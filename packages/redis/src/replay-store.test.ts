import { StoreUnavailableError } from '@keyrot/core'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort, startRedisServer, type RedisServer } from '../../../test/helpers/redis-server.js'
import { RedisReplayStore } from './replay-store.js'
import { RedisStore } from './redis-store.js'

let server: RedisServer
let raw: Redis
const closers: (() => Promise<void> | void)[] = []

beforeAll(async () => {
  server = await startRedisServer()
  raw = new Redis(server.port, '127.0.0.1')
})

afterAll(async () => {
  for (const close of closers.reverse()) await close()
  raw?.disconnect()
  await server?.stop()
})

function appClient(port = server.port): Redis {
  const client = new Redis(port, '127.0.0.1', { lazyConnect: true })
  closers.push(() => client.disconnect())
  return client
}

function replayStore(options: Partial<ConstructorParameters<typeof RedisReplayStore>[0]> = {}): RedisReplayStore {
  const store = new RedisReplayStore({ client: appClient(), ...options })
  closers.push(() => store.close())
  return store
}

describe('RedisReplayStore', () => {
  it('records a nonce with SET NX PX: true the first time, false after, with the TTL asked for', async () => {
    const store = replayStore({ keyPrefix: 'rs1' })
    expect(await store.remember('KEY:nonce-1', 60_000)).toBe(true)
    expect(await store.remember('KEY:nonce-1', 60_000)).toBe(false)
    expect(await raw.get('rs1:nonce:KEY:nonce-1')).toBe('1')
    const ttl = await raw.pttl('rs1:nonce:KEY:nonce-1')
    expect(ttl).toBeGreaterThan(59_000)
    expect(ttl).toBeLessThanOrEqual(60_000)
  })

  it('forgets a nonce when its TTL ends', async () => {
    const store = replayStore({ keyPrefix: 'rs2' })
    expect(await store.remember('k:n', 50)).toBe(true)
    await new Promise((resolve) => setTimeout(resolve, 120))
    expect(await store.remember('k:n', 50)).toBe(true)
  })

  it('gives exactly one true to concurrent callers on separate connections', async () => {
    const stores = Array.from({ length: 4 }, () => replayStore({ keyPrefix: 'rs3' }))
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => (stores[i % 4] as RedisReplayStore).remember('k:same', 60_000)))
    expect(results.filter(Boolean)).toHaveLength(1)
  })

  it('shares a RedisStore’s client, prefix and timeout', async () => {
    const keyStore = new RedisStore({ client: appClient(), keyPrefix: 'rs4', timeout: '750ms', invalidation: false })
    closers.push(() => keyStore.close())
    const store = RedisReplayStore.forStore(keyStore)
    closers.push(() => store.close())
    expect(store.keyPrefix).toBe('rs4')
    expect(store.timeoutMs).toBe(750)
    expect(await store.remember('k:n', 1_000)).toBe(true)
    expect(await raw.exists('rs4:nonce:k:n')).toBe(1)
  })

  it('fails with StoreUnavailableError within its timeout when Redis is unreachable', async () => {
    const port = await freePort()
    const store = new RedisReplayStore({ client: appClient(port), timeout: '200ms' })
    closers.push(() => store.close())
    const started = Date.now()
    await expect(store.remember('k:n', 1_000)).rejects.toBeInstanceOf(StoreUnavailableError)
    expect(Date.now() - started).toBeLessThan(2_000)
  })

  it('refuses bad options at construction', () => {
    expect(() => new RedisReplayStore({} as never)).toThrow(/client must be an ioredis/)
    expect(() => new RedisReplayStore({ client: raw, keyPrefix: 'bad prefix' })).toThrow(/keyPrefix/)
    expect(() => new RedisReplayStore({ client: raw, timeout: 0 })).toThrow(/timeout must be greater than 0/)
  })

  it('fails once closed', async () => {
    const store = replayStore()
    await store.close()
    await expect(store.remember('k:n', 1_000)).rejects.toBeInstanceOf(StoreUnavailableError)
  })
})
