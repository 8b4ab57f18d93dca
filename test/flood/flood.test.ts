import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Argon2Hasher, createKeyring, generateToken, MemoryStore, type Hasher, type Keyring } from '@keyrot/core'
import { apiKeyAuth } from '@keyrot/express'
import express from 'express'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

/**
 * A flood of wrong secrets against a real Express server with the real
 * Argon2 hasher and the default limits: 2,000 requests from one IP, then
 * 2,000 from 500 IPs (4 each, under the per-IP limit), all with a valid key
 * id and checksum, while a legitimate client polls every 20 ms. Argon2 must
 * run for a tiny fraction of them, and the legitimate client must get 200
 * every time.
 *
 * Client IPs come from `X-Forwarded-For`, trusted from loopback as behind a
 * local proxy (`trust proxy`); the addresses are loopback ones, never dialled.
 */

/** Argon2, counted. */
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

/** Sends `requests` with at most CONCURRENCY in flight; each request is bounded in time. */
async function flood(url: string, requests: { token: string; ip: string }[]): Promise<Tally> {
  const tally: Tally = { requests: 0, statuses: new Map() }
  let next = 0
  async function worker(): Promise<void> {
    while (next < requests.length) {
      const { token, ip } = requests[next++] as { token: string; ip: string }
      const response = await fetch(url, {
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

describe('a flood of wrong secrets', () => {
  let keyring: Keyring
  let hasher: CountingArgon2
  let server: http.Server
  let url: string

  beforeAll(async () => {
    hasher = new CountingArgon2()
    keyring = createKeyring({ store: new MemoryStore(), hasher })
    const app = express()
    // The test client plays the local reverse proxy: trust X-Forwarded-For from loopback.
    app.set('trust proxy', 'loopback')
    app.get('/v1/ping', apiKeyAuth({ keyring }), (_req, res) => {
      res.json({ ok: true })
    })
    server = http.createServer(app)
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', resolve)
    })
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/ping`
  })

  afterAll(async () => {
    server?.closeAllConnections()
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()))
    await keyring?.close()
  })

  it('costs a handful of Argon2 runs and never refuses the legitimate client', { timeout: 120_000 }, async () => {
    // The legitimate client polls every 20 ms: its key gets a quota to match.
    const legit = await keyring.create({ tenantId: 'acme', name: 'legit', rateLimit: { limit: 100_000, window: '1m' } })
    const target = legit.key.id
    const warmUp = await fetch(url, { headers: { authorization: `Bearer ${legit.token}` } })
    expect(warmUp.status).toBe(200)
    const before = hasher.verifications

    let flooding = true
    const legitStatuses: number[] = []
    const poller = (async () => {
      while (flooding) {
        const response = await fetch(url, { headers: { authorization: `Bearer ${legit.token}` }, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
        await response.arrayBuffer()
        legitStatuses.push(response.status)
        await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS))
      }
    })()

    const started = performance.now()
    const oneIp = await flood(url, Array.from({ length: 2000 }, () => ({ token: generateToken('sk_live', target), ip: '127.66.0.1' })))
    const manyIps = await flood(
      url,
      Array.from({ length: 2000 }, (_, i) => ({ token: generateToken('sk_live', target), ip: `127.77.${Math.floor(i / 4 / 250)}.${Math.floor(i / 4) % 250}` })),
    )
    const elapsedMs = performance.now() - started
    flooding = false
    await poller

    const argon2Runs = hasher.verifications - before
    const requests = oneIp.requests + manyIps.requests
    const legitOk = legitStatuses.filter((status) => status === 200).length
    const describeStatuses = (tally: Tally) => [...tally.statuses].map(([status, count]) => `${status}x${count}`).join(' ')
    console.log(
      `flood: ${requests} wrong-secret requests in ${Math.round(elapsedMs)} ms ` +
        `(one IP: ${describeStatuses(oneIp)}; 500 IPs: ${describeStatuses(manyIps)}), ` +
        `argon2 verifications: ${argon2Runs} (${((100 * argon2Runs) / requests).toFixed(2)}%), ` +
        `legit client: ${legitOk}/${legitStatuses.length} OK, refused: ${JSON.stringify(keyring.rateLimitStats()?.refused)}`,
    )

    expect(requests).toBe(4000)
    // Every wrong secret got a 401 (it was hashed) or a 429 (it was not), never anything else.
    for (const tally of [oneIp, manyIps]) expect([...tally.statuses.keys()].sort((a, b) => a - b)).toEqual([401, 429])
    expect((oneIp.statuses.get(401) ?? 0) + (manyIps.statuses.get(401) ?? 0)).toBe(argon2Runs)
    // One IP: its 5 failures; many IPs: the key's budget of 20 unproven attempts a minute.
    expect(oneIp.statuses.get(401)).toBe(5)
    expect(argon2Runs).toBeLessThan(0.05 * requests)
    expect(legitStatuses.length).toBeGreaterThan(10)
    expect(legitOk).toBe(legitStatuses.length)
  })
})
