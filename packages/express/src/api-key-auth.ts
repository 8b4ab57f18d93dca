import {
  authenticateNow,
  authenticateRequestOf,
  type AuthenticateOutcome,
  middlewareMisuseResponse,
  reportMiddlewareMisuse,
  resolveAdapterAuth,
  type ApiKey,
  type Keyring,
} from '@keyrot/core'
import type { NextFunction, Request, RequestHandler, Response } from 'express'

export interface ApiKeyAuthOptions {
  keyring: Keyring
  /** Scopes every request through this middleware must have. */
  scopes?: readonly string[]
  /**
   * The client's IP for rate limits, events and logs. Default: `req.ip`, which
   * honours Express's `trust proxy` setting. Behind a proxy, set `trust proxy`
   * to the proxy's hops, or every client shares the proxy's IP.
   */
  clientIp?: (req: Request) => string | undefined
  /** `realm` of the `WWW-Authenticate` challenge. Default `'api'`. */
  realm?: string
  /**
   * Credits each request spends from a key created with credits (see the
   * README's "Credits"). Default 1; `0` spends none (an empty balance still
   * refuses). Keys without credits ignore it.
   */
  cost?: number
}

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** The verified API key (never the token), set by `apiKeyAuth()`. */
      apiKey?: ApiKey
    }
  }
}

/**
 * Express middleware (Express 4 and 5) that authenticates each request by API
 * key: `Authorization: Bearer <token>` or `X-API-Key: <token>`.
 *
 * On success `req.apiKey` is the key (id, tenantId, scopes, expiresAt...);
 * during a grace period responses carry `Sunset`. Failures answer at once with
 * 400/401/403 (RFC 6750 challenge), 429 or 503 (`Retry-After`) and a JSON body
 * `{ error: { code, message } }`.
 *
 * @example
 * app.use(apiKeyAuth({ keyring, scopes: ['read'] }))
 * app.get('/v1/things', (req, res) => res.json({ tenant: req.apiKey!.tenantId }))
 */
export function apiKeyAuth(options: ApiKeyAuthOptions): RequestHandler {
  if (isExpressRequest(options, arguments[1])) return misused('apiKeyAuth', arguments[1] as Response)
  const { keyring, authOptions } = resolveAdapterAuth('apiKeyAuth', options, '(req)')
  const clientIp = options.clientIp ?? defaultClientIp
  return function keyrotApiKeyAuth(req: Request, res: Response, next: NextFunction): void {
    let outcome: AuthenticateOutcome | Promise<AuthenticateOutcome>
    try {
      outcome = authenticateNow(keyring, authenticateRequestOf(req, clientIp(req)), authOptions)
    } catch (error) {
      next(error)
      return
    }
    // A cache hit answers synchronously: no promise, no microtask before next().
    if (outcome instanceof Promise) outcome.then((settled) => answer(req, res, next, settled), next)
    else answer(req, res, next, outcome)
  }
}

/** `req.ip`: it honours `trust proxy` and any override of `req.ip` (on the request, `app.request` or `express.request`). */
export function defaultClientIp(req: Request): string | undefined {
  return req.ip ?? req.socket.remoteAddress
}

function answer(req: Request, res: Response, next: NextFunction, outcome: AuthenticateOutcome): void {
  const headers = outcome.headers
  for (const name in headers) res.setHeader(name, headers[name] as string)
  if (outcome.ok) {
    req.apiKey = outcome.key
    next()
    return
  }
  res.status(outcome.status).json(outcome.body)
}

/** `app.get(path, apiKeyAuth, handler)`: Express called the factory with `(req, res, next)`. */
export function isExpressRequest(first: unknown, second: unknown): boolean {
  return (
    typeof first === 'object' && first !== null && 'method' in first && 'headers' in first &&
    typeof second === 'object' && second !== null && typeof (second as { setHeader?: unknown }).setHeader === 'function'
  )
}

/** Answers 500 KEYROT_MIDDLEWARE_MISUSE as JSON (never Express's HTML stack trace) and logs it once. */
export function misused(name: string, res: Response): RequestHandler {
  reportMiddlewareMisuse(name)
  const { status, headers, body } = middlewareMisuseResponse(name)
  if (!res.headersSent) res.status(status).set(headers).json(body)
  return (_req, _res, next) => next()
}
