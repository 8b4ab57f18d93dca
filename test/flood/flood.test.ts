import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomBytes } from 'node:crypto'
import { Argon2Hasher, createKeyring, generateToken, MemoryStore, type Hasher, type Keyring, type KeyringOptions } from '@keyrot/core'
import { apiKeyAuth } from '@keyrot/express'
import { RedisRateLimiter, RedisStore } from '@keyrot/redis'
import express from 'express'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'

/**
 * A flood of wrong secrets against real Express servers with the real
 * Argon2 hasher and the default limits: 2,000 requests from one IP, then
 * 2,000 from 500 IPs (4 each, under the per-IP limit), all with a valid key
 * id and checksum, while a legitimate client polls every 20 ms. Argon2 must
 * run for a tiny fraction of them, and the legitimate client must get 200
 * every time. Run on one server with the memory limiter, and on two
 * replicas sharing a redis-server (requests alternate between them).
 *
 * Client IPs come from `X-Forwarded-For`, trusted from loopback as behind a
 * local proxy (`trust proxy`); the addresses are loopback ones, never dialled.
 */

/** Argon2, counted (one counter shared by every replica of a run). */
class CountingArgon2 implements Hasher {
  verifications = 0
  readonly #inner = new Argon2Hasher()
  hash(token: string): Promise<string> {
    return this.#inner.hash(token)
  }
  verify(hash: string, token: string): Promise<boolean> {
    this.verifications++
    return this.#inner.verify(hash, token)
  }
  needsRehash(hash: string): boolean {
    return this.#inner.needsRehash(hash)
  }
}

const CONCURRENCY = 20
const REQUEST_TIMEOUT_MS = 10_000
const POLL_INTERVAL_MS = 20

interface Tally {
  requests: number
  statuses: Map<number, number>
}

/** Sends `requests` round-robin over `urls` with at most CONCURRENCY in flight; each request is bounded in time. */
async function flood(urls: string[], requests: { token: string; ip: string }[]): Promise<Tally> {
  const tally: Tally = { requests: 0, statuses: new Map() }
  let next = 0
  async function worker(): Promise<void> {
    while (next < requests.length) {
      const index = next++
      const { token, ip } = requests[index] as { token: string; ip: string }
      const response = await fetch(urls[index % urls.length] as string, {
        headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': ip },
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      })
      await response.arrayBuffer()
      tally.requests++
      tally.statuses.set(response.status, (tally.statuses.get(response.status) ?? 0) + 1)
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
  return tally
}

/** One replica: a keyring and an Express app on 127.0.0.1. */
async function serve(options: KeyringOptions, cleanup: (() => Promise<void> | void)[]): Promise<{ keyring: Keyring; url: string }> {
  const keyring = createKeyring(options)
  const app = express()
  // The test client plays the local reverse proxy: trust X-Forwarded-For from loopback.
  app.set('trust proxy', 'loopback')
  app.get('/v1/ping', apiKeyAuth({ keyring }), (_req, res) => {
    res.json({ ok: true })
  })
  const server = http.createServer(app)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  cleanup.push(async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
    await keyring.close()
  })
  return { keyring, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/ping` }
}

interface Deployment {
  keyring: Keyring
  urls: string[]
  hasher: CountingArgon2
}

const cleanup: (() => Promise<void> | void)[] = []
let redis: RedisServer | undefined

afterAll(async () => {
  for (const close of cleanup.reverse()) await close()
  await redis?.stop()
})

const deployments: [string, () => Promise<Deployment>][] = [
  [
    'one server, memory limiter',
    async () => {
      const hasher = new CountingArgon2()
      const { keyring, url } = await serve({ store: new MemoryStore(), hasher }, cleanup)
      return { keyring, urls: [url], hasher }
    },
  ],
  [
    'two replicas sharing a redis-server',
    async () => {
      redis = await startRedisServer()
      const hasher = new CountingArgon2()
      const keyPrefix = `flood${randomBytes(4).toString('hex')}`
      const replicas = []
      for (let i = 0; i < 2; i++) {
        const client = new Redis(redis.port, '127.0.0.1', { lazyConnect: true })
        cleanup.push(() => client.disconnect())
        const store = new RedisStore({ client, keyPrefix })
        replicas.push(await serve({ store, hasher, rateLimit: { limiter: RedisRateLimiter.forStore(store) } }, cleanup))
      }
      return { keyring: replicas[0]!.keyring, urls: replicas.map((replica) => replica.url), hasher }
    },
  ],
]

describe.each(deployments)('a flood of wrong secrets: %s', (name, deploy) => {
  let deployment: Deployment

  beforeAll(async () => {
    deployment = await deploy()
  }, 60_000)

  it('costs a handful of Argon2 runs and never refuses the legitimate client', { timeout: 120_000 }, async () => {
    const { keyring, urls, hasher } = deployment
    // The legitimate client polls every 20 ms: its key gets a quota to match.
    const legit = await keyring.create({ tenantId: 'acme', name: 'legit', rateLimit: { limit: 100_000, window: '1m' } })
    const target = legit.key.id
    // It has used its key on every replica before the flood starts.
    for (const url of urls) expect((await fetch(url, { headers: { authorization: `Bearer ${legit.token}` } })).status).toBe(200)
    const before = hasher.verifications

    let flooding = true
    const legitStatuses: number[] = []
    const poller = (async () => {
      for (let poll = 0; flooding; poll++) {
        const response = await fetch(urls[poll % urls.length] as string, {
          headers: { authorization: `Bearer ${legit.token}` },
          signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        })
        await response.arrayBuffer()
        legitStatuses.push(response.status)
        await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS))
      }
    })()

    const started = performance.now()
    let oneIp: Tally
    let manyIps: Tally
    try {
      oneIp = await flood(urls, Array.from({ length: 2000 }, () => ({ token: generateToken('sk_live', target), ip: '127.66.0.1' })))
      manyIps = await flood(
        urls,
        Array.from({ length: 2000 }, (_, i) => ({ token: generateToken('sk_live', target), ip: `127.77.${Math.floor(i / 4 / 250)}.${Math.floor(i / 4) % 250}` })),
      )
    } finally {
      flooding = false
      await poller
    }
    const elapsedMs = performance.now() - started

    const argon2Runs = hasher.verifications - before
    const requests = oneIp.requests + manyIps.requests
    const legitOk = legitStatuses.filter((status) => status === 200).length
    const describeStatuses = (tally: Tally) => [...tally.statuses].map(([status, count]) => `${status}x${count}`).join(' ')
    console.log(
      `flood (${name}): ${requests} wrong-secret requests in ${Math.round(elapsedMs)} ms ` +
        `(one IP: ${describeStatuses(oneIp)}; 500 IPs: ${describeStatuses(manyIps)}), ` +
        `argon2 verifications: ${argon2Runs} (${((100 * argon2Runs) / requests).toFixed(2)}%), ` +
        `legit client: ${legitOk}/${legitStatuses.length} OK (others: ${legitStatuses.filter((status) => status !== 200).join(' ') || 'none'})`,
    )

    expect(requests).toBe(4000)
    // Every wrong secret got a 401 (it was hashed) or a 429 (it was not), never anything else; or, when the
    // Argon2 queue could not start it within argon2.maxWait (a loaded machine), a 503 KEYROT_OVERLOADED (not hashed).
    for (const tally of [oneIp, manyIps]) {
      const statuses = [...tally.statuses.keys()].sort((x, y) => x - y)
      expect(statuses.filter((status) => status !== 503)).toEqual([401, 429])
    }
    expect((oneIp.statuses.get(401) ?? 0) + (manyIps.statuses.get(401) ?? 0)).toBe(argon2Runs)
    // One IP: at most its 5 failures a minute; all IPs together: at most the key's 20 unproven attempts a minute, fewer as
    // proofs of one key id are paced (one a second per replica once contested, none for a network whose proof failed then).
    const minutes = Math.floor(elapsedMs / 60_000) + 1
    expect(oneIp.statuses.get(401)).toBeGreaterThanOrEqual(1)
    expect(oneIp.statuses.get(401)).toBeLessThanOrEqual(5 * minutes)
    expect(argon2Runs).toBeGreaterThanOrEqual(1)
    expect(argon2Runs).toBeLessThanOrEqual(20 * minutes)
    expect(argon2Runs).toBeLessThan(0.05 * requests)
    expect(legitStatuses.length).toBeGreaterThan(10)
    expect(legitOk).toBe(legitStatuses.length)
  })
})
