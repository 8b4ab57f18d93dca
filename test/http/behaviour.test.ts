import http from 'node:http'
import fc from 'fast-check'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  createKeyring,
  ERROR_CODES,
  FastTestHasher,
  generateToken,
  ManualClock,
  MemoryStore,
  newKeyId,
  StoreUnavailableError,
  type ErrorCode,
  type IssuedKey,
  type Keyring,
} from '@keyrot/core'
import { rawRequest } from '../support/raw-http.js'
import { frameworks, type RunningApp } from './apps.js'
import { get, headerLine, jsonOf, type TestResponse } from './client.js'
import { FlakyStore } from './flaky-store.js'
import { hostileHeaders, nodeVerdict } from './hostile-credentials.js'

// The HTTP part is real (sockets on loopback, the frameworks' own parsing);
// time is a ManualClock and hashing is fast so the suite runs in seconds.

const START = Date.UTC(2030, 0, 1)
const DAY = 86_400_000
const HTTP_DATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/
/** Codes a caller must never see: they would tell which key ids exist. */
const HIDDEN_CODES: ErrorCode[] = ['KEYROT_MALFORMED_TOKEN', 'KEYROT_KEY_NOT_FOUND', 'KEYROT_INVALID_SECRET']

interface World {
  clock: ManualClock
  keyring: Keyring
  flaky: Keyring
  flakyStore: FlakyStore
  reader: IssuedKey
  admin: IssuedKey
  flakyKey: IssuedKey
  guarded: Keyring
  guardedKey: IssuedKey
}

async function createWorld(): Promise<World> {
  const clock = new ManualClock(START)
  // Every request comes from 127.0.0.1: without `rateLimit: false` the failed
  // attempts this suite makes on purpose would soon be answered with 429.
  const common = { hasher: new FastTestHasher(), clock, prefix: 'sk_test', rateLimit: false as const }
  const keyring = createKeyring({ ...common, store: new MemoryStore(), gracePeriod: '1h' })
  const flakyStore = new FlakyStore(new MemoryStore())
  // No cache: every request reaches the store, so a broken store shows at once.
  const flaky = createKeyring({ ...common, store: flakyStore, cache: { maxEntries: 0 } })
  const guarded = createKeyring({
    ...common,
    store: new MemoryStore(),
    rateLimit: { failuresPerIp: { limit: 3, window: '1m' }, ipBlock: false, failuresPerKey: false, perKey: { limit: 2, window: '1m' }, negativeCacheTtl: 0 },
  })
  return {
    clock,
    keyring,
    flaky,
    flakyStore,
    reader: await keyring.create({ tenantId: 'acme', name: 'reader', scopes: ['read'], expiresAt: START + 30 * DAY }),
    admin: await keyring.create({ tenantId: 'acme', name: 'admin', scopes: ['read', 'admin'] }),
    flakyKey: await flaky.create({ tenantId: 'acme', name: 'flaky' }),
    guarded,
    guardedKey: await guarded.create({ tenantId: 'acme', name: 'guarded' }),
  }
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

function expectError(response: TestResponse, status: number, code: ErrorCode): void {
  expect({ status: response.status, body: jsonOf(response) }).toEqual({ status, body: { error: { code, message: expect.any(String) } } })
  expect(response.headers['content-type']).toBe('application/json; charset=utf-8')
  expect(response.headers['cache-control']).toBe('no-store')
  expect(response.headers['sunset']).toBeUndefined()
}

function expectChallenge(response: TestResponse, error: string): void {
  expect(response.headers['www-authenticate']).toMatch(new RegExp(`^Bearer realm="api", error="${error}", error_description="[^"]+"`))
}

describe.each(frameworks)('HTTP behaviour on $framework', ({ start }) => {
  let world: World
  let app: RunningApp
  let port: number

  beforeAll(async () => {
    world = await createWorld()
    app = await start(world)
    port = app.port
  })

  afterAll(async () => {
    await app?.close()
    await world?.keyring.close()
    await world?.flaky.close()
    await world?.guarded.close()
  })

  afterEach(async () => {
    // Nothing above reached the framework's error handling, and the server still serves.
    expect(app.errors).toEqual([])
    expect((await get(port, '/whoami', bearer(world.reader.token))).status).toBe(200)
  })

  describe('a valid key', () => {
    it.each([
      ['Authorization: Bearer', (token: string) => bearer(token)],
      ['Authorization: bearer (any case)', (token: string) => ({ authorization: `bearer ${token}` })],
      ['X-API-Key', (token: string) => ({ 'x-api-key': token })],
    ])('passes with %s and the route sees the key, never the token', async (_name, headers) => {
      const { token, key } = world.reader
      const response = await get(port, '/whoami', headers(token))
      expect(response.status).toBe(200)
      expect(response.headers['content-type']).toBe('application/json; charset=utf-8')
      expect(response.headers['sunset']).toBeUndefined()
      const { apiKey } = jsonOf(response) as { apiKey: Record<string, unknown> }
      expect(apiKey).toMatchObject({ id: key.id, tenantId: 'acme', scopes: ['read'], expiresAt: START + 30 * DAY })
      expect(apiKey).not.toHaveProperty('hash')
      expect(response.body).not.toContain(token.slice(token.lastIndexOf('_') + 1))
    })

    it('passes a scoped route when the key has the scope', async () => {
      const response = await get(port, '/admin', bearer(world.admin.token))
      expect(response.status).toBe(200)
      expect((jsonOf(response) as { apiKey: { id: string } }).apiKey.id).toBe(world.admin.key.id)
    })
  })

  describe('401', () => {
    it('answers a bare challenge when no key is sent', async () => {
      const response = await get(port, '/whoami')
      expectError(response, 401, 'KEYROT_MISSING_KEY')
      expect(response.headers['www-authenticate']).toBe('Bearer realm="api"')
    })

    it.each(['authorization', 'x-api-key'])(
      'answers byte-identically for a malformed token, an unknown key id and a wrong secret (%s)',
      async (header) => {
        const send = (token: string) => get(port, '/whoami', header === 'authorization' ? bearer(token) : { 'x-api-key': token })
        const responses = [
          await send('sk_test_malformed'),
          await send(generateToken('sk_test', newKeyId())),
          await send(generateToken('sk_test', world.reader.key.id)),
        ]
        for (const response of responses) {
          expectError(response, 401, 'KEYROT_INVALID_KEY')
          expectChallenge(response, 'invalid_token')
        }
        const [first, ...rest] = responses.map((r) => ({ body: r.body, length: r.headers['content-length'], challenge: r.headers['www-authenticate'] }))
        for (const other of rest) expect(other).toEqual(first)
      },
    )

    it('refuses a revoked key', async () => {
      const { token, key } = await world.keyring.create({ tenantId: 'acme', name: 'to revoke' })
      expect((await get(port, '/whoami', bearer(token))).status).toBe(200)
      await world.keyring.revoke(key.id, { reason: 'leaked' })
      const response = await get(port, '/whoami', bearer(token))
      expectError(response, 401, 'KEYROT_KEY_REVOKED')
      expectChallenge(response, 'invalid_token')
    })

    it('refuses a rotated key from its grace deadline on, and keeps its successor working', async () => {
      const old = await world.keyring.create({ tenantId: 'acme', name: 'expiring' })
      const next = await world.keyring.rotate(old.key.id, { gracePeriod: '10m' })
      world.clock.advance(10 * 60_000 - 1)
      expect((await get(port, '/whoami', bearer(old.token))).status).toBe(200)
      world.clock.advance(1)
      const response = await get(port, '/whoami', bearer(old.token))
      expectError(response, 401, 'KEYROT_KEY_EXPIRED')
      expectChallenge(response, 'invalid_token')
      expect((await get(port, '/whoami', bearer(next.token))).status).toBe(200)
    })
  })

  describe('Sunset', () => {
    it("is the old key's grace deadline while it is in grace, and absent for its successor", async () => {
      world.clock.advance(1_234) // a deadline off the whole second: HTTP-dates have seconds
      const old = await world.keyring.create({ tenantId: 'acme', name: 'rotating' })
      const { token, previous } = await world.keyring.rotate(old.key.id)
      expect(previous.expiresAt).toBe(world.clock.now() + 3_600_000)

      const during = await get(port, '/whoami', bearer(old.token))
      expect(during.status).toBe(200)
      expect(during.headers['sunset']).toMatch(HTTP_DATE)
      expect(Date.parse(during.headers['sunset'] as string)).toBe(Math.floor((previous.expiresAt as number) / 1000) * 1000)

      const successor = await get(port, '/whoami', bearer(token))
      expect(successor.status).toBe(200)
      expect(successor.headers['sunset']).toBeUndefined()
    })
  })

  describe('403', () => {
    it('answers insufficient_scope naming the scope the route needs', async () => {
      const response = await get(port, '/admin', bearer(world.reader.token))
      expectError(response, 403, 'KEYROT_INSUFFICIENT_SCOPE')
      expectChallenge(response, 'insufficient_scope')
      expect(response.headers['www-authenticate']).toMatch(/, scope="admin"$/)
    })
  })

  describe('400 invalid_request', () => {
    const cases: Array<[string, (token: string) => Record<string, string | string[]>]> = [
      ['two credentials at once', (t) => ({ ...bearer(t), 'x-api-key': t })],
      ['two schemes in one header', (t) => ({ authorization: `Basic dXNlcjpwYXNz, Bearer ${t}` })],
      ['two Bearer tokens in one header', (t) => ({ authorization: `Bearer ${t}, Bearer ${t}` })],
      ['two Authorization headers', (t) => ({ authorization: [`Bearer ${t}`, `Bearer ${t}`] })],
      ['two X-API-Key headers', (t) => ({ 'x-api-key': [t, t] })],
      ['a scheme other than Bearer', () => ({ authorization: 'Basic dXNlcjpwYXNz' })],
      ['an empty Bearer', () => ({ authorization: 'Bearer ' })],
      ['a Bearer with no credentials', () => ({ authorization: 'Bearer' })],
      ['an empty X-API-Key', () => ({ 'x-api-key': '' })],
      ['a non-ASCII (latin1) header', () => ({ authorization: 'Bearer caf\u00e9' })],
      ['an 8 KB Authorization header', () => ({ authorization: `Bearer ${'a'.repeat(8 * 1024)}` })],
      ['an 8 KB X-API-Key header', () => ({ 'x-api-key': 'k'.repeat(8 * 1024) })],
    ]
    it.each(cases)('for %s', async (_name, headers) => {
      const response = await get(port, '/whoami', headers(world.reader.token))
      expectError(response, 400, 'KEYROT_INVALID_REQUEST')
      expectChallenge(response, 'invalid_request')
    })

    it.each([
      ['UTF-8 bytes in X-API-Key', headerLine('X-API-Key', 'ключ-доступа')],
      ['a raw 0xFF byte in a Bearer token', Buffer.concat([headerLine('Authorization', 'Bearer abc'), Buffer.from([0xff])])],
    ])('for %s sent over a raw socket', async (_name, line) => {
      const response = await rawRequest(port, '/whoami', [line])
      expectError(response, 400, 'KEYROT_INVALID_REQUEST')
      expectChallenge(response, 'invalid_request')
    })
  })

  describe('requests Node refuses before the framework', () => {
    it('a control character in a header gets a bare 400 from Node', async () => {
      const response = await rawRequest(port, '/whoami', [headerLine('X-API-Key', 'abc\u0001def')])
      expect({ status: response.status, body: response.body }).toEqual({ status: 400, body: '' })
    })

    it("a header over Node's max header size gets 431", async () => {
      const response = await rawRequest(port, '/whoami', [headerLine('Authorization', `Bearer ${'a'.repeat(http.maxHeaderSize + 1024)}`)])
      expect(response.status).toBe(431)
    })
  })

  describe('503 when the store fails', () => {
    it.each([
      ['rejects with StoreUnavailableError', () => new StoreUnavailableError('redis timed out after 200ms')],
      ['rejects with a plain Error', () => new Error('connect ECONNREFUSED 127.0.0.1:6390')],
    ])('answers 503 with Retry-After when get() %s, and recovers', async (_name, failure) => {
      world.flakyStore.failure = failure()
      try {
        const response = await get(port, '/flaky', bearer(world.flakyKey.token))
        expectError(response, 503, 'KEYROT_STORE_UNAVAILABLE')
        expect(response.headers['retry-after']).toBe('1')
        expect(response.headers['www-authenticate']).toBeUndefined()
        expect(response.body).not.toMatch(/ECONNREFUSED|timed out/)
      } finally {
        world.flakyStore.failure = null
      }
      // The keyring's store circuit opened: its background probe closes it within a few hundred ms.
      await expect.poll(async () => (await get(port, '/flaky', bearer(world.flakyKey.token))).status, { timeout: 3_000, interval: 50 }).toBe(200)
    })
  })

  describe('429 when a rate limit refuses', () => {
    it('counts failed attempts per client IP and refuses more until the window ends', async () => {
      const wrongSecret = () => bearer(generateToken('sk_test', world.guardedKey.key.id))
      // A second apart: once one failed, proofs of a key id are paced (one a second).
      for (let attempt = 0; attempt < 3; attempt++) {
        expectError(await get(port, '/guarded', wrongSecret()), 401, 'KEYROT_INVALID_KEY')
        world.clock.advance(1000)
      }
      const refused = await get(port, '/guarded', wrongSecret())
      expectError(refused, 429, 'KEYROT_RATE_LIMITED')
      expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1)
      expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(60)
      expect(refused.headers['ratelimit-policy']).toBe('"ip-failures";q=3;w=60')
      expect(refused.headers['ratelimit']).toMatch(/^"ip-failures";r=0;t=\d+$/)
      world.clock.advance(60_000)
      expect((await get(port, '/guarded', bearer(world.guardedKey.token))).status).toBe(200)
    })

    it("answers a key's requests over its quota with 429, and reports the quota on success", async () => {
      world.clock.advance(60_000) // a fresh quota window
      const first = await get(port, '/guarded', bearer(world.guardedKey.token))
      expect(first.status).toBe(200)
      expect(first.headers['ratelimit-policy']).toBe('"per-key";q=2;w=60')
      expect(first.headers['ratelimit']).toMatch(/^"per-key";r=1;t=\d+$/)
      expect((await get(port, '/guarded', bearer(world.guardedKey.token))).status).toBe(200)
      const refused = await get(port, '/guarded', bearer(world.guardedKey.token))
      expectError(refused, 429, 'KEYROT_RATE_LIMITED')
      expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1)
      expect(refused.headers['ratelimit']).toMatch(/^"per-key";r=0;t=\d+$/)
    })
  })

  it.each([
    [false, '127.0.0.1'],
    [true, '203.0.113.7'],
  ])('reports the client IP with trust in the proxy %s as %s', async (trustProxy, expected) => {
    const proxied = await start(world, { trustProxy })
    const seen: Array<string | undefined> = []
    const stop = [
      world.keyring.on('verification.succeeded', (event) => seen.push(event.clientIp)),
      world.keyring.on('verification.failed', (event) => seen.push(event.clientIp)),
    ]
    try {
      const forwarded = { 'x-forwarded-for': '203.0.113.7' }
      expect((await get(proxied.port, '/whoami', { ...bearer(world.reader.token), ...forwarded })).status).toBe(200)
      expect((await get(proxied.port, '/whoami', { ...bearer('sk_test_malformed'), ...forwarded })).status).toBe(401)
      expect(seen).toEqual([expected, expected])
    } finally {
      for (const unsubscribe of stop) unsubscribe()
      await proxied.close()
    }
  })

  it("hands an unexpected error to the framework's error handling", async () => {
    const response = await get(port, '/broken', bearer(world.reader.token))
    expect(response.status).toBe(500)
    expect(app.errors).toEqual([expect.objectContaining({ message: 'clientIp failed' })])
    app.errors.length = 0
  })

  it('answers hostile credential headers with 400 or 401 and a known code, never 5xx', async () => {
    const known = new Set(Object.keys(ERROR_CODES))
    await fc.assert(
      fc.asyncProperty(hostileHeaders(world.reader.token), async (lines) => {
        const response = await rawRequest(port, '/whoami', lines)
        const node = nodeVerdict(lines)
        if (node.tooLarge === true && !node.refusesBytes) {
          expect(response.status).toBe(431)
          return
        }
        if (response.status === 431) {
          expect(node.tooLarge).not.toBe(false)
          return
        }
        if (node.refusesBytes) {
          expect({ status: response.status, body: response.body }).toEqual({ status: 400, body: '' })
          return
        }
        expect([400, 401]).toContain(response.status)
        const body = jsonOf(response) as { error: { code: ErrorCode; message: string } }
        expect(known.has(body.error.code)).toBe(true)
        expect(HIDDEN_CODES).not.toContain(body.error.code)
        expect(ERROR_CODES[body.error.code].status).toBe(response.status)
        expect(response.headers['content-type']).toBe('application/json; charset=utf-8')
        expect(response.headers['cache-control']).toBe('no-store')
        expect(response.headers['www-authenticate']).toMatch(/^Bearer realm="api"/)
      }),
      { numRuns: 300 },
    )
  }, 120_000)
})

describe('every framework answers alike', () => {
  const apps: Array<{ framework: string; app: RunningApp }> = []
  let world: World

  beforeAll(async () => {
    world = await createWorld()
    for (const { framework, start } of frameworks) apps.push({ framework, app: await start(world) })
  })

  afterAll(async () => {
    for (const { app } of apps) await app.close()
    await world?.keyring.close()
    await world?.flaky.close()
    await world?.guarded.close()
  })

  it('with the same status, keyrot headers and body for the same request', async () => {
    const rotated = await world.keyring.create({ tenantId: 'acme', name: 'rotated' })
    await world.keyring.rotate(rotated.key.id)
    const revoked = await world.keyring.create({ tenantId: 'acme', name: 'revoked' })
    await world.keyring.revoke(revoked.key.id)
    const requests: Array<[string, Record<string, string | string[]>]> = [
      ['/whoami', bearer(world.reader.token)],
      ['/whoami', { 'x-api-key': world.reader.token }],
      ['/whoami', bearer(rotated.token)],
      ['/whoami', {}],
      ['/whoami', bearer('sk_test_malformed')],
      ['/whoami', bearer(generateToken('sk_test', world.reader.key.id))],
      ['/whoami', bearer(revoked.token)],
      ['/admin', bearer(world.reader.token)],
      ['/whoami', { ...bearer(world.reader.token), 'x-api-key': world.reader.token }],
      ['/whoami', { authorization: [bearer(world.reader.token).authorization, 'Bearer x'] }],
      ['/whoami', { authorization: 'Bearer caf\u00e9' }],
    ]
    const seen = (response: TestResponse) => {
      const { headers } = response
      const names = ['content-type', 'content-length', 'cache-control', 'www-authenticate', 'retry-after', 'sunset'] as const
      return { status: response.status, body: response.body, headers: Object.fromEntries(names.map((name) => [name, headers[name]])) }
    }
    for (const [path, headers] of requests) {
      const answers = []
      for (const { framework, app } of apps) answers.push({ framework, ...seen(await get(app.port, path, headers)) })
      const [reference, ...others] = answers
      for (const other of others) expect({ ...other, framework: reference?.framework }, `${other.framework} vs ${reference?.framework} on ${path}`).toEqual(reference)
    }
  })
})
