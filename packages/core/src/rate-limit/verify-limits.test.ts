import { describe, expect, it } from 'vitest'
import { ManualClock } from '../clock.js'
import { RateLimitedError } from '../errors.js'
import type { KeyringEvents } from '../events.js'
import { FastTestHasher } from '../hash/hasher.js'
import { createKeyring, type VerifyResult } from '../lifecycle/keyring.js'
import type { KeyringOptions } from '../options.js'
import { MemoryStore } from '../store/memory-store.js'
import { generateToken } from '../token/format.js'
import type { KeyRecord } from '../types.js'
import type { RateLimiter } from './limiter.js'
import { MemoryRateLimiter } from './memory-limiter.js'

/** Counts store reads. */
class CountingStore extends MemoryStore {
  reads = 0
  override async get(keyId: string): Promise<KeyRecord | null> {
    this.reads++
    return super.get(keyId)
  }
}

/** Counts hash checks; `gate`, when set, holds every check until it resolves. */
class CountingHasher extends FastTestHasher {
  verifyCalls = 0
  gate: Promise<void> | null = null
  override async verify(hash: string, token: string): Promise<boolean> {
    this.verifyCalls++
    if (this.gate) await this.gate
    return super.verify(hash, token)
  }
}

/**
 * A keyring whose proofs are not paced unless `paced`: these tests send many
 * wrong secrets for one key id at one instant to reach the other limits,
 * which pacing would refuse first (pacing has its own tests below).
 */
function setup(options: Omit<KeyringOptions, 'store' | 'hasher' | 'clock'> = {}, paced = false) {
  const clock = new ManualClock()
  const store = new CountingStore()
  const hasher = new CountingHasher()
  const rateLimit = options.rateLimit === false || paced ? options.rateLimit : { proofsPerKey: false as const, ...options.rateLimit }
  const keyring = createKeyring({ store, hasher, clock, ...options, rateLimit })
  const blocked: KeyringEvents['ratelimit.blocked'][] = []
  keyring.on('ratelimit.blocked', (event) => blocked.push(event))
  return { keyring, store, hasher, clock, blocked }
}

function codeOf(result: VerifyResult): string {
  return result.ok ? 'OK' : result.error.code
}

function rateLimitOf(result: VerifyResult): RateLimitedError {
  if (result.ok || !(result.error instanceof RateLimitedError)) throw new Error(`expected a rate limit, got ${codeOf(result)}`)
  return result.error
}

/** A token with the right key id and checksum but a wrong secret. */
function wrongSecretFor(keyId: string): string {
  return generateToken('sk_live', keyId)
}

const IP = '127.0.0.10'

describe('failures per client IP', () => {
  it('answers the first 5 failures in a minute, then 429 for the rest of the minute, then again', async () => {
    const { keyring, clock } = setup()
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const start = clock.now()
    for (let i = 0; i < 5; i++) {
      expect(codeOf(await keyring.verify(wrongSecretFor(key.id), { clientIp: IP }))).toBe('KEYROT_INVALID_SECRET')
      clock.advance(1000)
    }
    const sixth = rateLimitOf(await keyring.verify(wrongSecretFor(key.id), { clientIp: IP }))
    expect(sixth).toMatchObject({ code: 'KEYROT_RATE_LIMITED', policy: 'ip-failures', scope: 'ip', limit: 5, windowMs: 60_000, retryAfterMs: 55_000 })
    clock.set(start + 59_999)
    expect(rateLimitOf(await keyring.verify(wrongSecretFor(key.id), { clientIp: IP })).retryAfterMs).toBe(1)
    clock.set(start + 60_000)
    expect(codeOf(await keyring.verify(wrongSecretFor(key.id), { clientIp: IP }))).toBe('KEYROT_INVALID_SECRET')
  })

  it('counts malformed tokens and unknown key ids as failures', async () => {
    const { keyring } = setup()
    for (const token of ['nope', 'sk_live_0000000000000000_bad', generateToken('sk_live', 'AAAAAAAAAAAAAAAA')]) {
      expect(codeOf(await keyring.verify(token, { clientIp: IP }))).not.toBe('KEYROT_RATE_LIMITED')
    }
    expect(codeOf(await keyring.verify('x', { clientIp: IP }))).toBe('KEYROT_MALFORMED_TOKEN')
    expect(codeOf(await keyring.verify(generateToken('sk_live', 'BBBBBBBBBBBBBBBB'), { clientIp: IP }))).toBe('KEYROT_KEY_NOT_FOUND')
    expect(codeOf(await keyring.verify('x', { clientIp: IP }))).toBe('KEYROT_RATE_LIMITED')
  })

  it('refuses a locked-out IP even with a valid key, and leaves other IPs alone', async () => {
    const { keyring } = setup()
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    for (let i = 0; i < 5; i++) await keyring.verify(wrongSecretFor(key.id), { clientIp: IP })
    expect(codeOf(await keyring.verify(token, { clientIp: IP }))).toBe('KEYROT_RATE_LIMITED')
    expect(codeOf(await keyring.verify(token, { clientIp: '127.0.0.11' }))).toBe('OK')
    expect(codeOf(await keyring.verify(token))).toBe('OK')
  })

  it('does not count the right secret of an expired or revoked key, nor a missing scope', async () => {
    const { keyring, clock } = setup()
    const expiring = await keyring.create({ tenantId: 'acme', name: 'short', expiresAt: clock.now() + 1000 })
    const revoked = await keyring.create({ tenantId: 'acme', name: 'gone' })
    const scoped = await keyring.create({ tenantId: 'acme', name: 'read', scopes: ['read'] })
    await keyring.revoke(revoked.key.id)
    clock.advance(1000)
    for (let i = 0; i < 4; i++) {
      expect(codeOf(await keyring.verify(expiring.token, { clientIp: IP }))).toBe('KEYROT_KEY_EXPIRED')
      expect(codeOf(await keyring.verify(revoked.token, { clientIp: IP }))).toBe('KEYROT_KEY_REVOKED')
      expect(codeOf(await keyring.verify(scoped.token, { clientIp: IP, scopes: ['write'] }))).toBe('KEYROT_INSUFFICIENT_SCOPE')
    }
    for (let i = 0; i < 5; i++) expect(codeOf(await keyring.verify(wrongSecretFor(scoped.key.id), { clientIp: IP }))).toBe('KEYROT_INVALID_SECRET')
    expect(codeOf(await keyring.verify(wrongSecretFor(scoped.key.id), { clientIp: IP }))).toBe('KEYROT_RATE_LIMITED')
  })

  it('lets no more than 5 of 30 concurrent wrong secrets from one IP reach the hasher', async () => {
    const { keyring, hasher } = setup()
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    let open!: () => void
    hasher.gate = new Promise((resolve) => (open = resolve))
    const attempts = Array.from({ length: 30 }, () => keyring.verify(wrongSecretFor(key.id), { clientIp: IP }))
    await new Promise((resolve) => setImmediate(resolve))
    open()
    const codes = (await Promise.all(attempts)).map(codeOf)
    expect(hasher.verifyCalls).toBe(5)
    expect(codes.filter((code) => code === 'KEYROT_INVALID_SECRET')).toHaveLength(5)
    expect(codes.filter((code) => code === 'KEYROT_RATE_LIMITED')).toHaveLength(25)
  })

  it('charges a burst of parallel requests with one fresh valid token once, and refunds it', async () => {
    const { keyring } = setup()
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    for (let i = 0; i < 4; i++) await keyring.verify(wrongSecretFor(key.id), { clientIp: IP })
    const burst = await Promise.all(Array.from({ length: 10 }, () => keyring.verify(token, { clientIp: IP })))
    expect(burst.map(codeOf)).toEqual(Array(10).fill('OK'))
    // Four failures stand, the burst cost none: one more failure is still allowed.
    expect(codeOf(await keyring.verify(wrongSecretFor(key.id), { clientIp: IP }))).toBe('KEYROT_INVALID_SECRET')
    expect(codeOf(await keyring.verify(wrongSecretFor(key.id), { clientIp: IP }))).toBe('KEYROT_RATE_LIMITED')
  })
})

describe('IP block', () => {
  it('refuses a locked-out IP a token it proved before (a cache hit), and serves it again once the lockout ends', async () => {
    const { keyring, clock } = setup()
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    expect(await keyring.verify(token, { clientIp: IP })).toMatchObject({ ok: true })
    expect(await keyring.verify(token, { clientIp: IP })).toMatchObject({ ok: true, cached: true })
    for (let i = 0; i < 5; i++) await keyring.verify(wrongSecretFor(key.id), { clientIp: IP })
    expect(codeOf(await keyring.verify(token, { clientIp: IP }))).toBe('KEYROT_RATE_LIMITED')
    expect(await keyring.verify(token, { clientIp: '127.0.0.11' })).toMatchObject({ ok: true, cached: true })
    clock.advance(60_000)
    expect(await keyring.verify(token, { clientIp: IP })).toMatchObject({ ok: true })
  })

  it('blocks an IP at its 20th failure for exactly one hour', async () => {
    const { keyring, clock, blocked } = setup()
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    for (let minute = 0; minute < 4; minute++) {
      for (let i = 0; i < 5; i++) expect(codeOf(await keyring.verify(wrongSecretFor(key.id), { clientIp: IP }))).toBe('KEYROT_INVALID_SECRET')
      if (minute < 3) clock.advance(60_000)
    }
    const blockedAt = clock.now()
    clock.advance(60_000)
    const refusal = rateLimitOf(await keyring.verify(token, { clientIp: IP }))
    expect(refusal).toMatchObject({ code: 'KEYROT_IP_BLOCKED', policy: 'ip-block', scope: 'ip', limit: 20, retryAfterMs: 3_600_000 - 60_000 })
    clock.set(blockedAt + 3_600_000 - 1)
    expect(rateLimitOf(await keyring.verify(token, { clientIp: IP }))).toMatchObject({ code: 'KEYROT_IP_BLOCKED', retryAfterMs: 1 })
    clock.set(blockedAt + 3_600_000)
    expect(codeOf(await keyring.verify(token, { clientIp: IP }))).toBe('OK')
    // The block is served: the IP starts with a clean slate.
    for (let i = 0; i < 5; i++) expect(codeOf(await keyring.verify(wrongSecretFor(key.id), { clientIp: IP }))).toBe('KEYROT_INVALID_SECRET')
    expect(blocked.filter((event) => event.policy === 'ip-block')).toHaveLength(2)
    expect(blocked[0]).toMatchObject({ code: 'KEYROT_IP_BLOCKED', scope: 'ip', clientIp: IP, keyId: key.id })
    expect(keyring.rateLimitStats()?.refused['ip-block']).toBe(2)
  })
})

describe('checks before the store and the hasher', () => {
  it('refuses a locked-out IP with no store read and no hashing', async () => {
    const { keyring, store, hasher } = setup()
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    for (let i = 0; i < 5; i++) await keyring.verify(wrongSecretFor(key.id), { clientIp: IP })
    const reads = store.reads
    const hashes = hasher.verifyCalls
    for (let i = 0; i < 50; i++) expect(codeOf(await keyring.verify(wrongSecretFor(key.id), { clientIp: IP }))).toBe('KEYROT_RATE_LIMITED')
    expect(store.reads).toBe(reads)
    expect(hasher.verifyCalls).toBe(hashes)
  })

  it('costs no store read for a token whose checksum fails', async () => {
    const { keyring, store, hasher } = setup()
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const tampered = token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A')
    expect(codeOf(await keyring.verify(tampered))).toBe('KEYROT_MALFORMED_TOKEN')
    expect(store.reads).toBe(0)
    expect(hasher.verifyCalls).toBe(0)
  })

  it('hashes the same wrong token once while it is in the negative cache, and again after its TTL', async () => {
    const { keyring, store, hasher, clock } = setup({ rateLimit: { failuresPerKey: false } })
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const wrong = wrongSecretFor(key.id)
    for (let i = 0; i < 10; i++) expect(codeOf(await keyring.verify(wrong))).toBe('KEYROT_INVALID_SECRET')
    expect(hasher.verifyCalls).toBe(1)
    expect(store.reads).toBe(1)
    // The key's own token is not affected by its neighbour's failure.
    expect(codeOf(await keyring.verify(token))).toBe('OK')
    expect(keyring.rateLimitStats()).toMatchObject({ negativeCacheHits: 9 })
    clock.advance(9_999)
    expect(codeOf(await keyring.verify(wrong))).toBe('KEYROT_INVALID_SECRET')
    expect(hasher.verifyCalls).toBe(2)
    clock.advance(2)
    expect(codeOf(await keyring.verify(wrong))).toBe('KEYROT_INVALID_SECRET')
    expect(hasher.verifyCalls).toBe(3)
  })

  it('remembers unknown key ids too: a repeated one costs one store read', async () => {
    const { keyring, store } = setup()
    const unknown = generateToken('sk_live', 'CCCCCCCCCCCCCCCC')
    for (let i = 0; i < 5; i++) expect(codeOf(await keyring.verify(unknown))).toBe('KEYROT_KEY_NOT_FOUND')
    expect(store.reads).toBe(1)
  })
})

describe('failures per key id', () => {
  it('stops hashing unproven tokens for a key after 20 failures from many IPs, while its proven token keeps working', async () => {
    const { keyring, store, hasher, clock } = setup()
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    expect(codeOf(await keyring.verify(token, { clientIp: '127.0.0.2' }))).toBe('OK')
    const start = clock.now()
    for (let i = 0; i < 20; i++) {
      expect(codeOf(await keyring.verify(wrongSecretFor(key.id), { clientIp: `127.0.1.${i}` }))).toBe('KEYROT_INVALID_SECRET')
    }
    const reads = store.reads
    const hashes = hasher.verifyCalls
    for (let i = 0; i < 100; i++) {
      const refusal = rateLimitOf(await keyring.verify(wrongSecretFor(key.id), { clientIp: `127.0.2.${i}` }))
      expect(refusal).toMatchObject({ code: 'KEYROT_RATE_LIMITED', policy: 'key-failures', scope: 'key', keyId: key.id })
    }
    expect(hasher.verifyCalls).toBe(hashes)
    expect(store.reads).toBe(reads)
    expect(codeOf(await keyring.verify(token, { clientIp: '127.0.0.2' }))).toBe('OK')
    clock.set(start + 60_000)
    expect(codeOf(await keyring.verify(wrongSecretFor(key.id), { clientIp: '127.0.3.1' }))).toBe('KEYROT_INVALID_SECRET')
  })

  it('refuses a not-yet-proven valid token while its key is locked (the documented trade-off), and accepts it after the window', async () => {
    const { keyring, clock } = setup()
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    for (let i = 0; i < 20; i++) await keyring.verify(wrongSecretFor(key.id), { clientIp: `127.0.1.${i}` })
    expect(rateLimitOf(await keyring.verify(token)).policy).toBe('key-failures')
    clock.advance(60_000)
    expect(codeOf(await keyring.verify(token))).toBe('OK')
  })
})

describe('paced proofs (proofsPerKey)', () => {
  /** Wrong secrets for `keyId` from `count` IPv6 addresses of 2001:db8:1::/48, each in its own /64, all at once. */
  function flood(keyring: ReturnType<typeof setup>['keyring'], keyId: string, count: number, offset: number) {
    return Promise.all(
      Array.from({ length: count }, (_, i) => keyring.verify(wrongSecretFor(keyId), { clientIp: `2001:db8:1:${(offset + i).toString(16)}::7` })),
    )
  }

  it('keeps Argon2 runs for a flooded key id at one a second, and proves the legitimate token from another network within a second', async () => {
    const { keyring, hasher, clock } = setup({}, true)
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    let refused = 0
    let legitimateAt: number | undefined
    const start = clock.now()
    for (let second = 0; second < 10; second++) {
      for (let tick = 0; tick < 4; tick++) {
        const results = await flood(keyring, key.id, 250, second * 1000 + tick * 250)
        refused += results.filter((result) => !result.ok && result.error.code === 'KEYROT_RATE_LIMITED').length
        if (second >= 2 && legitimateAt === undefined && (await keyring.verify(token, { clientIp: '2001:db8:2::1' })).ok) legitimateAt = clock.now()
        clock.advance(250)
      }
    }
    const seconds = (clock.now() - start) / 1000
    console.log(`[security] unit flood: 10000 wrong secrets in ${seconds}s, ${refused} refused, ${hasher.verifyCalls} Argon2 runs, legitimate token proven ${(legitimateAt ?? Number.NaN) - start - 2000}ms after it first tried`)
    expect(hasher.verifyCalls).toBeLessThanOrEqual(seconds + 1)
    expect(refused).toBeGreaterThan(9_900)
    expect(legitimateAt).toBeDefined()
    expect((legitimateAt as number) - start - 2000).toBeLessThanOrEqual(1000)
  })

  it('does not slow a calm key id: a wrong secret and then the right one at the same instant', async () => {
    const { keyring } = setup({}, true)
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    expect(codeOf(await keyring.verify(wrongSecretFor(key.id), { clientIp: IP }))).toBe('KEYROT_INVALID_SECRET')
    expect(codeOf(await keyring.verify(token, { clientIp: IP }))).toBe('OK')
  })

  it('proves a not-yet-proven valid token while its key is locked by failures from other networks', async () => {
    const { keyring, clock } = setup({}, true)
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    for (let i = 0; i < 20; i++) {
      await keyring.verify(wrongSecretFor(key.id), { clientIp: `127.0.${i}.1` })
      clock.advance(1000)
    }
    // The budget is spent: a token still gets a paced proof, and a network whose proof fails now is barred.
    expect(codeOf(await keyring.verify(wrongSecretFor(key.id), { clientIp: '127.0.99.1' }))).toBe('KEYROT_INVALID_SECRET')
    clock.advance(1000)
    expect(rateLimitOf(await keyring.verify(wrongSecretFor(key.id), { clientIp: '127.0.99.2' }))).toMatchObject({ policy: 'key-failures', retryAfterMs: 59_000 })
    expect(codeOf(await keyring.verify(token, { clientIp: '127.0.100.1' }))).toBe('OK')
  })

  it('charges a burst of first uses of one token once, with a limiter that answers asynchronously', async () => {
    const memory = new MemoryRateLimiter()
    let admits = 0
    const slow: RateLimiter = {
      admit: async (attempt, limits, now) => {
        admits++
        await new Promise((resolve) => setTimeout(resolve, 5))
        return memory.admit(attempt, limits, now)
      },
      release: async (charge, limits, now) => memory.release(charge, limits, now),
      consume: async (keyId, quota, now) => memory.consume(keyId, quota, now),
    }
    const { keyring } = setup({ rateLimit: { limiter: slow, perKey: false } }, true)
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const burst = await Promise.all(Array.from({ length: 200 }, (_, i) => keyring.verify(token, { clientIp: `127.0.5.${i % 250}` })))
    expect(burst.map(codeOf)).toEqual(Array(200).fill('OK'))
    expect(admits).toBe(1)
  })
})

describe('per-key quota', () => {
  it('allows 100 requests a minute by default and refuses the 101st', async () => {
    const { keyring, clock, blocked } = setup()
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const first = await keyring.verify(token)
    expect(first).toMatchObject({ ok: true, rateLimit: { policy: 'per-key', limit: 100, windowMs: 60_000, remaining: 99, resetMs: 600 } })
    for (let i = 0; i < 99; i++) expect(codeOf(await keyring.verify(token))).toBe('OK')
    const refusal = rateLimitOf(await keyring.verify(token))
    expect(refusal).toMatchObject({ code: 'KEYROT_RATE_LIMITED', policy: 'per-key', scope: 'key', keyId: key.id, limit: 100, retryAfterMs: 600, resetMs: 60_000 })
    expect(blocked.at(-1)).toMatchObject({ policy: 'per-key', keyId: key.id, retryAfterMs: 600 })
    clock.advance(599)
    expect(codeOf(await keyring.verify(token))).toBe('KEYROT_RATE_LIMITED')
    clock.advance(1)
    expect(codeOf(await keyring.verify(token))).toBe('OK')
    clock.advance(60_000)
    for (let i = 0; i < 100; i++) expect(codeOf(await keyring.verify(token))).toBe('OK')
    expect(codeOf(await keyring.verify(token))).toBe('KEYROT_RATE_LIMITED')
  })

  it('does not spend the quota on failed or refused attempts', async () => {
    const { keyring } = setup({ rateLimit: { perKey: { limit: 2, window: '1m' } } })
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci', scopes: ['read'] })
    for (let i = 0; i < 5; i++) await keyring.verify(token, { scopes: ['write'] })
    for (let i = 0; i < 10; i++) await keyring.verify(wrongSecretFor(key.id))
    expect(codeOf(await keyring.verify(token))).toBe('OK')
    expect(codeOf(await keyring.verify(token))).toBe('OK')
    expect(codeOf(await keyring.verify(token))).toBe('KEYROT_RATE_LIMITED')
  })

  it('uses the limit given at create, and rotation keeps it', async () => {
    const { keyring } = setup()
    const issued = await keyring.create({ tenantId: 'acme', name: 'ci', rateLimit: { limit: 3, window: '10s' } })
    for (let i = 0; i < 3; i++) expect(codeOf(await keyring.verify(issued.token))).toBe('OK')
    expect(rateLimitOf(await keyring.verify(issued.token))).toMatchObject({ limit: 3, windowMs: 10_000 })

    const rotated = await keyring.rotate(issued.key.id)
    expect(rotated.key.rateLimit).toEqual({ limit: 3, windowMs: 10_000 })
    const first = await keyring.verify(rotated.token)
    expect(first).toMatchObject({ ok: true, rateLimit: { limit: 3, windowMs: 10_000, remaining: 2 } })
    for (let i = 0; i < 2; i++) expect(codeOf(await keyring.verify(rotated.token))).toBe('OK')
    expect(codeOf(await keyring.verify(rotated.token))).toBe('KEYROT_RATE_LIMITED')

    const replaced = await keyring.emergencyRotate(rotated.key.id, { incidentId: 'INC-7' })
    expect(replaced.key.rateLimit).toEqual({ limit: 3, windowMs: 10_000 })
  })

  it('limits only keys with their own limit when perKey is off', async () => {
    const { keyring } = setup({ rateLimit: { perKey: false } })
    const open = await keyring.create({ tenantId: 'acme', name: 'open' })
    const limited = await keyring.create({ tenantId: 'acme', name: 'limited', rateLimit: { limit: 1, window: '1m' } })
    for (let i = 0; i < 150; i++) expect(codeOf(await keyring.verify(open.token))).toBe('OK')
    expect(await keyring.verify(open.token)).not.toHaveProperty('rateLimit')
    expect(codeOf(await keyring.verify(limited.token))).toBe('OK')
    expect(codeOf(await keyring.verify(limited.token))).toBe('KEYROT_RATE_LIMITED')
  })
})

describe('configuration', () => {
  it('turns every limit off with rateLimit: false', async () => {
    const { keyring, hasher } = setup({ rateLimit: false })
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    for (let i = 0; i < 30; i++) expect(codeOf(await keyring.verify(wrongSecretFor(key.id), { clientIp: IP }))).toBe('KEYROT_INVALID_SECRET')
    for (let i = 0; i < 150; i++) expect(codeOf(await keyring.verify(token, { clientIp: IP }))).toBe('OK')
    expect(hasher.verifyCalls).toBe(31)
    expect(keyring.rateLimitStats()).toBeNull()
  })

  it('takes its own limits and limiter', async () => {
    const limiter = new MemoryRateLimiter({ maxIps: 10 })
    const { keyring } = setup({ rateLimit: { limiter, failuresPerIp: { limit: 2, window: '10s' }, ipBlock: false } })
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    for (let i = 0; i < 2; i++) await keyring.verify(wrongSecretFor(key.id), { clientIp: IP })
    expect(rateLimitOf(await keyring.verify(wrongSecretFor(key.id), { clientIp: IP }))).toMatchObject({ limit: 2, windowMs: 10_000 })
    expect(limiter.size.ips).toBe(1)
  })

  it('names an over-long client IP by its digest, so a counter name stays bounded', async () => {
    const limiter = new MemoryRateLimiter()
    const admitted: (string | undefined)[] = []
    const watching: RateLimiter = {
      admit: (attempt, limits, now) => {
        admitted.push(attempt.ip)
        return limiter.admit(attempt, limits, now)
      },
      release: (charge, limits, now) => limiter.release(charge, limits, now),
      consume: (keyId, quota, now) => limiter.consume(keyId, quota, now),
    }
    const { keyring } = setup({ rateLimit: { limiter: watching } })
    const long = `127.0.0.1,${'x'.repeat(10_000)}`
    for (let i = 0; i < 5; i++) await keyring.verify('bad', { clientIp: long })
    expect(codeOf(await keyring.verify('bad', { clientIp: long }))).toBe('KEYROT_RATE_LIMITED')
    expect(codeOf(await keyring.verify('bad', { clientIp: `127.0.0.1,${'y'.repeat(10_000)}` }))).toBe('KEYROT_MALFORMED_TOKEN')
    expect(admitted[0]).toMatch(/^sha256:[\w-]{43}$/)
    expect(codeOf(await keyring.verify('bad', { clientIp: '127.0.0.1' }))).toBe('KEYROT_MALFORMED_TOKEN')
    expect(admitted.at(-1)).toBe('127.0.0.1')
  })

  it('keeps memory bounded: the least recently seen IPs are forgotten', async () => {
    const limiter = new MemoryRateLimiter({ maxIps: 10, maxKeys: 10 })
    const { keyring } = setup({ rateLimit: { limiter } })
    for (let i = 0; i < 100; i++) await keyring.verify(generateToken('sk_live', `D${String(i).padStart(15, '0')}`), { clientIp: `127.0.4.${i}` })
    expect(limiter.size).toEqual({ ips: 10, networks: 1, keyFailures: 10, quotas: 0 })
  })

  it.each([
    [{ failuresPerIp: { limit: 0 } }, /rateLimit\.failuresPerIp\.limit must be a positive integer/],
    [{ failuresPerIp: { window: 0 } }, /rateLimit\.failuresPerIp\.window must be longer than 0/],
    [{ ipBlock: { duration: '-1h' } }, /rateLimit\.ipBlock\.duration/],
    [{ perKey: { limit: 1.5 } }, /rateLimit\.perKey\.limit must be a positive integer/],
    [{ negativeCacheTtl: 'soon' }, /rateLimit\.negativeCacheTtl/],
    [{ ipPrefix: { ipv6: 129 } }, /rateLimit\.ipPrefix\.ipv6 must be an integer from 1 to 128/],
    [{ ipPrefix: { ipv4: 0 } }, /rateLimit\.ipPrefix\.ipv4 must be an integer from 1 to 32/],
    [{ failuresPerNetwork: { ipv6: 48.5 } }, /rateLimit\.failuresPerNetwork\.ipv6 must be an integer/],
    [{ failuresPerNetwork: 'wide' }, /rateLimit\.failuresPerNetwork must be/],
    [{ proofsPerKey: { window: 0 } }, /rateLimit\.proofsPerKey\.window must be longer than 0/],
    [{ limiter: {} as RateLimiter }, /rateLimit\.limiter must implement RateLimiter: missing admit\(\)/],
    ['on', /rateLimit must be an object or false/],
  ])('refuses %j at construction', (rateLimit, message) => {
    expect(() => createKeyring({ rateLimit: rateLimit as KeyringOptions['rateLimit'] })).toThrow(message)
  })

  it("falls back to this replica's own counters when the limiter cannot answer: limits still hold, no 503", async () => {
    const broken: RateLimiter = {
      admit: async () => {
        throw new Error('connection reset')
      },
      release: () => {},
      consume: () => {
        throw new Error('connection reset')
      },
    }
    const { keyring } = setup({ rateLimit: { limiter: broken, perKey: { limit: 2, window: '1m' } } })
    const fallbacks: KeyringEvents['ratelimit.fallback'][] = []
    keyring.on('ratelimit.fallback', (event) => fallbacks.push(event))
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const results = [await keyring.verify(token, { clientIp: IP }), await keyring.verify(token, { clientIp: IP }), await keyring.verify(token, { clientIp: IP })]
    expect(results.map((result) => (result.ok ? 'ok' : result.error.code))).toEqual(['ok', 'ok', 'KEYROT_RATE_LIMITED'])
    // Once per outage, not per request.
    expect(fallbacks.map((event) => event.phase)).toEqual(['start'])
    expect(keyring.outageStats().rateLimitFallbacks).toBeGreaterThanOrEqual(3)
    await keyring.close()
  })
})
