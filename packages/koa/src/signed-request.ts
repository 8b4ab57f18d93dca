import {
  readRawBody,
  signedRequestAdapter,
  type ApiKey,
  type SignedRequestVerifierOptions,
} from '@keyrot/core'
import type { Context, Middleware, Next } from 'koa'
import { isKoaContext, misused } from './api-key-auth.js'

/** Options of `signedRequest()`: the verifier's (keyring, replay store, tolerance, realm) plus the body limit and client IP. */
export interface SignedRequestOptions extends SignedRequestVerifierOptions {
  /** Largest body read and verified, in bytes. Default 1 MiB (1,048,576). Larger bodies get 413. Must be a positive integer. */
  limit?: number
  /** The client's IP for events and logs. Default: `ctx.ip` (see `apiKeyAuth` about `app.proxy`). */
  clientIp?: (ctx: Context) => string | undefined
}

declare module 'koa' {
  interface DefaultState {
    /** Set by `signedRequest()`: the signing secret's key (never the secret) and the exact body bytes that were verified. */
    signedRequest?: { key: ApiKey; rawBody: Buffer }
  }
}

/** The exact body bytes: kept by a body parser that ran first (`ctx.request.rawBody`), or read from the stream here. */
function bodyOf(ctx: Context, limit: number): Promise<Buffer> {
  const kept = (ctx.request as { rawBody?: unknown }).rawBody
  if (Buffer.isBuffer(kept)) return Promise.resolve(kept)
  if (typeof kept === 'string') return Promise.resolve(Buffer.from(kept, 'utf8'))
  if (ctx.req.readableEnded) {
    return Promise.reject(
      new TypeError('signedRequest() needs the raw body, but a body parser already consumed it: mount signedRequest() before it, or use one that keeps ctx.request.rawBody'),
    )
  }
  return readRawBody(ctx.req, limit)
}

/**
 * Koa middleware (Koa 2 and 3) that verifies HMAC-signed requests, exactly
 * as the Express adapter does; the decisions are
 * `createSignedRequestVerifier()`'s in `@keyrot/core`. See `docs/signing.md`
 * for the headers and the canonical string.
 *
 * On success `ctx.state.signedRequest` holds the key and the verified body
 * bytes and the next middleware runs. Refusals answer at once with 401
 * (`KEYROT_MISSING_SIGNATURE`, `KEYROT_INVALID_SIGNATURE`,
 * `KEYROT_STALE_TIMESTAMP`, `KEYROT_REPLAYED_REQUEST`, `KEYROT_KEY_EXPIRED`,
 * `KEYROT_KEY_REVOKED`), 400, 413 or 503 and a JSON body `{ error: { code, message } }`.
 *
 * @example
 * router.post('/v1/payments', signedRequest({ keyring, replayStore }), (ctx) => {
 *   const payment = JSON.parse(ctx.state.signedRequest!.rawBody.toString('utf8'))
 *   ctx.body = { tenant: ctx.state.signedRequest!.key.tenantId, amount: payment.amount }
 * })
 */
export function signedRequest(options: SignedRequestOptions): Middleware {
  if (isKoaContext(options)) return misused('signedRequest', options)
  const { verifier, limit } = signedRequestAdapter(options, '(ctx)')
  const clientIp = options.clientIp ?? ((ctx: Context) => ctx.ip || undefined)

  return async function keyrotSignedRequest(ctx: Context, next: Next): Promise<void> {
    const outcome = await verifier.verify({
      method: ctx.method,
      pathWithQuery: ctx.originalUrl,
      headers: ctx.req.headers,
      // Read only once the headers, timestamp and key passed.
      maxBodyBytes: limit,
      rawBody: () => bodyOf(ctx, limit),
      clientIp: clientIp(ctx),
      userAgent: ctx.req.headers['user-agent'],
    })
    ctx.set(outcome.headers)
    if (outcome.ok) {
      ctx.state.signedRequest = { key: outcome.key, rawBody: Buffer.isBuffer(outcome.rawBody) ? outcome.rawBody : Buffer.from(outcome.rawBody) }
      await next()
      return
    }
    ctx.status = outcome.status
    ctx.body = outcome.body
  }
}
