import { createKeyring, FastTestHasher } from '@keyrot/core'
import { RedisStore } from '@keyrot/redis'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, expect, it, vi } from 'vitest'
import { ControlledRedis } from '../support/redis-process.js'

// keyrot's logger is silent by default, but an outage must not pass unseen:
// without a logger the store says once that Redis is gone and once that it is
// back, through console.warn, however many requests and reconnects happen.

let redis: ControlledRedis

beforeAll(async () => {
  redis = await ControlledRedis.start()
})
afterAll(async () => {
  await redis?.stop()
})

it('warns once when Redis goes away and once when it is back, through console.warn, without a logger', async () => {
  const warned: string[] = []
  const spy = vi.spyOn(console, 'warn').mockImplementation((line: unknown) => {
    warned.push(String(line))
  })
  const client = new Redis(redis.url)
  client.on('error', () => {})
  const keyring = createKeyring({ store: new RedisStore({ client, timeout: '200ms' }), hasher: new FastTestHasher() })
  try {
    const { token } = await keyring.create({ tenantId: 'acme', name: 'outage' })
    expect(warned).toEqual([])
    await redis.kill()
    // Requests and reconnect attempts during the outage add no lines.
    for (let i = 0; i < 10; i++) await keyring.verify(token).catch(() => undefined)
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    const during = warned.filter((line) => line.includes('unreachable'))
    console.log(`[outage-log] ${warned.length} line(s) during the outage`)
    expect(during).toHaveLength(1)
    expect(during[0]).toContain(`keyrot: Redis at 127.0.0.1:${redis.port} is unreachable (`)
    await redis.restart()
    await vi.waitFor(() => expect(warned.filter((line) => line.includes('reachable again'))).toHaveLength(1), { timeout: 10_000, interval: 100 })
    expect(warned).toHaveLength(2)
  } finally {
    spy.mockRestore()
    await keyring.close()
    client.disconnect()
  }
})

it('with a logger, says it there (warn redis.down, info redis.up) and not on the console', async () => {
  const spy = vi.spyOn(console, 'warn')
  const events: Array<[string, string]> = []
  const logger = {
    info: (fields: { event?: string }) => events.push(['info', String(fields.event)]),
    warn: (fields: { event?: string }) => events.push(['warn', String(fields.event)]),
    error: (fields: { event?: string }) => events.push(['error', String(fields.event)]),
  }
  const client = new Redis(redis.url)
  client.on('error', () => {})
  const store = new RedisStore({ client, logger: logger as never })
  try {
    await store.waitUntilReady()
    await redis.kill()
    await vi.waitFor(() => expect(events).toContainEqual(['warn', 'redis.down']), { timeout: 5_000, interval: 50 })
    await redis.restart()
    await vi.waitFor(() => expect(events).toContainEqual(['info', 'redis.up']), { timeout: 10_000, interval: 100 })
    expect(events.filter(([, event]) => event === 'redis.down')).toHaveLength(1)
    expect(spy).not.toHaveBeenCalled()
  } finally {
    spy.mockRestore()
    await store.close()
    client.disconnect()
  }
})
