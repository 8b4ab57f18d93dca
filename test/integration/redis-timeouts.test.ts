import { createServer, type Server, type Socket } from 'node:net'
import { createKeyring, FastTestHasher, generateToken, newKeyId, StoreUnavailableError, type Keyring } from '@keyrot/core'
import { apiKeyAuth } from '@keyrot/express'
import { RedisStore } from '@keyrot/redis'
import express from 'express'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { freePort, startRedisServer, type RedisServer } from '../helpers/redis-server.js'

/**
 * When Redis is down or silent, verify fails with KEYROT_STORE_UNAVAILABLE
 * (503) within the store's timeout, whatever the application's own client
 * settings (ioredis defaults would wait 10.5 s, or forever).
 */

const opened: { close(): Promise<void> | void }[] = []

afterEach(async () => {
  for (const thing of opened.splice(0)) await thing.close()
})

function keyringOn(client: Redis, timeout: number): Keyring {
  const store = new RedisStore({ client, timeout, keyPrefix: 'timeouts' })
  const keyring = createKeyring({ store, hasher: new FastTestHasher(), prefix: 'sk_test' })
  opened.push(keyring, { close: () => client.disconnect() })
  return keyring
}

async function timedVerify(keyring: Keyring): Promise<{ error: unknown; elapsedMs: number }> {
  const token = generateToken('sk_test', newKeyId())
  const started = performance.now()
  try {
    await keyring.verify(token)
  } catch (error) {
    return { error, elapsedMs: performance.now() - started }
  }
  throw new Error('verify resolved although the store cannot answer')
}

describe('a Redis that accepts connections and never answers', () => {
  let blackhole: Server
  let port: number
  const sockets = new Set<Socket>()

  beforeAll(async () => {
    blackhole = createServer((socket) => {
      sockets.add(socket)
      socket.on('data', () => {}) // swallow every byte, answer nothing
      socket.on('close', () => sockets.delete(socket))
    })
    await new Promise<void>((resolve) => blackhole.listen(0, '127.0.0.1', resolve))
    port = (blackhole.address() as { port: number }).port
  })

  afterAll(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise((resolve) => blackhole.close(resolve))
  })

  it('makes verify throw StoreUnavailableError (503) within the timeout, then at once while the store circuit is open', async () => {
    // The application's client keeps ioredis defaults (offline queue, no command timeout).
    const keyring = keyringOn(new Redis(port, '127.0.0.1', { lazyConnect: true }), 250)
    for (let attempt = 0; attempt < 3; attempt++) {
      const { error, elapsedMs } = await timedVerify(keyring)
      expect(error).toBeInstanceOf(StoreUnavailableError)
      expect((error as StoreUnavailableError).code).toBe('KEYROT_STORE_UNAVAILABLE')
      expect((error as StoreUnavailableError).status).toBe(503)
      // The first read waits the timeout and opens the circuit; later ones do not wait for the silent server.
      if (attempt === 0) expect(elapsedMs).toBeGreaterThanOrEqual(200)
      else expect(elapsedMs).toBeLessThan(200)
      expect(elapsedMs).toBeLessThan(1_000)
    }
    expect(keyring.outageStats()).toMatchObject({ storeUp: false, storeOutages: 1 })
  })
})

describe('over HTTP (Express)', () => {
  it('answers 503 KEYROT_STORE_UNAVAILABLE when Redis is down', async () => {
    const keyring = keyringOn(new Redis(await freePort(), '127.0.0.1', { lazyConnect: true }), 300)
    const app = express()
    app.get('/v1/things', apiKeyAuth({ keyring }), (_req, res) => {
      res.json({ ok: true })
    })
    const listener = app.listen(0, '127.0.0.1')
    opened.push({ close: () => new Promise<void>((resolve) => listener.close(() => resolve())) })
    await new Promise((resolve) => listener.once('listening', resolve))
    const { port } = listener.address() as { port: number }
    const response = await fetch(`http://127.0.0.1:${port}/v1/things`, {
      headers: { authorization: `Bearer ${generateToken('sk_test', newKeyId())}` },
      signal: AbortSignal.timeout(5_000),
    })
    expect(response.status).toBe(503)
    expect(JSON.stringify(await response.json())).toContain('KEYROT_STORE_UNAVAILABLE')
  })
})

describe('a dead port', () => {
  it('makes verify throw StoreUnavailableError at once, without waiting for the timeout', async () => {
    const port = await freePort()
    const keyring = keyringOn(new Redis(port, '127.0.0.1', { lazyConnect: true }), 3_000)
    for (let attempt = 0; attempt < 3; attempt++) {
      const { error, elapsedMs } = await timedVerify(keyring)
      expect(error).toBeInstanceOf(StoreUnavailableError)
      expect(elapsedMs).toBeLessThan(1_000)
    }
  })
})

describe('a Redis that stops answering after it was ready', () => {
  let server: RedisServer

  beforeAll(async () => {
    server = await startRedisServer()
  })

  afterAll(async () => {
    await server.stop()
  })

  it('fails verify within the timeout while paused and recovers once Redis answers again', async () => {
    const keyring = keyringOn(new Redis(server.port, '127.0.0.1'), 250)
    const { token } = await keyring.create({ tenantId: 'acme', name: 'paused' })
    const fresh = createKeyring({ store: keyring.store, hasher: new FastTestHasher(), prefix: 'sk_test', cache: { maxEntries: 0 } })
    expect((await fresh.verify(token)).ok).toBe(true)
    server.process.kill('SIGSTOP')
    try {
      const started = performance.now()
      await expect(fresh.verify(token)).rejects.toBeInstanceOf(StoreUnavailableError)
      expect(performance.now() - started).toBeLessThan(1_000)
    } finally {
      server.process.kill('SIGCONT')
    }
    // The timed-out command's reply arrives late; the connection keeps working.
    await expect.poll(async () => (await fresh.verify(token)).ok, { timeout: 5_000 }).toBe(true)
  })
})
