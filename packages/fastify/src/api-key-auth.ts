import {
  authenticateNow,
  authenticateRequestOf,
  resolveAdapterAuth,
  type ApiKey,
  type AuthenticateOptions,
  type Keyring,
} from '@keyrot/core'
import type { FastifyInstance, FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { isMisuse, misused } from './misuse.js'

export interface ApiKeyAuthOptions {
  keyring: Keyring
  /** Scopes every request must have. Default: none. A route's `config.keyrot.scopes` adds to them. */
  scopes?: readonly string[]
  /**
   * The client's IP for rate limits, lockouts, events and logs. Default:
   * `request.ip`, which honours Fastify's `trustProxy` option. Behind a proxy,
   * set `trustProxy` to the proxy's address or hop count, or every client
   * shares the proxy's IP.
   */
  clientIp?: (request: FastifyRequest) => string | undefined
  /** `realm` of the `WWW-Authenticate` challenge. Default `'api'`. */
  realm?: string
  /**
   * Credits each request spends from a key created with credits (see the
   * README's "Credits"). Default 1; `0` spends none (an empty balance still
   * refuses). Keys without credits ignore it.
   */
  cost?: number
  /**
   * Add an `onRequest` hook that authenticates every route of the scope the
   * plugin is registered in (routes opt out with `config: { keyrot: false }`).
   * Default `true`. With `false`, put `fastify.verifyApiKey()` in the
   * `onRequest` or `preHandler` of the routes that need a key.
   */
  addHook?: boolean
}

/** Per-route settings, in a route's `config.keyrot` or given to `fastify.verifyApiKey()`. */
export interface RouteApiKeyOptions {
  /** Scopes this route needs, in addition to the plugin's. */
  scopes?: readonly string[]
}

/** A hook that authenticates the request: put it in a route's `onRequest` or `preHandler`. */
export type ApiKeyHook = (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined>

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified API key (never the token), set by `@keyrot/fastify`; `null` before or without authentication. */
    apiKey: ApiKey | null
  }
  interface FastifyInstance {
    /** A hook for one route, with that route's scopes: `{ preHandler: fastify.verifyApiKey({ scopes: ['admin'] }) }`. */
    verifyApiKey(options?: RouteApiKeyOptions): ApiKeyHook
  }
  interface FastifyContextConfig {
    /** Per-route settings of `@keyrot/fastify`'s hook; `false` makes the route public. */
    keyrot?: RouteApiKeyOptions | false
  }
}

const JSON_TYPE = 'application/json; charset=utf-8'

function createHook(
  keyring: Keyring,
  clientIp: (request: FastifyRequest) => string | undefined,
  optionsOf: (request: FastifyRequest) => AuthenticateOptions | null,
): ApiKeyHook {
  return async function keyrotApiKeyAuth(request, reply) {
    const authOptions = optionsOf(request)
    if (authOptions === null) return undefined
    const pending = authenticateNow(keyring, authenticateRequestOf(request.raw, clientIp(request)), authOptions)
    // A cache hit answers synchronously: no promise to wait for.
    const outcome = pending instanceof Promise ? await pending : pending
    reply.headers(outcome.headers)
    if (outcome.ok) {
      request.apiKey = outcome.key
      return undefined
    }
    return reply.code(outcome.status).header('content-type', JSON_TYPE).send(outcome.body)
  }
}

/** Adds the route's scopes to the plugin's, checked like the plugin's options. */
function withRouteScopes(base: AuthenticateOptions & { realm: string }, route: RouteApiKeyOptions, keyring: Keyring, where: string): AuthenticateOptions {
  if (!route || typeof route !== 'object') throw new TypeError(`${where} must be an object { scopes? } or false; got ${String(route)}`)
  const { authOptions } = resolveAdapterAuth(where, { keyring, scopes: route.scopes, realm: base.realm }, '')
  if (!authOptions.scopes) return base
  return { ...base, scopes: [...new Set([...(base.scopes ?? []), ...authOptions.scopes])] }
}

/**
 * A hook for one route with its own keyring and options, without the plugin:
 * for an app with several keyrings. Put it in the route's `onRequest` or
 * `preHandler` (and `config: { keyrot: false }` there if the plugin's hook
 * also covers the route).
 *
 * @example
 * fastify.get('/partners', { config: { keyrot: false }, preHandler: apiKeyHook({ keyring: partners }) }, handler)
 */
export function apiKeyHook(options: Omit<ApiKeyAuthOptions, 'addHook'>): ApiKeyHook {
  if (isMisuse(options)) return misused('apiKeyHook', 'apiKeyHook({ keyring })')(options, arguments[1] as FastifyReply) as never
  const { keyring, authOptions } = resolveAdapterAuth('apiKeyHook', options, '(request)')
  const clientIp = options.clientIp ?? ((request: FastifyRequest) => request.ip || undefined)
  return createHook(keyring, clientIp, () => authOptions)
}

const plugin: FastifyPluginCallback<ApiKeyAuthOptions> = function keyrotFastify(fastify, options, done) {
  let resolved: ReturnType<typeof resolveAdapterAuth>
  try {
    resolved = resolveAdapterAuth('@keyrot/fastify', options, '(request)')
    if (options.addHook !== undefined && typeof options.addHook !== 'boolean') {
      throw new TypeError(`@keyrot/fastify addHook must be a boolean; got ${String(options.addHook)}`)
    }
  } catch (error) {
    // Through done(), so that register() and ready() reject with this TypeError.
    done(error as Error)
    return
  }
  const { keyring, authOptions } = resolved
  const clientIp = options.clientIp ?? ((request: FastifyRequest) => request.ip || undefined)
  // Resolved once per route, when the route is added; keyed by the route's `config.keyrot` object.
  const perRoute = new WeakMap<object, AuthenticateOptions>()

  if (!fastify.hasRequestDecorator('apiKey')) fastify.decorateRequest('apiKey', null)
  fastify.decorate('verifyApiKey', function verifyApiKey(this: FastifyInstance, route?: RouteApiKeyOptions): ApiKeyHook {
    // `preHandler: fastify.verifyApiKey`: this call is the hook, and the promise returned is its answer.
    if (isMisuse(route)) return misused('fastify.verifyApiKey', 'fastify.verifyApiKey({ scopes })')(route, arguments[1] as FastifyReply) as never
    const resolved = route === undefined ? authOptions : withRouteScopes(authOptions, route, keyring, 'fastify.verifyApiKey options')
    return createHook(keyring, clientIp, () => resolved)
  })

  if (options.addHook !== false) {
    fastify.addHook('onRoute', (route) => {
      const config = route.config?.keyrot
      if (config === undefined || config === false) return
      perRoute.set(config, withRouteScopes(authOptions, config, keyring, `config.keyrot of ${route.method} ${route.url}`))
    })
    fastify.addHook(
      'onRequest',
      createHook(keyring, clientIp, (request) => {
        const config = (request.routeOptions?.config as { keyrot?: RouteApiKeyOptions | false } | undefined)?.keyrot
        if (config === false) return null
        return (config && perRoute.get(config)) ?? authOptions
      }),
    )
  }
  done()
}

/**
 * The Fastify plugin (Fastify 4 and 5) that authenticates requests by API
 * key: `Authorization: Bearer <token>` or `X-API-Key: <token>`. Wrapped with
 * `fastify-plugin`, so its hook and decorators reach the scope it is
 * registered in. The decisions are `authenticate()`'s in `@keyrot/core`,
 * and every answer matches the Express and Koa adapters.
 *
 * On success `request.apiKey` is the key (id, tenantId, scopes,
 * expiresAt...); during a grace period the response carries `Sunset`.
 * Failures answer at once through `reply.code().header().send()` with
 * 400/401/403 (RFC 6750 challenge), 429 or 503 (`Retry-After`) and a JSON
 * body `{ error: { code, message } }`. Anything else that goes wrong reaches
 * Fastify's error handler.
 *
 * @example
 * await fastify.register(apiKeyAuth, { keyring })
 * fastify.get('/v1/things', (request) => ({ tenant: request.apiKey!.tenantId }))
 * fastify.get('/v1/admin', { config: { keyrot: { scopes: ['admin'] } } }, handler)
 * fastify.get('/health', { config: { keyrot: false } }, () => 'ok')
 */
export const apiKeyAuth = guard(fp(plugin, { name: '@keyrot/fastify', fastify: '4.x || 5.x' }))

/**
 * Keeps fastify-plugin's metadata, and answers KEYROT_MIDDLEWARE_MISUSE when
 * the plugin itself is put in a route's hooks (`preHandler: apiKeyAuth`).
 */
function guard<T extends (...args: never[]) => unknown>(fn: T): T {
  const wrapped = function (this: unknown, ...args: unknown[]): unknown {
    if (isMisuse(args[0])) return misused('apiKeyAuth', 'fastify.register(apiKeyAuth, { keyring })')(args[0] as FastifyRequest, args[1] as FastifyReply)
    return (fn as unknown as (...a: unknown[]) => unknown).apply(this, args)
  }
  for (const key of Reflect.ownKeys(fn)) {
    if (key !== 'length' && key !== 'name' && key !== 'prototype') Reflect.set(wrapped, key, Reflect.get(fn, key))
  }
  return wrapped as unknown as T
}
