import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Argon2Hasher, createKeyring, type Hasher, type Keyring, type KeyringOptions } from '@keyrot/core'
import { apiKeyAuth } from '@keyrot/express'
import express from 'express'

/**
 * Argon2id, counted. The work factor is the replicas' (m=1024 KiB, t=1, see
 * test/reliability/README.md) so a loaded 2-core machine can run the
 * floods; the code path is the production one, and the runs are counted.
 */
export class CountingArgon2 implements Hasher {
  runs = 0
  readonly #inner = new Argon2Hasher({ memoryCost: 1024, timeCost: 1, parallelism: 1 })
  hash(token: string): Promise<string> {
    return this.#inner.hash(token)
  }
  verify(hash: string, token: string): Promise<boolean> {
    this.runs++
    return this.#inner.verify(hash, token)
  }
  needsRehash(hash: string): boolean {
    return this.#inner.needsRehash(hash)
  }
}

export interface Server {
  keyring: Keyring
  url: string
  close(): Promise<void>
}

/**
 * A keyring behind a real Express server on 127.0.0.1 (`GET /v1/ping`).
 * Client IPs come from `X-Forwarded-For`, trusted from loopback as behind a
 * local proxy; the addresses are never dialled. `mount` adds routes first.
 */
export async function serve(options: KeyringOptions, mount?: (app: express.Express, keyring: Keyring) => void): Promise<Server> {
  const keyring = createKeyring(options)
  const app = express()
  app.set('trust proxy', 'loopback')
  mount?.(app, keyring)
  app.get('/v1/ping', apiKeyAuth({ keyring }), (_req, res) => {
    res.json({ ok: true })
  })
  const server = http.createServer(app)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  return {
    keyring,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await keyring.close()
    },
  }
}

export interface Tally {
  attempts: number
  statuses: Map<number, number>
  /** Status 5xx seen. */
  serverErrors: number
}

export function describeTally(tally: Tally): string {
  return [...tally.statuses].sort(([a], [b]) => a - b).map(([status, count]) => `${status}x${count}`).join(' ')
}

/** Sends each request with at most `concurrency` in flight, each bounded to 10 s. */
export async function send(url: string, requests: { token: string; ip: string }[], concurrency = 32): Promise<Tally> {
  const tally: Tally = { attempts: 0, statuses: new Map(), serverErrors: 0 }
  let next = 0
  async function worker(): Promise<void> {
    while (next < requests.length) {
      const { token, ip } = requests[next++] as { token: string; ip: string }
      const response = await fetch(url, { headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': ip }, signal: AbortSignal.timeout(10_000) })
      await response.arrayBuffer()
      tally.attempts++
      tally.statuses.set(response.status, (tally.statuses.get(response.status) ?? 0) + 1)
      if (response.status >= 500) tally.serverErrors++
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return tally
}

/** The i-th IPv6 address of 2001:db8:<site>::/48, each in its own /64. */
export function inOwnSlash64(site: number, i: number): string {
  return `2001:db8:${site.toString(16)}:${i.toString(16)}::1`
}

/** The i-th IPv6 address of 2001:db8:<site>:1::/64. */
export function inOneSlash64(site: number, i: number): string {
  return `2001:db8:${site.toString(16)}:1::${(i + 1).toString(16)}`
}
