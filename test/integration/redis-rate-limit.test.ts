import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomBytes } from 'node:crypto'
import { createKeyring, FastTestHasher, generateToken, ManualClock, RateLimitedError, type Keyring, type VerifyResult } from '@keyrot/core'
import { apiKeyAuth } from '@keyrot/express'
import { RedisRateLimiter, RedisStore } from '@keyrot/redis'
import express from 'express'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { describeRateLimiterContract } from '../contract/rate-limiter-contract.js'
import { freePort, startRedisServer, type RedisServer } from '../helpers/redis-server.js'

/**
 * The Redis rate limiter on a real redis-server: the limiter contract with
 * two connections standing for two replicas, then two keyrings (replicas,
 * each with its own connections, store and limiter) sharing one Redis and
 * one fake clock, and two Express servers over HTTP.
 */

let server: RedisServer
let raw: Redis
const cleanup: (() => Promise<void> | void)[] = []

beforeAll(async () => {
  server = await startRedisServer()
  raw = new Redis(server.port, '127.0.0.1')
})

afterAll(async () => {
  for (const close of cleanup.reverse()) await close()
  raw?.disconnect()
  await server?.stop()
})

function appClient(): Redis {
  const client = new Redis(server.port, '127.0.0.1', { lazyConnect: true })
  cleanup.push(() => client.disconnect())
  return client
}

function limiter(keyPrefix: string, timeout: string | number = '2s'): RedisRateLimiter {
  const created = new RedisRateLimiter({ client: appClient(), keyPrefix, timeout })
  cleanup.push(() => created.close())
  return created
}

const freshPrefix = () => `rl${randomBytes(5).toString('hex')}`

describeRateLimiterContract('RedisRateLimiter (redis-server, two connections)', async () => {
  const keyPrefix = freshPrefix()
  return { limiter: limiter(keyPrefix), peer: limiter(keyPrefix) }
})

describe('RedisRateLimiter keys', () => {
  it('keeps counters in the {abuse} slot and quotas beside the key, each expiring once it no longer matters', async () => {
    const keyPrefix = freshPrefix()
    const redisLimiter = limiter(keyPrefix)
    const now = Date.now()
    const limits = {
      failuresPerIp: { limit: 5, windowMs: 60_000 },
      ipBlock: { threshold: 20, windowMs: 3_600_000, durationMs: 3_600_000 },
      failuresPerKey: { limit: 20, windowMs: 60_000 },
    }
    await redisLimiter.admit({ ip: '127.0.0.1', keyId: 'AbCdEfGhIjKlMnOp', chargeIp: true, chargeKey: true }, limits, now)
    await redisLimiter.consume('AbCdEfGhIjKlMnOp', { limit: 100, windowMs: 60_000 }, now)
    expect((await raw.keys(`${keyPrefix}:*`)).sort()).toEqual([
      `${keyPrefix}:{AbCdEfGhIj}:quota:AbCdEfGhIjKlMnOp`,
      `${keyPrefix}:{abuse}:ip:127.0.0.1`,
      `${keyPrefix}:{abuse}:kf:AbCdEfGhIjKlMnOp`,
    ])
    const ipTtl = await raw.pttl(`${keyPrefix}:{abuse}:ip:127.0.0.1`)
    expect(ipTtl).toBeGreaterThan(3_500_000)
    expect(ipTtl).toBeLessThanOrEqual(3_600_000)
    const keyTtl = await raw.pttl(`${keyPrefix}:{abuse}:kf:AbCdEfGhIjKlMnOp`)
    expect(keyTtl).toBeGreaterThan(50_000)
    expect(keyTtl).toBeLessThanOrEqual(60_000)
    const quotaTtl = await raw.pttl(`${keyPrefix}:{AbCdEfGhIj}:quota:AbCdEfGhIjKlMnOp`)
    expect(quotaTtl).toBeGreaterThan(0)
    expect(quotaTtl).toBeLessThanOrEqual(600)
  })

  it("falls back to the replica's own counters when Redis does not answer: limits still hold, never a 503, never a pass", async () => {
    const deadPort = await freePort()
    const client = new Redis(deadPort, '127.0.0.1', { lazyConnect: true, retryStrategy: () => null })
    cleanup.push(() => client.disconnect())
    const unreachable = new RedisRateLimiter({ client, timeout: '300ms' })
    cleanup.push(() => unreachable.close())
    const keyring = createKeyring({ hasher: new FastTestHasher(), rateLimit: { limiter: unreachable } })
    cleanup.push(() => keyring.close())
    const phases: string[] = []
    keyring.on('ratelimit.fallback', (event) => phases.push(event.phase))
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci', rateLimit: { limit: 2, window: '1m' } })
    const codes: string[] = []
    for (let i = 0; i < 3; i++) codes.push(codeOf(await keyring.verify(token, { clientIp: '127.0.0.1' })))
    expect(codes).toEqual(['OK', 'OK', 'KEYROT_RATE_LIMITED'])
    expect(phases).toEqual(['start'])
    expect(keyring.outageStats().rateLimitFallbacks).toBeGreaterThanOrEqual(3)
  })
})

interface Replica {
  keyring: Keyring
}

function codeOf(result: VerifyResult): string {
  return result.ok ? 'OK' : result.error.code
}

describe('two replicas sharing one Redis', () => {
  const clock = new ManualClock()
  let a: Replica
  let b: Replica

  function replica(keyPrefix: string): Replica {
    const store = new RedisStore({ client: appClient(), keyPrefix })
    const keyring = createKeyring({ store, hasher: new FastTestHasher(), clock, rateLimit: { limiter: RedisRateLimiter.forStore(store), proofsPerKey: false } })
    cleanup.push(() => keyring.close())
    return { keyring }
  }

  beforeAll(() => {
    const keyPrefix = freshPrefix()
    a = replica(keyPrefix)
    b = replica(keyPrefix)
  })

  const wrongSecretFor = (keyId: string) => generateToken('sk_live', keyId)

  // Proofs unpaced: these tests send many wrong secrets for one key id at one instant, to reach the shared counters (pacing: test/security).
  it('counts one IP\'s failures on both: 3 on one and 2 on the other lock it out of both', async () => {
    const { key } = await a.keyring.create({ tenantId: 'acme', name: 'ci' })
    const ip = '127.5.0.1'
    for (let i = 0; i < 3; i++) expect(codeOf(await a.keyring.verify(wrongSecretFor(key.id), { clientIp: ip }))).toBe('KEYROT_INVALID_SECRET')
    for (let i = 0; i < 2; i++) expect(codeOf(await b.keyring.verify(wrongSecretFor(key.id), { clientIp: ip }))).toBe('KEYROT_INVALID_SECRET')
    for (const replica of [a, b]) expect(codeOf(await replica.keyring.verify(wrongSecretFor(key.id), { clientIp: ip }))).toBe('KEYROT_RATE_LIMITED')
    clock.advance(60_000)
    expect(codeOf(await b.keyring.verify(wrongSecretFor(key.id), { clientIp: ip }))).toBe('KEYROT_INVALID_SECRET')
  })

  it('blocks an IP on both replicas for one hour after 20 failures spread over them', async () => {
    const { token, key } = await a.keyring.create({ tenantId: 'acme', name: 'ci' })
    const ip = '127.5.0.2'
    for (let minute = 0; minute < 4; minute++) {
      for (let i = 0; i < 5; i++) {
        const replica = i % 2 === 0 ? a : b
        expect(codeOf(await replica.keyring.verify(wrongSecretFor(key.id), { clientIp: ip }))).toBe('KEYROT_INVALID_SECRET')
      }
      if (minute < 3) clock.advance(60_000)
    }
    const blockedAt = clock.now()
    for (const replica of [a, b]) expect(codeOf(await replica.keyring.verify(token, { clientIp: ip }))).toBe('KEYROT_IP_BLOCKED')
    clock.set(blockedAt + 3_600_000 - 1)
    expect(codeOf(await b.keyring.verify(token, { clientIp: ip }))).toBe('KEYROT_IP_BLOCKED')
    clock.set(blockedAt + 3_600_000)
    expect(codeOf(await b.keyring.verify(token, { clientIp: ip }))).toBe('OK')
    expect(codeOf(await a.keyring.verify(token, { clientIp: ip }))).toBe('OK')
  })

  it('shares a key\'s quota: 60 requests on one and 40 on the other use it up', async () => {
    const { token } = await a.keyring.create({ tenantId: 'acme', name: 'ci' })
    for (let i = 0; i < 60; i++) expect(codeOf(await a.keyring.verify(token))).toBe('OK')
    for (let i = 0; i < 40; i++) expect(codeOf(await b.keyring.verify(token))).toBe('OK')
    for (const replica of [a, b]) {
      const refused = await replica.keyring.verify(token)
      expect(refused.ok ? undefined : refused.error).toMatchObject({ code: 'KEYROT_RATE_LIMITED', policy: 'per-key', retryAfterMs: 600 })
    }
    clock.advance(600)
    expect(await b.keyring.verify(token)).toMatchObject({ ok: true, rateLimit: { remaining: 0 } })
  })

  it('shares a key override and its inheritance by rotation', async () => {
    const issued = await a.keyring.create({ tenantId: 'acme', name: 'ci', rateLimit: { limit: 2, window: '1m' } })
    const rotated = await b.keyring.rotate(issued.key.id)
    expect(codeOf(await a.keyring.verify(rotated.token))).toBe('OK')
    expect(codeOf(await b.keyring.verify(rotated.token))).toBe('OK')
    expect(codeOf(await a.keyring.verify(rotated.token))).toBe('KEYROT_RATE_LIMITED')
  })

  it('shares the failure budget of a key id: unproven tokens are refused on both, a proven one still passes', async () => {
    const { token, key } = await a.keyring.create({ tenantId: 'acme', name: 'ci' })
    expect(codeOf(await a.keyring.verify(token))).toBe('OK')
    for (let i = 0; i < 20; i++) {
      const replica = i % 2 === 0 ? a : b
      expect(codeOf(await replica.keyring.verify(wrongSecretFor(key.id), { clientIp: `127.6.0.${i}` }))).toBe('KEYROT_INVALID_SECRET')
    }
    const refused = await b.keyring.verify(wrongSecretFor(key.id), { clientIp: '127.6.1.1' })
    expect(refused.ok ? undefined : refused.error).toBeInstanceOf(RateLimitedError)
    expect(refused.ok ? undefined : (refused.error as RateLimitedError).policy).toBe('key-failures')
    // Proven on replica A, unproven on replica B.
    expect(codeOf(await a.keyring.verify(token))).toBe('OK')
    expect(codeOf(await b.keyring.verify(token))).toBe('KEYROT_RATE_LIMITED')
    clock.advance(60_000)
    expect(codeOf(await b.keyring.verify(token))).toBe('OK')
  })
})

describe('two Express replicas over HTTP', () => {
  const servers: http.Server[] = []
  const ports: number[] = []

  beforeAll(async () => {
    const keyPrefix = freshPrefix()
    for (let i = 0; i < 2; i++) {
      const store = new RedisStore({ client: appClient(), keyPrefix })
      const keyring = createKeyring({ store, hasher: new FastTestHasher(), rateLimit: { limiter: RedisRateLimiter.forStore(store), proofsPerKey: false } })
      cleanup.push(() => keyring.close())
      const app = express()
      app.set('trust proxy', 'loopback')
      app.get('/v1/ping', apiKeyAuth({ keyring }), (_req, res) => {
        res.json({ ok: true })
      })
      const httpServer = http.createServer(app)
      await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', () => resolve()))
      servers.push(httpServer)
      ports.push((httpServer.address() as AddressInfo).port)
      cleanup.push(
        () =>
          new Promise<void>((resolve) => {
            httpServer.closeAllConnections()
            httpServer.close(() => resolve())
          }),
      )
    }
    const created = await createKeyring({ store: new RedisStore({ client: appClient(), keyPrefix, invalidation: false }), hasher: new FastTestHasher() })
    cleanup.push(() => created.close())
    target = (await created.create({ tenantId: 'acme', name: 'ci' })).key.id
  })

  let target: string

  async function get(port: number, ip: string): Promise<{ status: number; headers: Headers; body: unknown }> {
    const response = await fetch(`http://127.0.0.1:${port}/v1/ping`, {
      headers: { authorization: `Bearer ${generateToken('sk_live', target)}`, 'x-forwarded-for': ip },
      signal: AbortSignal.timeout(5_000),
    })
    return { status: response.status, headers: response.headers, body: await response.json() }
  }

  it('answers the 6th failure of an IP with 429 and the RateLimit headers, whichever replica the 5 went to', async () => {
    const ip = '127.7.0.1'
    for (let i = 0; i < 5; i++) expect((await get(ports[i % 2] as number, ip)).status).toBe(401)
    for (const port of ports) {
      const refused = await get(port, ip)
      expect(refused.status).toBe(429)
      expect(refused.body).toEqual({ error: { code: 'KEYROT_RATE_LIMITED', message: 'Too many requests.' } })
      expect(refused.headers.get('ratelimit-policy')).toBe('"ip-failures";q=5;w=60')
      expect(refused.headers.get('ratelimit')).toMatch(/^"ip-failures";r=0;t=(59|60)$/)
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(59)
    }
    expect((await get(ports[0] as number, '127.7.0.2')).status).toBe(401)
  })
})
