import { generateToken, MemoryStore, newKeyId, type RateLimitOptions } from '@keyrot/core'
import { afterEach, describe, expect, it } from 'vitest'
import { CountingArgon2, describeTally, inOneSlash64, inOwnSlash64, send, serve, type Server } from './support.js'

/**
 * Issue 14, finding 3: per-IP limits counted exact addresses, so a client
 * with an IPv6 /64 (or a /48) was never limited; and a flood on one key id
 * spent its failure budget, which then refused the key's legitimate client
 * on a replica that had not proven its token yet, for a whole minute.
 *
 * Each case runs as it was (the old behaviour, still reachable through
 * options: exact addresses, no network budget, unpaced proofs) and as it
 * is now (the defaults), over real HTTP against an Express server.
 */

/** The limits as they were before prefixes and paced proofs. */
const AS_IT_WAS: RateLimitOptions = { ipPrefix: { ipv6: 128 }, failuresPerNetwork: false, proofsPerKey: false }

const servers: Server[] = []
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close()
})

async function start(rateLimit: RateLimitOptions = {}) {
  const hasher = new CountingArgon2()
  const server = await serve({ store: new MemoryStore(), hasher, rateLimit })
  servers.push(server)
  return { ...server, hasher }
}

describe('finding 3: IP limits count prefixes', () => {
  it.each([
    ['as it was', AS_IT_WAS],
    ['now', {}],
  ] as const)('200 failures from 200 addresses of one IPv6 /64, then from 200 /64s of one /48 (%s)', async (label, rateLimit) => {
    const { url } = await start(rateLimit)
    // Unknown key ids, each its own: only the IP and network limits can refuse them.
    const unknown = () => generateToken('sk_live', newKeyId())
    const oneSlash64 = await send(`${url}/v1/ping`, Array.from({ length: 200 }, (_, i) => ({ token: unknown(), ip: inOneSlash64(1, i) })))
    const oneSlash48 = await send(`${url}/v1/ping`, Array.from({ length: 200 }, (_, i) => ({ token: unknown(), ip: inOwnSlash64(2, i) })))
    console.log(
      `[security] finding 3, IP prefixes (${label}): one /64: ${oneSlash64.attempts} attempts, ${oneSlash64.statuses.get(429) ?? 0} x 429 (${describeTally(oneSlash64)}); ` +
        `one /48: ${oneSlash48.attempts} attempts, ${oneSlash48.statuses.get(429) ?? 0} x 429 (${describeTally(oneSlash48)}); 5xx: ${oneSlash64.serverErrors + oneSlash48.serverErrors}`,
    )
    expect(oneSlash64.serverErrors + oneSlash48.serverErrors).toBe(0)
    if (label === 'as it was') {
      expect(oneSlash64.statuses.get(429) ?? 0).toBe(0)
      expect(oneSlash48.statuses.get(429) ?? 0).toBe(0)
    } else {
      // The /64 has the 5 failures a minute of one client; the /48 the 100 of one network.
      expect(oneSlash64.statuses.get(429)).toBe(195)
      expect(oneSlash48.statuses.get(429)).toBe(100)
    }
  })
})

describe('finding 3: a flood on one key id does not lock its client out', () => {
  /** The legitimate client, first seen now on this server: retries after each 429 as told (at most 1 s), for at most `withinMs`. */
  async function legitimate(url: string, token: string, withinMs: number) {
    const started = performance.now()
    let firstRetryAfterS: number | undefined
    let refusals = 0
    for (;;) {
      const response = await fetch(`${url}/v1/ping`, { headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': '2001:db8:ffff::1' } })
      await response.arrayBuffer()
      if (response.status === 200) return { okAfterMs: performance.now() - started, refusals, firstRetryAfterS }
      expect(response.status).toBe(429)
      refusals++
      firstRetryAfterS ??= Number(response.headers.get('retry-after'))
      if (performance.now() - started > withinMs) return { okAfterMs: undefined, refusals, firstRetryAfterS }
      await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 1000 * Number(response.headers.get('retry-after')))))
    }
  }

  it('as it was: 300 wrong secrets from one /48 refuse the legitimate token for the rest of the minute', { timeout: 120_000 }, async () => {
    const { url, keyring, hasher } = await start(AS_IT_WAS)
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const flood = await send(`${url}/v1/ping`, Array.from({ length: 300 }, (_, i) => ({ token: generateToken('sk_live', key.id), ip: inOwnSlash64(3, i) })))
    const legit = await legitimate(url, token, 2_000)
    console.log(
      `[security] finding 3, flood on one key id (as it was): ${flood.attempts} attempts, ${flood.statuses.get(429) ?? 0} x 429, ${hasher.runs} Argon2 runs, ` +
        `legitimate client locked out: ${legit.okAfterMs === undefined ? `yes, told to retry after ${legit.firstRetryAfterS} s` : `no, OK after ${Math.round(legit.okAfterMs)} ms`}; 5xx: ${flood.serverErrors}`,
    )
    expect(legit.okAfterMs).toBeUndefined()
    expect(legit.firstRetryAfterS).toBeGreaterThan(30)
  })

  it('now: 10,000 wrong secrets from 10,000 addresses of one /48 cost at most one Argon2 run a second, and the token is proven within 2 s', { timeout: 300_000 }, async () => {
    const { url, keyring, hasher } = await start()
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const started = performance.now()
    const requests = Array.from({ length: 10_000 }, (_, i) => ({ token: generateToken('sk_live', key.id), ip: inOwnSlash64(4, i) }))
    // The legitimate client shows up once the flood is well under way.
    const flooding = send(`${url}/v1/ping`, requests)
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    const legit = await legitimate(url, token, 10_000)
    const flood = await flooding
    const seconds = (performance.now() - started) / 1000
    // Minus the legitimate token's own proof.
    const floodRuns = hasher.runs - 1
    console.log(
      `[security] finding 3, flood on one key id (now): ${flood.attempts} attempts in ${seconds.toFixed(1)} s, ${flood.statuses.get(429) ?? 0} x 429 (${describeTally(flood)}), ` +
        `${floodRuns} Argon2 runs for the flood (${(floodRuns / seconds).toFixed(3)}/s), legitimate client OK after ${Math.round(legit.okAfterMs ?? Number.NaN)} ms ` +
        `(${legit.refusals} x 429 first); 5xx: ${flood.serverErrors}`,
    )
    expect(flood.attempts).toBe(10_000)
    expect(flood.serverErrors).toBe(0)
    expect(floodRuns).toBeLessThanOrEqual(Math.ceil(seconds) + 1)
    expect(legit.okAfterMs).toBeDefined()
    expect(legit.okAfterMs as number).toBeLessThanOrEqual(2_000)
  })
})
