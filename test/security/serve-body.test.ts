import { request as httpRequest } from 'node:http'
import { gzipSync, deflateSync, brotliCompressSync } from 'node:zlib'
import { createKeyring, FastTestHasher, MemoryStore, type Keyring } from '@keyrot/core'
import express, { type ErrorRequestHandler } from 'express'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { adminRoutes, createServer, listen, type RunningServer } from '../../packages/cli/src/index.js'
import { adminErrorResponse } from '../../packages/cli/src/server/errors.js'
import { ensureBuilt, killChildren, runKeyrot, startServe } from '../cli/keyrot-bin.js'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'

/**
 * Issue 14, finding 5: a corrupt gzip body on the admin API answered 503
 * KEYROT_STORE_UNAVAILABLE and logged an error as if Redis were down. Now
 * every failure to read or decode a body is a 4xx with a code, which a
 * fast-check property over hostile admin requests checks.
 */

interface RawAnswer {
  status: number
  body: string
}

/** One request with exactly these headers and bytes (no client fix-ups), on its own connection. */
function rawRequest(base: string, method: string, path: string, headers: Record<string, string>, body: Buffer): Promise<RawAnswer> {
  const { hostname, port } = new URL(base)
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: hostname, port: Number(port), method, path, headers: { connection: 'close', ...headers }, agent: false }, (res) => {
      let text = ''
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
      res.on('error', reject)
    })
    req.setTimeout(15_000, () => req.destroy(new Error(`no answer to ${method} ${path} within 15 s`)))
    req.on('error', reject)
    req.end(body)
  })
}

const corruptGzip = Buffer.concat([gzipSync(Buffer.from(JSON.stringify({ tenantId: 'acme', name: 'x' }))).subarray(0, 12), Buffer.from('not gzip at all')])

let keyring: Keyring
let running: RunningServer
let admin: string
let keyId: string

beforeAll(async () => {
  ensureBuilt()
  keyring = createKeyring({ store: new MemoryStore(), hasher: new FastTestHasher() })
  admin = (await keyring.create({ tenantId: 'ops', name: 'admin', scopes: ['admin', 'admin:*'], rateLimit: { limit: 1_000_000, window: 60_000 } })).token
  keyId = (await keyring.create({ tenantId: 'acme', name: 'target' })).key.id
  running = await listen(createServer({ keyring }), { port: 0, onClose: () => keyring.close() })
}, 240_000)

afterAll(async () => {
  await running?.close()
  killChildren()
})

describe('finding 5: admin body decoding failures are the client\'s, never a 5xx', () => {
  it('a corrupt gzip body: 503 KEYROT_STORE_UNAVAILABLE before; 400 KEYROT_INVALID_INPUT after, in process and from the binary, with no error logged', async () => {
    // Before: the admin API's body parser and error mapping as they were.
    const old = express()
    old.post('/v1/keys', express.json({ limit: '16kb', strict: true }), (_req, res) => res.status(201).json({}))
    const oldErrors: ErrorRequestHandler = (error, _req, res, _next) => {
      const response = adminErrorResponse(error)
      res.status(response.status).set(response.headers).json(response.body)
    }
    old.use(oldErrors)
    const oldRunning = await listen(old, { port: 0 })
    let before: RawAnswer
    try {
      before = await rawRequest(oldRunning.url, 'POST', '/v1/keys', { 'content-type': 'application/json', 'content-encoding': 'gzip', authorization: `Bearer ${admin}` }, corruptGzip)
    } finally {
      await oldRunning.close()
    }

    const after = await rawRequest(running.url, 'POST', '/v1/keys', { 'content-type': 'application/json', 'content-encoding': 'gzip', authorization: `Bearer ${admin}` }, corruptGzip)

    const redis: RedisServer = await startRedisServer()
    let binary: RawAnswer
    let logged: string
    try {
      const bootstrap = await runKeyrot(['create', '--redis', redis.url, '--tenant', 'ops', '--name', 'admin', '--scopes', 'admin,admin:*', '--json'])
      const serve = await startServe(['--redis', redis.url])
      try {
        binary = await rawRequest(serve.url, 'POST', '/v1/keys', { 'content-type': 'application/json', 'content-encoding': 'gzip', authorization: `Bearer ${JSON.parse(bootstrap.stdout).token}` }, corruptGzip)
        // A valid gzip body still works.
        const good = await rawRequest(serve.url, 'POST', '/v1/keys', { 'content-type': 'application/json', 'content-encoding': 'gzip', authorization: `Bearer ${JSON.parse(bootstrap.stdout).token}` }, gzipSync(JSON.stringify({ tenantId: 'acme', name: 'zipped' })))
        expect(good.status).toBe(201)
      } finally {
        serve.child.kill('SIGTERM')
        await serve.exited
        logged = serve.output()
      }
    } finally {
      await redis.stop()
    }
    console.log(`[security] finding 5 corrupt gzip admin body: before=${before.status} ${JSON.parse(before.body).error.code}; after in process=${after.status} ${JSON.parse(after.body).error.code}; binary=${binary.status}, error log lines=${(logged.match(/"level":50/g) ?? []).length}`)
    expect(before.status).toBe(503)
    expect(JSON.parse(before.body).error.code).toBe('KEYROT_STORE_UNAVAILABLE')
    for (const answer of [after, binary]) {
      expect(answer.status).toBe(400)
      expect(JSON.parse(answer.body).error).toMatchObject({ code: 'KEYROT_INVALID_INPUT', field: 'body' })
    }
    expect(logged).not.toContain('"level":50')
  }, 120_000)

  it('property: hostile admin requests (encodings, lengths, JSON shapes, content types) never get a 5xx', async () => {
    const bodyRoutes = adminRoutes.filter((route) => route.body !== undefined).map((route) => route.path.replace(':id', keyId))
    const jsonShapes = fc.oneof(
      fc.json({ maxDepth: 4 }),
      fc.record({ tenantId: fc.oneof(fc.string(), fc.constant('acme'), fc.integer()), name: fc.string(), scopes: fc.anything() }, { requiredKeys: [] }).map((value) => JSON.stringify(value)),
      fc.string({ maxLength: 64 }),
      fc.constantFrom('{', '[]', 'null', '{"__proto__":{"admin":true}}', '{"constructor":{"prototype":{}}}', '"\\ud800"', '{"a":1e999999}', '{"reason":"x"}'),
    )
    const encodings = fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'compress', 'gzip, gzip', 'GZIP', '', 'x-unknown')
    const contentTypes = fc.constantFrom(
      'application/json',
      'application/json; charset=utf-8',
      'application/json; charset=latin1',
      'application/json; charset=utf-16',
      'application/json; charset=nonsense',
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      '',
      'application/*',
    )
    const request = fc.record({
      path: fc.constantFrom(...bodyRoutes),
      text: jsonShapes,
      padding: fc.nat({ max: 40_000 }),
      encoding: encodings,
      really: fc.constantFrom('matching', 'plain', 'corrupt', 'truncated'),
      contentType: contentTypes,
      length: fc.constantFrom('exact', 'shorter', 'none'),
    })
    const statuses: number[] = []
    await fc.assert(
      fc.asyncProperty(request, async (hostile) => {
        let bytes = Buffer.from(hostile.text + ' '.repeat(hostile.padding % 3 === 0 ? hostile.padding : 0))
        const codec = hostile.encoding.toLowerCase()
        if (hostile.really !== 'plain') {
          if (codec.startsWith('gzip')) bytes = gzipSync(bytes)
          else if (codec === 'deflate') bytes = deflateSync(bytes)
          else if (codec === 'br') bytes = brotliCompressSync(bytes)
        }
        if (hostile.really === 'corrupt') bytes = Buffer.concat([bytes.subarray(0, Math.max(1, bytes.length >> 1)), Buffer.from([0xff, 0x00, 0x13, 0x37])])
        if (hostile.really === 'truncated') bytes = bytes.subarray(0, Math.max(0, bytes.length - 3))
        const headers: Record<string, string> = { authorization: `Bearer ${admin}` }
        if (hostile.contentType !== '') headers['content-type'] = hostile.contentType
        if (hostile.encoding !== '') headers['content-encoding'] = hostile.encoding
        if (hostile.length === 'exact') headers['content-length'] = String(bytes.length)
        if (hostile.length === 'shorter' && bytes.length > 0) headers['content-length'] = String(bytes.length - 1)
        if (hostile.length === 'none') headers['transfer-encoding'] = 'chunked'
        const answer = await rawRequest(running.url, 'POST', hostile.path, headers, bytes)
        statuses.push(answer.status)
        expect(answer.status, `${hostile.path} ${JSON.stringify(headers)} -> ${answer.status} ${answer.body}`).toBeLessThan(500)
        // Every refusal carries a stable code.
        if (answer.status >= 400) expect(answer.body, `${hostile.path} ${JSON.stringify(headers)} -> ${answer.status}`).toMatch(/"code":"KEYROT_[A-Z_]+"/)
      }),
      { numRuns: 300 },
    )
    const counts: Record<number, number> = {}
    for (const status of statuses) counts[status] = (counts[status] ?? 0) + 1
    console.log(`[security] finding 5 property: hostile admin requests=${statuses.length} statuses=${JSON.stringify(counts)} 5xx=${statuses.filter((status) => status >= 500).length}`)
    expect(statuses.length).toBeGreaterThanOrEqual(300)
    expect(statuses.some((status) => status >= 400)).toBe(true)
  }, 300_000)
})
