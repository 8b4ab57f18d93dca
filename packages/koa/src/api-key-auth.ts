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
import type { Context, Middleware, Next } from 'koa'

export interface ApiKeyAuthOptions {
  keyring: Keyring
  /** Scopes every request through this middleware must have. Default: none. */
  scopes?: readonly string[]
  /**
   * The client's IP for rate limits, lockouts, events and logs. Default:
   * `ctx.ip`, which reads `X-Forwarded-For` only when `app.proxy` is `true`.
   *
   * Proxy pitfall: behind a load balancer without `app.proxy = true`, every
   * client has the balancer's IP, so one client's failed attempts lock out
   * all of them. With `app.proxy = true` but no proxy in front, a client can
   * send any `X-Forwarded-For` and pick its own IP, dodging per-IP lockouts.
   * Set `app.proxy` to match your deployment (and `app.maxIpsCount` to the
   * number of proxies), or pass a function that reads what your proxy sets.
   */
  clientIp?: (ctx: Context) => string | undefined
  /** `realm` of the `WWW-Authenticate` challenge. Default `'api'`. */
  realm?: string
  /**
   * Credits each request spends from a key created with credits (see the
   * README's "Credits"). Default 1; `0` spends none (an empty balance still
   * refuses). Keys without credits ignore it.
   */
  cost?: number
}

declare module 'koa' {
  interface DefaultState {
    /** The verified API key (never the token), set by `apiKeyAuth()`. */
    apiKey?: ApiKey
  }
}

function defaultClientIp(ctx: Context): string | undefined {
  // Koa gives '' when the socket is already gone.
  return ctx.ip || undefined
}

/**
 * Koa middleware (Koa 2 and 3) that authenticates each request by API key:
 * `Authorization: Bearer <token>` or `X-API-Key: <token>`. It answers exactly
 * as the Express adapter does; the decisions are `authenticate()`'s in
 * `@keyrot/core`.
 *
 * On success `ctx.state.apiKey` is the key (id, tenantId, scopes,
 * expiresAt...) and the next middleware runs; during a grace period the
 * response carries `Sunset`. Failures answer at once with 400/401/403
 * (RFC 6750 challenge), 429 or 503 (`Retry-After`), `Cache-Control:
 * no-store` and a JSON body `{ error: { code, message } }`. Anything else that
 * goes wrong is thrown to Koa's error handling.
 *
 * @example
 * app.use(apiKeyAuth({ keyring, scopes: ['read'] }))
 * app.use((ctx) => { ctx.body = { tenant: ctx.state.apiKey!.tenantId } })
 */
export function apiKeyAuth(options: ApiKeyAuthOptions): Middleware {
  if (isKoaContext(options)) return misused('apiKeyAuth', options)
  const { keyring, authOptions } = resolveAdapterAuth('apiKeyAuth', options, '(ctx)')
  const clientIp = options.clientIp ?? defaultClientIp

  // Not async: a cache hit answers synchronously and goes straight on to next().
  return function keyrotApiKeyAuth(ctx: Context, next: Next): Promise<void> | void {
    const outcome = authenticateNow(keyring, authenticateRequestOf(ctx.req, clientIp(ctx)), authOptions)
    if (outcome instanceof Promise) return outcome.then((settled) => answer(ctx, next, settled))
    return answer(ctx, next, outcome)
  }
}

function answer(ctx: Context, next: Next, outcome: AuthenticateOutcome): Promise<void> | void {
  const headers = outcome.headers
  // Straight to Node (what ctx.set does after its checks): nothing has been sent before next() runs, and the values are strings.
  const res = ctx.res
  for (const name in headers) res.setHeader(name, headers[name] as string)
  if (outcome.ok) {
    ctx.state.apiKey = outcome.key
    return next()
  }
  ctx.status = outcome.status
  ctx.body = outcome.body
}

/** `app.use(apiKeyAuth)`: Koa called the factory with `(ctx, next)`. */
export function isKoaContext(value: unknown): value is Context {
  return typeof value === 'object' && value !== null && 'req' in value && 'res' in value && 'state' in value
}

/**
 * Answers 500 KEYROT_MIDDLEWARE_MISUSE as JSON and logs it once. Koa awaits
 * what the factory returns, so the answer set here is the one sent.
 */
export function misused(name: string, ctx: Context): Middleware {
  reportMiddlewareMisuse(name)
  const { status, headers, body } = middlewareMisuseResponse(name)
  ctx.status = status
  ctx.set(headers)
  ctx.body = body
  return async () => undefined
}
