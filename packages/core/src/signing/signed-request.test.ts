import { createHash, createHmac, randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { ManualClock } from '../clock.js'
import { FastTestHasher } from '../hash/hasher.js'
import { createKeyring } from '../lifecycle/keyring.js'
import { MemoryStore } from '../store/memory-store.js'
import { PayloadTooLargeError } from './errors.js'
import { MemoryReplayStore, type ReplayStore } from './replay-store.js'
import { canonicalRequest, createSignedRequestVerifier, signRequest, verifySignedRequest, type SignedRequestInput } from './signed-request.js'

async function setup(options: { replayStore?: ReplayStore } = {}) {
  const clock = new ManualClock(Date.UTC(2031, 4, 6, 12))
  const store = new MemoryStore()
  const keyring = createKeyring({ store, clock, hasher: new FastTestHasher(), gracePeriod: '1h', signing: { masterKeys: [{ id: 'm1', key: randomBytes(32) }] } })
  const { secret, key } = await keyring.createSigningSecret({ tenantId: 'acme', name: 'client' })
  const verifier = createSignedRequestVerifier({ keyring, ...options })
  const request = (headers: Record<string, string>, body = '{"amount":42}', path = '/v1/payments?dry=1'): SignedRequestInput => ({
    method: 'POST',
    pathWithQuery: path,
    headers,
    rawBody: Buffer.from(body),
  })
  const sign = (overrides: Partial<Parameters<typeof signRequest>[0]> = {}) =>
    signRequest({ keyId: key.id, secret, method: 'POST', url: '/v1/payments?dry=1', body: '{"amount":42}', clock, ...overrides })
  return { clock, store, keyring, secret, key, verifier, request, sign }
}

describe('canonicalRequest', () => {
  it('is seven documented lines: tag, method, target, timestamp, nonce, key id, body digest', () => {
    const text = canonicalRequest({ method: 'post', pathWithQuery: '/a?b=1', timestamp: 1_900_000_000, nonce: 'n'.repeat(16), keyId: 'K'.repeat(16), body: 'hi' })
    expect(text.split('\n')).toEqual([
      'KEYROT-HMAC-SHA256-V1',
      'POST',
      '/a?b=1',
      '1900000000',
      'n'.repeat(16),
      'K'.repeat(16),
      createHash('sha256').update('hi').digest('hex'),
    ])
  })
})

describe('signRequest', () => {
  it('signs the canonical string with the secret bytes and a fresh nonce each time', async () => {
    const { secret, key, sign, clock } = await setup()
    const headers = sign()
    const canonical = canonicalRequest({
      method: 'POST',
      pathWithQuery: '/v1/payments?dry=1',
      timestamp: Math.floor(clock.now() / 1000),
      nonce: headers['keyrot-nonce'],
      keyId: key.id,
      body: '{"amount":42}',
    })
    const expected = createHmac('sha256', Buffer.from(secret.slice(6), 'base64')).update(canonical).digest('base64')
    expect(headers['keyrot-signature']).toBe(`v1,${expected}`)
    expect(headers['keyrot-key-id']).toBe(key.id)
    expect(sign()['keyrot-nonce']).not.toBe(headers['keyrot-nonce'])
  })

  it('signs the path and query of a full URL as fetch sends them', async () => {
    const { sign, verifier, request } = await setup()
    const headers = sign({ url: 'http://127.0.0.1:1/v1/payments?dry=1#frag' })
    expect((await verifier.verify(request(headers))).ok).toBe(true)
  })

  it('refuses bad input with a TypeError that never echoes the secret', async () => {
    const { key } = await setup()
    expect(() => signRequest({ keyId: key.id, secret: 'whsec_bad', method: 'GET', url: '/' })).toThrow(/secret must be a signing secret/)
    expect(() => signRequest({ keyId: 'nope', secret: 'x', method: 'GET', url: '/' })).toThrow(/keyId/)
  })
})

describe('signed request verification', () => {
  it('accepts a signed request and returns the signing key, never the secret', async () => {
    const { verifier, request, sign, key, secret, store } = await setup()
    const outcome = await verifier.verify(request(sign()))
    expect(outcome).toMatchObject({ ok: true, key: { id: key.id, tenantId: 'acme', state: 'active' }, headers: {} })
    expect(JSON.stringify(outcome)).not.toContain(secret.slice(6))
    expect((await store.get(key.id))?.usageCount).toBe(1)
  })

  it('refuses a second use of one nonce with KEYROT_REPLAYED_REQUEST', async () => {
    const { verifier, request, sign } = await setup()
    const headers = sign()
    expect((await verifier.verify(request(headers))).ok).toBe(true)
    const replay = await verifier.verify(request(headers))
    expect(replay).toMatchObject({ ok: false, status: 401, body: { error: { code: 'KEYROT_REPLAYED_REQUEST' } } })
  })

  it('refuses stale and future timestamps with KEYROT_STALE_TIMESTAMP, accepting the edges', async () => {
    const { verifier, request, sign, clock } = await setup()
    for (const offset of [-301_000, 301_000]) {
      const outcome = await verifier.verify(request(sign({ timestamp: clock.now() + offset })))
      expect(outcome).toMatchObject({ ok: false, status: 401, body: { error: { code: 'KEYROT_STALE_TIMESTAMP' } } })
    }
    for (const offset of [-300_000, 300_000]) {
      expect((await verifier.verify(request(sign({ timestamp: clock.now() + offset })))).ok).toBe(true)
    }
  })

  it('refuses a changed body, path, method or key id with KEYROT_INVALID_SIGNATURE', async () => {
    const { verifier, request, sign, keyring } = await setup()
    const other = await keyring.createSigningSecret({ tenantId: 'acme', name: 'other' })
    const cases: SignedRequestInput[] = [
      request(sign(), '{"amount":43}'),
      request(sign(), '{"amount":42}', '/v1/payments?dry=0'),
      { ...request(sign()), method: 'PUT' },
      request({ ...sign(), 'keyrot-key-id': other.key.id }),
      request({ ...sign(), 'keyrot-key-id': 'AAAAAAAAAAAAAAAA' }),
    ]
    for (const input of cases) {
      const outcome = await verifier.verify(input)
      expect(outcome).toMatchObject({ ok: false, status: 401, body: { error: { code: 'KEYROT_INVALID_SIGNATURE' } } })
      if (!outcome.ok) expect(outcome.headers['www-authenticate']).toBe('KeyrotSignature realm="api", error="invalid_signature", error_description="The request signature is not valid."')
    }
  })

  it('does not burn a nonce on a request that failed its signature check', async () => {
    const { verifier, request, sign } = await setup()
    const headers = sign()
    expect((await verifier.verify(request({ ...headers, 'keyrot-signature': `v1,${randomBytes(32).toString('base64')}` }))).ok).toBe(false)
    expect((await verifier.verify(request(headers))).ok).toBe(true)
  })

  it('refuses a request without signature headers with KEYROT_MISSING_SIGNATURE and a bare challenge', async () => {
    const { verifier, request, sign } = await setup()
    const none = await verifier.verify(request({}))
    expect(none).toMatchObject({ ok: false, status: 401, headers: { 'www-authenticate': 'KeyrotSignature realm="api"' }, body: { error: { code: 'KEYROT_MISSING_SIGNATURE' } } })
    const { 'keyrot-nonce': _nonce, ...partial } = sign()
    expect(await verifier.verify(request(partial))).toMatchObject({ ok: false, error: { code: 'KEYROT_MISSING_SIGNATURE', missing: ['keyrot-nonce'] } })
  })

  it('answers 400 KEYROT_INVALID_REQUEST for malformed headers', async () => {
    const { verifier, request, sign } = await setup()
    for (const bad of [{ 'keyrot-timestamp': 'soon' }, { 'keyrot-nonce': 'short' }, { 'keyrot-signature': 'v2,abc' }, { 'keyrot-signature': 'v1,AAAA' }]) {
      expect(await verifier.verify(request({ ...sign(), ...bad }))).toMatchObject({ ok: false, status: 400, body: { error: { code: 'KEYROT_INVALID_REQUEST' } } })
    }
    expect(await verifier.verify(null as never)).toMatchObject({ ok: false, status: 400 })
  })

  it('still accepts the old secret during grace (with Sunset), and refuses it after', async () => {
    const { verifier, request, key, secret, keyring, clock } = await setup()
    const rotated = await keyring.rotate(key.id)
    const old = () => signRequest({ keyId: key.id, secret, method: 'POST', url: '/v1/payments?dry=1', body: '{"amount":42}', clock })
    const fresh = () => signRequest({ keyId: rotated.key.id, secret: rotated.token, method: 'POST', url: '/v1/payments?dry=1', body: '{"amount":42}', clock })
    const during = await verifier.verify(request(old()))
    expect(during).toMatchObject({ ok: true, key: { id: key.id, state: 'grace' } })
    if (during.ok) expect(during.headers['sunset']).toBe(new Date(clock.now() + 3_600_000).toUTCString())
    expect((await verifier.verify(request(fresh()))).ok).toBe(true)
    clock.advance(3_600_000)
    expect(await verifier.verify(request(old()))).toMatchObject({ ok: false, body: { error: { code: 'KEYROT_KEY_EXPIRED' } } })
    expect((await verifier.verify(request(fresh()))).ok).toBe(true)
  })

  it('reads a lazy body only for a request whose headers, timestamp and key passed', async () => {
    const { verifier, request, sign, clock } = await setup()
    let reads = 0
    const lazy = (body: string) => async () => {
      reads++
      return Buffer.from(body)
    }
    expect(await verifier.verify({ ...request({}), rawBody: lazy('{}') })).toMatchObject({ ok: false, error: { code: 'KEYROT_MISSING_SIGNATURE' } })
    expect(await verifier.verify({ ...request(sign({ timestamp: clock.now() - 3_600_000 })), rawBody: lazy('{}') })).toMatchObject({ ok: false, error: { code: 'KEYROT_STALE_TIMESTAMP' } })
    expect(await verifier.verify({ ...request({ ...sign(), 'keyrot-key-id': 'AAAAAAAAAAAAAAAA' }), rawBody: lazy('{}') })).toMatchObject({ ok: false })
    expect(reads).toBe(0)
    const outcome = await verifier.verify({ ...request(sign()), rawBody: lazy('{"amount":42}') })
    expect(outcome).toMatchObject({ ok: true, rawBody: Buffer.from('{"amount":42}') })
    expect(reads).toBe(1)
    // Too large only once read (no Content-Length): answered as an unknown id would be, and the connection is not kept.
    const tooLarge = await verifier.verify({ ...request(sign()), rawBody: () => Promise.reject(new PayloadTooLargeError(10)) })
    expect(tooLarge).toMatchObject({ ok: false, status: 401, body: { error: { code: 'KEYROT_INVALID_SIGNATURE' } }, headers: { connection: 'close' } })
    await expect(verifier.verify({ ...request(sign()), rawBody: () => Promise.reject(new Error('socket hang up')) })).rejects.toThrow('socket hang up')
  })

  it('answers a declared body over the limit with 413 before the key id is looked at, for known and unknown ids alike', async () => {
    const { verifier, request, sign } = await setup()
    const over = (headers: Record<string, string>) => ({ ...request({ ...headers, 'content-length': '11' }), maxBodyBytes: 10, rawBody: () => Promise.reject(new Error('read')) })
    const known = await verifier.verify(over(sign()))
    const unknown = await verifier.verify(over({ ...sign(), 'keyrot-key-id': 'AAAAAAAAAAAAAAAA' }))
    expect(known).toMatchObject({ ok: false, status: 413 })
    expect(unknown.ok ? undefined : [unknown.status, unknown.headers, unknown.body]).toEqual(known.ok ? undefined : [known.status, known.headers, known.body])
  })

  it('answers an aborted or late body with 400 and closes the connection, never throwing', async () => {
    const { keyring, request, sign } = await setup()
    const verifier = createSignedRequestVerifier({ keyring, bodyTimeout: 50 })
    const late = await verifier.verify({ ...request(sign()), rawBody: () => new Promise<Buffer>(() => {}) })
    expect(late).toMatchObject({ ok: false, status: 400, headers: { connection: 'close' }, body: { error: { code: 'KEYROT_INVALID_REQUEST' } } })
  })

  it('passes signed requests through the abuse guard: wrong signatures from one IP get 429 after 5', async () => {
    const { verifier, request, sign } = await setup()
    const codes: string[] = []
    for (let i = 0; i < 7; i++) {
      const outcome = await verifier.verify({ ...request({ ...sign(), 'keyrot-signature': `v1,${Buffer.alloc(32, i).toString('base64')}` }), clientIp: '203.0.113.9' })
      codes.push(outcome.ok ? 'OK' : outcome.error.code)
    }
    expect(codes).toEqual([...Array(5).fill('KEYROT_INVALID_SIGNATURE'), 'KEYROT_RATE_LIMITED', 'KEYROT_RATE_LIMITED'])
    const refused = await verifier.verify({ ...request(sign()), clientIp: '203.0.113.9' })
    expect(refused).toMatchObject({ ok: false, status: 429, headers: { 'retry-after': '60', 'ratelimit-policy': '"ip-failures";q=5;w=60' } })
    // A good signature from another IP is neither refused nor charged.
    for (let i = 0; i < 6; i++) expect((await verifier.verify({ ...request(sign()), clientIp: '203.0.113.10' })).ok).toBe(true)
  })

  it('refuses a revoked secret once its signature is proven', async () => {
    const { verifier, request, sign, key, keyring } = await setup()
    await keyring.revoke(key.id)
    expect(await verifier.verify(request(sign()))).toMatchObject({ ok: false, body: { error: { code: 'KEYROT_KEY_REVOKED' } } })
  })

  it('refuses an API key id as a signing key', async () => {
    const { verifier, request, sign, keyring } = await setup()
    const apiKey = await keyring.create({ tenantId: 'acme', name: 'k' })
    expect(await verifier.verify(request({ ...sign(), 'keyrot-key-id': apiKey.key.id }))).toMatchObject({ ok: false, body: { error: { code: 'KEYROT_INVALID_SIGNATURE' } } })
  })

  it('answers 503 when the replay store fails, and never records the request as accepted', async () => {
    const failing: ReplayStore = { remember: () => Promise.reject(new Error('connection refused')) }
    const { verifier, request, sign } = await setup({ replayStore: failing })
    expect(await verifier.verify(request(sign()))).toMatchObject({ ok: false, status: 503, headers: { 'retry-after': '1' }, body: { error: { code: 'KEYROT_STORE_UNAVAILABLE' } } })
  })

  it('answers 500 KEYROT_SECRET_UNREADABLE when the master key that sealed a secret is gone', async () => {
    const { store, request, sign, clock } = await setup()
    const errors: object[] = []
    const logged = createKeyring({
      store,
      clock,
      hasher: new FastTestHasher(),
      signing: { masterKeys: [{ id: 'm2', key: randomBytes(32) }] },
      logger: { info() {}, warn() {}, error: (fields) => errors.push(fields) },
    })
    const outcome = await createSignedRequestVerifier({ keyring: logged }).verify(request(sign()))
    expect(outcome).toMatchObject({ ok: false, status: 500, body: { error: { code: 'KEYROT_SECRET_UNREADABLE' } } })
    expect(errors).toMatchObject([{ event: 'signing.secret_unreadable', err: { code: 'KEYROT_SECRET_UNREADABLE' } }])
  })

  it('emits verification events with the signing key id and no secret', async () => {
    const { keyring, verifier, request, sign, secret } = await setup()
    const events: unknown[] = []
    keyring.on('verification.succeeded', (event) => events.push(event))
    keyring.on('verification.failed', (event) => events.push(event))
    await verifier.verify(request(sign()))
    await verifier.verify(request({}))
    expect(events).toMatchObject([{ state: 'active', tenantId: 'acme' }, { code: 'KEYROT_MISSING_SIGNATURE' }])
    expect(JSON.stringify(events)).not.toContain(secret.slice(6))
  })

  it('verifySignedRequest needs an explicit replay store', async () => {
    const { keyring, request, sign } = await setup()
    expect(() => verifySignedRequest(request(sign()), { keyring } as never)).toThrow(/needs a replayStore/)
    const replayStore = new MemoryReplayStore()
    const headers = sign()
    expect((await verifySignedRequest(request(headers), { keyring, replayStore })).ok).toBe(true)
    expect((await verifySignedRequest(request(headers), { keyring, replayStore })).ok).toBe(false)
  })

  it('needs a keyring with master keys', () => {
    expect(() => createSignedRequestVerifier({ keyring: createKeyring() })).toThrow(/signing needs master keys/)
  })
})
