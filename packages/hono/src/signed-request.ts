import { signedRequestAdapter, InvalidRequestError, PayloadTooLargeError, type ApiKey, type SignedRequestVerifierOptions } from '@keyrot/core'
import type { Context, MiddlewareHandler } from 'hono'
import { createMiddleware } from 'hono/factory'
import { headerRecord, incomingOf, JSON_TYPE } from './request.js'

/** Options of `signedRequest()`: the verifier's (keyring, replay store, tolerance, realm) plus the body limit and client IP. */
export interface SignedRequestOptions extends SignedRequestVerifierOptions {
  /** Largest body read and verified, in bytes. Default 1 MiB (1,048,576). Larger bodies get 413. Must be a positive integer. */
  limit?: number
  /** The client's IP for events and logs. Default: the socket's address (see `apiKeyAuth`). */
  clientIp?: (c: Context) => string | undefined
}

export type SignedRequestEnv = { Variables: { signedRequest: { key: ApiKey; rawBody: Buffer } } }

/**
 * The body bytes, at most `limit`: from the Fetch body stream, stopping as
 * soon as the limit is passed. They are put in Hono's body cache, so
 * `c.req.json()` and friends still work in the route.
 */
async function bodyOf(c: Context, limit: number): Promise<Buffer> {
  const stream = c.req.raw.body
  let bytes: Buffer
  if (!stream) {
    bytes = Buffer.alloc(0)
  } else {
    // Refused from Content-Length before reading, as the other adapters do.
    const declared = c.req.header('content-length')
    if (declared !== undefined && declared !== '') {
      if (!/^\d+$/.test(declared)) throw new InvalidRequestError('The Content-Length header is malformed.')
      if (Number(declared) > limit) throw new PayloadTooLargeError(limit)
    }
    const chunks: Uint8Array[] = []
    let length = 0
    const reader = stream.getReader()
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      length += value.byteLength
      if (length > limit) {
        await reader.cancel()
        throw new PayloadTooLargeError(limit)
      }
      chunks.push(value)
    }
    bytes = Buffer.concat(chunks, length)
  }
  const copy = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)
  // Hono's cache holds promises, though its type says otherwise.
  c.req.bodyCache.arrayBuffer = Promise.resolve(copy) as never
  return bytes
}

/**
 * Hono middleware (Hono 4 on Node) that verifies HMAC-signed requests,
 * exactly as the Express and Koa adapters do; the decisions are
 * `createSignedRequestVerifier()`'s in `@keyrot/core`. See
 * `docs/signing.md` for the headers.
 *
 * On success `c.get('signedRequest')` holds the key and the verified body
 * bytes, and `c.req.json()` still reads the body. Refusals answer at once
 * with 401, 400, 413 or 503 and a JSON body `{ error: { code, message } }`.
 *
 * @example
 * app.post('/v1/payments', signedRequest({ keyring, replayStore }), async (c) => {
 *   const payment = await c.req.json()
 *   return c.json({ tenant: c.get('signedRequest').key.tenantId, amount: payment.amount })
 * })
 */
export function signedRequest(options: SignedRequestOptions): MiddlewareHandler<SignedRequestEnv> {
  const { verifier, limit } = signedRequestAdapter(options, '(c)')
  const clientIp = options.clientIp
  return createMiddleware<SignedRequestEnv>(async function keyrotSignedRequest(c, next) {
    const incoming = incomingOf(c)
    const url = new URL(c.req.url)
    const outcome = await verifier.verify({
      method: c.req.method,
      pathWithQuery: incoming?.url ?? `${url.pathname}${url.search}`,
      headers: headerRecord(c, incoming),
      // Read only once the headers, timestamp and key passed; a declared length over it is refused first, alike for every key id.
      maxBodyBytes: limit,
      rawBody: () => bodyOf(c, limit),
      clientIp: clientIp ? clientIp(c) : incoming?.socket?.remoteAddress,
      userAgent: c.req.header('user-agent'),
    })
    if (!outcome.ok) return c.json(outcome.body, outcome.status as 400, { ...outcome.headers, 'Content-Type': JSON_TYPE })
    for (const [name, value] of Object.entries(outcome.headers)) c.header(name, value)
    c.set('signedRequest', { key: outcome.key, rawBody: Buffer.isBuffer(outcome.rawBody) ? outcome.rawBody : Buffer.from(outcome.rawBody) })
    await next()
    return undefined
  })
}
