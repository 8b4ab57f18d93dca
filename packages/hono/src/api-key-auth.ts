import {
  authenticateNow,
  authenticateRequestOf,
  type AuthenticateRequest,
  middlewareMisuseResponse,
  reportMiddlewareMisuse,
  resolveAdapterAuth,
  type ApiKey,
  type Keyring,
} from '@keyrot/core'
import type { Context, MiddlewareHandler } from 'hono'
import { createMiddleware } from 'hono/factory'
import { fetchCredentialHeaders, incomingOf, JSON_TYPE } from './request.js'

export interface ApiKeyAuthOptions {
  keyring: Keyring
  /** Scopes every request through this middleware must have. Default: none. */
  scopes?: readonly string[]
  /**
   * The client's IP for rate limits, lockouts, events and logs. Default: the
   * Node socket's remote address (what `hono/conninfo`'s `getConnInfo`
   * reports under `@hono/node-server`). Hono does not read `X-Forwarded-For` by itself: behind a
   * proxy, pass a function that reads what your proxy sets, or every client
   * shares the proxy's IP.
   */
  clientIp?: (c: Context) => string | undefined
  /** `realm` of the `WWW-Authenticate` challenge. Default `'api'`. */
  realm?: string
  /**
   * Credits each request spends from a key created with credits (see the
   * README's "Credits"). Default 1; `0` spends none (an empty balance still
   * refuses). Keys without credits ignore it.
   */
  cost?: number
}

/** What the middleware adds to the context: `c.get('apiKey')`. */
export interface ApiKeyVariables {
  /** The verified API key (never the token). */
  apiKey: ApiKey
}

export type ApiKeyEnv = { Variables: ApiKeyVariables }

function defaultClientIp(c: Context): string | undefined {
  const incoming = incomingOf(c)
  if (!incoming) return undefined
  // What hono/conninfo's getConnInfo(c).remote.address reports, without building its object on every request.
  return incoming.socket?.remoteAddress || undefined
}

/** A Hono context where options were expected: the factory itself was mounted (`app.use(apiKeyAuth)`). */
function isContext(value: unknown): value is Context {
  return typeof value === 'object' && value !== null && 'req' in value && typeof (value as { json?: unknown }).json === 'function'
}

/**
 * Hono middleware (Hono 4, on Node with `@hono/node-server`) that
 * authenticates each request by API key: `Authorization: Bearer <token>` or
 * `X-API-Key: <token>`. It answers exactly as the Express, Koa and Fastify
 * adapters do; the decisions are `authenticate()`'s in `@keyrot/core`.
 *
 * On success `c.get('apiKey')` is the key (typed through the `Variables` of
 * the returned middleware) and the next handler runs; during a grace period
 * the response carries `Sunset`. Failures answer at once with
 * `c.json(body, status, headers)`: 400/401/403 (RFC 6750 challenge), 429 or
 * 503 (`Retry-After`). Anything else that goes wrong reaches `app.onError`.
 *
 * @example
 * const app = new Hono()
 * app.use('/v1/*', apiKeyAuth({ keyring }))
 * app.get('/v1/things', (c) => c.json({ tenant: c.get('apiKey').tenantId }))
 */
export function apiKeyAuth(options: ApiKeyAuthOptions): MiddlewareHandler<ApiKeyEnv> {
  if (isContext(options)) return misused(options) as unknown as MiddlewareHandler<ApiKeyEnv>
  const { keyring, authOptions } = resolveAdapterAuth('apiKeyAuth', options, '(c)')
  const clientIp = options.clientIp ?? defaultClientIp
  return createMiddleware<ApiKeyEnv>(async function keyrotApiKeyAuth(c, next) {
    const incoming = incomingOf(c)
    // Under @hono/node-server, the Node request's own headers, as the Express and Koa adapters read them:
    // touching c.req.raw.headers would build a Fetch Headers object for every request.
    const request: AuthenticateRequest = incoming
      ? authenticateRequestOf(incoming, clientIp(c))
      : { ...fetchCredentialHeaders(c), clientIp: clientIp(c), userAgent: c.req.header('user-agent') }
    const pending = authenticateNow(keyring, request, authOptions)
    // A cache hit answers synchronously: no promise to wait for.
    const outcome = pending instanceof Promise ? await pending : pending
    if (!outcome.ok) return c.json(outcome.body, outcome.status as 400, { ...outcome.headers, 'Content-Type': JSON_TYPE })
    const headers = outcome.headers
    for (const name in headers) c.header(name, headers[name] as string)
    c.set('apiKey', outcome.key)
    await next()
    return undefined
  })
}

/** `app.use(apiKeyAuth)`: Hono awaits what the factory returns, so answering here is the 500 the route gets. */
function misused(c: Context): Response {
  reportMiddlewareMisuse('apiKeyAuth')
  const { status, headers, body } = middlewareMisuseResponse('apiKeyAuth')
  return c.json(body, status as 500, { ...headers, 'Content-Type': JSON_TYPE })
}
