import {
  readRawBody,
  signedRequestAdapter,
  type ApiKey,
  type SignedRequestVerifierOptions,
} from '@keyrot/core'
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { defaultClientIp, isExpressRequest, misused } from './api-key-auth.js'

/** Options of `signedRequest()`: the verifier's (keyring, replay store, tolerance, realm) plus the body limit and client IP. */
export interface SignedRequestOptions extends SignedRequestVerifierOptions {
  /** Largest body read and verified, in bytes. Default 1 MiB (1,048,576). Larger bodies get 413. Must be a positive integer. */
  limit?: number
  /** The client's IP for events and logs. Default: `req.ip` (honours `trust proxy`). */
  clientIp?: (req: Request) => string | undefined
}

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** Set by `signedRequest()`: the signing secret's key (never the secret) and the exact body bytes that were verified. */
      signedRequest?: { key: ApiKey; rawBody: Buffer }
    }
  }
}

/**
 * The exact body bytes: kept by a parser that ran first (`express.raw()`, or
 * `express.json({ verify: (req, res, buf) => { req.rawBody = buf } })`), or
 * read from the stream here.
 */
function bodyOf(req: Request, limit: number): Promise<Buffer> {
  const kept = (req as { rawBody?: unknown }).rawBody
  if (Buffer.isBuffer(kept)) return Promise.resolve(kept)
  if (Buffer.isBuffer(req.body)) return Promise.resolve(req.body)
  if (req.readableEnded || (req as { _body?: unknown })._body === true) {
    return Promise.reject(
      new TypeError(
        'signedRequest() needs the raw body, but a body parser already consumed it: mount signedRequest() before it, ' +
          'use express.raw(), or keep the bytes with express.json({ verify: (req, res, buf) => { req.rawBody = buf } })',
      ),
    )
  }
  return readRawBody(req, limit)
}

/**
 * Express middleware (Express 4 and 5) that verifies HMAC-signed requests:
 * the `keyrot-key-id`, `keyrot-timestamp`, `keyrot-nonce` and
 * `keyrot-signature` headers over method, path with query, timestamp, nonce,
 * key id and a SHA-256 of the raw body (see `docs/signing.md`). The decisions
 * are `createSignedRequestVerifier()`'s in `@keyrot/core`; this only collects
 * the raw body and copies the outcome.
 *
 * On success `req.signedRequest` holds the key and the verified body bytes
 * (parse them yourself: the stream has been read). Refusals answer at once:
 * 401 `KEYROT_MISSING_SIGNATURE`, `KEYROT_INVALID_SIGNATURE`,
 * `KEYROT_STALE_TIMESTAMP`, `KEYROT_REPLAYED_REQUEST`, `KEYROT_KEY_EXPIRED`
 * or `KEYROT_KEY_REVOKED`; 400 for malformed headers; 413 for a body over
 * `limit`; 503 when the store or replay store is down.
 *
 * @example
 * app.post('/v1/payments', signedRequest({ keyring, replayStore }), (req, res) => {
 *   const payment = JSON.parse(req.signedRequest!.rawBody.toString('utf8'))
 *   res.json({ tenant: req.signedRequest!.key.tenantId, amount: payment.amount })
 * })
 */
export function signedRequest(options: SignedRequestOptions): RequestHandler {
  if (isExpressRequest(options, arguments[1])) return misused('signedRequest', arguments[1] as Response)
  const { verifier, limit } = signedRequestAdapter(options, '(req)')
  const clientIp = options.clientIp ?? defaultClientIp

  return function keyrotSignedRequest(req: Request, res: Response, next: NextFunction): void {
    Promise.resolve()
      .then(() =>
        verifier.verify({
          method: req.method,
          pathWithQuery: req.originalUrl,
          headers: req.headers,
          // Read only once the headers, timestamp and key passed.
          maxBodyBytes: limit,
          rawBody: () => bodyOf(req, limit),
          clientIp: clientIp(req),
          userAgent: req.headers['user-agent'],
        }),
      )
      .then(
        (outcome) => {
          for (const [name, value] of Object.entries(outcome.headers)) res.setHeader(name, value)
          if (outcome.ok) {
            req.signedRequest = { key: outcome.key, rawBody: Buffer.isBuffer(outcome.rawBody) ? outcome.rawBody : Buffer.from(outcome.rawBody) }
            next()
            return
          }
          res.status(outcome.status).json(outcome.body)
        },
        (error: unknown) => next(error),
      )
  }
}
