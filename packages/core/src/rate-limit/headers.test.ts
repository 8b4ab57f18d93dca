import { describe, expect, it } from 'vitest'
import { ManualClock } from '../clock.js'
import { RateLimitedError } from '../errors.js'
import { FastTestHasher } from '../hash/hasher.js'
import { authenticate } from '../http/authenticate.js'
import { errorResponse } from '../http/respond.js'
import { createKeyring } from '../lifecycle/keyring.js'
import { generateToken } from '../token/format.js'
import { rateLimitHeaders } from './headers.js'

describe('RateLimit headers', () => {
  it('formats RateLimit-Policy and RateLimit as structured-field items, seconds rounded up', () => {
    expect(rateLimitHeaders({ policy: 'per-key', limit: 100, windowMs: 60_000, remaining: 42, resetMs: 17_400 })).toEqual({
      'ratelimit-policy': '"per-key";q=100;w=60',
      ratelimit: '"per-key";r=42;t=18',
    })
    expect(rateLimitHeaders({ policy: 'ip-block', limit: 20, windowMs: 3_600_000, remaining: 0, resetMs: 1 })).toEqual({
      'ratelimit-policy': '"ip-block";q=20;w=3600',
      ratelimit: '"ip-block";r=0;t=1',
    })
  })

  it('answers a per-key refusal with 429, Retry-After, both headers and KEYROT_RATE_LIMITED', () => {
    const error = new RateLimitedError('KEYROT_RATE_LIMITED', {
      policy: 'per-key',
      scope: 'key',
      keyId: 'AAAAAAAAAAAAAAAA',
      limit: 100,
      windowMs: 60_000,
      retryAfterMs: 600,
      resetMs: 60_000,
    })
    expect(errorResponse(error)).toEqual({
      status: 429,
      headers: {
        'retry-after': '1',
        'ratelimit-policy': '"per-key";q=100;w=60',
        ratelimit: '"per-key";r=0;t=60',
        'cache-control': 'no-store',
      },
      body: { error: { code: 'KEYROT_RATE_LIMITED', message: 'Too many requests.' } },
    })
  })

  it('answers a blocked IP with 429 KEYROT_IP_BLOCKED and the time left on the block', () => {
    const error = new RateLimitedError('KEYROT_IP_BLOCKED', { policy: 'ip-block', scope: 'ip', limit: 20, windowMs: 3_600_000, retryAfterMs: 3_540_000 })
    const response = errorResponse(error)
    expect(response.status).toBe(429)
    expect(response.headers).toMatchObject({ 'retry-after': '3540', 'ratelimit-policy': '"ip-block";q=20;w=3600', ratelimit: '"ip-block";r=0;t=3540' })
    expect(response.body.error.code).toBe('KEYROT_IP_BLOCKED')
    // No key id, no IP, no internal detail in what the client reads.
    expect(JSON.stringify(response)).not.toMatch(/AAAA|127\./)
  })

  it('puts the key quota on successful answers and the refusing policy on the 429', async () => {
    const keyring = createKeyring({ hasher: new FastTestHasher(), clock: new ManualClock(), rateLimit: { perKey: { limit: 2, window: '1m' } } })
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const request = { authorization: `Bearer ${token}`, clientIp: '127.0.0.1' }
    const first = await authenticate(keyring, request)
    expect(first).toMatchObject({ ok: true, headers: { 'ratelimit-policy': '"per-key";q=2;w=60', ratelimit: '"per-key";r=1;t=30' } })
    const second = await authenticate(keyring, request)
    expect(second.headers).toMatchObject({ ratelimit: '"per-key";r=0;t=60' })
    const third = await authenticate(keyring, request)
    expect(third).toMatchObject({ ok: false, status: 429, headers: { 'retry-after': '30', ratelimit: '"per-key";r=0;t=60' } })

    const guesses = { authorization: `Bearer ${generateToken('sk_live', 'AAAAAAAAAAAAAAAA')}`, clientIp: '127.0.0.2' }
    for (let i = 0; i < 5; i++) expect(await authenticate(keyring, guesses)).toMatchObject({ ok: false, status: 401 })
    expect(await authenticate(keyring, guesses)).toMatchObject({
      ok: false,
      status: 429,
      headers: { 'retry-after': '60', 'ratelimit-policy': '"ip-failures";q=5;w=60', ratelimit: '"ip-failures";r=0;t=60' },
      body: { error: { code: 'KEYROT_RATE_LIMITED' } },
    })
  })
})
