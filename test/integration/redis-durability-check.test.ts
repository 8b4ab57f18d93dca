import type { Logger } from '@keyrot/core'
import { RedisStore, UnsafeRedisConfigError } from '@keyrot/redis'
import { Redis } from 'ioredis'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'

/**
 * The durability check `waitUntilReady()` runs: persistence and eviction
 * settings read with CONFIG GET, or INFO where CONFIG is disabled (managed
 * Redis), and `requireDurability` refusing to start.
 */

const servers: RedisServer[] = []
const stores: RedisStore[] = []
const clients: Redis[] = []

afterEach(async () => {
  for (const store of stores.splice(0)) await store.close()
  for (const client of clients.splice(0)) client.disconnect()
})

afterAll(async () => {
  await Promise.all(servers.map((server) => server.stop()))
})

function recordingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = []
  return { warnings, info: () => {}, warn: (_fields: object, message?: string) => warnings.push(message ?? ''), error: () => {} }
}

async function storeOn(args: string[], options: { requireDurability?: boolean } = {}) {
  const server = await startRedisServer({ args })
  servers.push(server)
  const client = new Redis(server.port, '127.0.0.1', { lazyConnect: true })
  clients.push(client)
  const logger = recordingLogger()
  const store = new RedisStore({ client, logger, ...options })
  stores.push(store)
  return { store, logger, server }
}

describe('the durability check at start', () => {
  it('accepts an fsynced append-only file with noeviction', async () => {
    const { store, logger } = await storeOn(['--appendonly', 'yes', '--appendfsync', 'everysec', '--maxmemory-policy', 'noeviction'])
    await store.waitUntilReady()
    expect(logger.warnings).toEqual([])
  })

  it('warns about a Redis without an append-only file and with an eviction policy', async () => {
    const { store, logger } = await storeOn(['--maxmemory-policy', 'allkeys-lru'])
    await store.waitUntilReady()
    console.log(`[store-reset] durability warnings: ${JSON.stringify(logger.warnings)}`)
    expect(logger.warnings).toEqual([expect.stringMatching(/append-only file off/), expect.stringMatching(/maxmemory-policy allkeys-lru/)])
  })

  it('refuses to start with requireDurability when Redis can evict keys', async () => {
    const { store } = await storeOn(['--appendonly', 'yes', '--maxmemory-policy', 'volatile-lru'], { requireDurability: true })
    const error = await store.waitUntilReady().catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(UnsafeRedisConfigError)
    expect((error as UnsafeRedisConfigError).problems).toEqual([expect.stringMatching(/maxmemory-policy volatile-lru/)])
  })

  it('reads INFO when CONFIG is disabled, as on managed Redis', async () => {
    const { store, logger } = await storeOn(['--rename-command', 'CONFIG', '', '--appendonly', 'no', '--maxmemory-policy', 'allkeys-random'])
    await store.waitUntilReady()
    expect(logger.warnings).toEqual([expect.stringMatching(/append-only file off/), expect.stringMatching(/maxmemory-policy allkeys-random/)])
  })

  it('tells the store came back empty within a second, from the background check alone', async () => {
    const { store } = await storeOn(['--appendonly', 'no'])
    await store.waitUntilReady()
    const events: unknown[] = []
    let flushedAt = Number.POSITIVE_INFINITY
    const stop = store.subscribe((event) => {
      if (event.type === 'store-reset') events.push({ ...event, seenAfterMs: Date.now() - flushedAt })
    })
    await store.waitUntilReady()
    const admin = new Redis(servers.at(-1)?.port as number, '127.0.0.1')
    clients.push(admin)
    await admin.flushall()
    flushedAt = Date.now()
    const deadline = flushedAt + 3_000
    while (events.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    stop()
    console.log(`[store-reset] FLUSHALL seen by the background check after ${(events[0] as { seenAfterMs?: number })?.seenAfterMs} ms`)
    expect(events).toMatchObject([{ type: 'store-reset', cause: 'empty' }])
    expect((events[0] as { seenAfterMs: number }).seenAfterMs).toBeLessThan(1_800)
    expect(store.resetPending()).toBe(true)
    await store.acceptReset()
    expect(store.resetPending()).toBe(false)
  })
})
