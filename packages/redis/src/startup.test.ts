import { Redis } from 'ioredis'
import { afterEach, expect, it } from 'vitest'
import { freePort } from '../../../test/helpers/redis-server.js'
import { RedisStore } from './redis-store.js'

const stores: RedisStore[] = []
const clients: Redis[] = []
afterEach(async () => {
  for (const store of stores.splice(0)) await store.close().catch(() => undefined)
  for (const client of clients.splice(0)) client.disconnect()
})

/** A store on a port nobody listens on. */
async function deadStore(options: { password?: string } = {}): Promise<{ store: RedisStore; port: number }> {
  const port = await freePort()
  const client = new Redis({ host: '127.0.0.1', port, lazyConnect: true, ...options })
  client.on('error', () => {})
  clients.push(client)
  const store = new RedisStore({ client })
  stores.push(store)
  return { store, port }
}

it('a start-up failure names the address, the cause and the option that sets the wait, never the password', async () => {
  const { store, port } = await deadStore({ password: 'hunter2-secret' })
  const failure = await store.waitUntilReady(300).then(
    () => null,
    (error: Error) => error,
  )
  expect(failure?.name).toBe('StoreUnavailableError')
  expect(failure?.message).toContain(`could not connect to 127.0.0.1:${port} within 300 ms: `)
  expect(failure?.message).toMatch(/ECONNREFUSED/)
  expect(failure?.message).toContain('waitUntilReady(timeoutMs) (default 5000 ms)')
  expect(failure?.message).not.toContain('hunter2')
  expect(JSON.stringify(failure)).not.toContain('hunter2')
})

it('an un-awaited waitUntilReady() that fails raises no unhandled rejection', async () => {
  const { store } = await deadStore()
  const unhandled: unknown[] = []
  const listener = (reason: unknown) => unhandled.push(reason)
  process.on('unhandledRejection', listener)
  try {
    void store.waitUntilReady(100)
    // Well past the deadline, and a few turns of the event loop for the rejection to be reported.
    await new Promise((resolve) => setTimeout(resolve, 600))
  } finally {
    process.off('unhandledRejection', listener)
  }
  expect(unhandled).toEqual([])
})
