import { createMetrics, InvalidInputError, runAsActor, silentLogger, type Keyring, type Logger, type MetricsOptions } from '@keyrot/core'
import { apiKeyAuth } from '@keyrot/express'
import express, { type ErrorRequestHandler, type Express, type NextFunction, type Request, type RequestHandler, type Response } from 'express'
import { collectDefaultMetrics, Registry } from 'prom-client'
import { createDashboard, type DashboardOptions } from '../dashboard/index.js'
import { recordAdminAccess } from './admin-access.js'
import { adminRoutes } from './admin-routes.js'
import { rotationRoutes } from './rotation-routes.js'
import { creditsRoutes } from './credits-routes.js'
import { policyRoutes } from './policy-routes.js'
import { adminErrorResponse, BodyError, parseInput } from './errors.js'
import { metricsRoute } from './metrics-app.js'
import { leakRoutes, leakRoutesFromEnv, type LeakRoutesOptions } from './leak-routes.js'
import { buildOpenApiDocument } from './openapi.js'
import { defineRoute, type RouteSpec } from './route-spec.js'
import { emptyObject, healthResponse, whoamiResponse, errorSchema } from './schemas.js'

export interface ServerOptions {
  keyring: Keyring
  /**
   * Registry the keyring's metrics (`createMetrics`) join. Serve it with
   * `createMetricsApp(registry)` on a listener only Prometheus reaches, or
   * on this app with `metricsRoute: true`. Default: a new registry with
   * Node's default process metrics.
   */
  registry?: Registry
  /**
   * Serve `/metrics` on this app, to anyone who reaches it. Default `false`:
   * the counters tell an outsider which key ids exist (a failure's precise
   * code) and what admins did, so `keyrot serve` exposes them on a separate
   * listener (`--metrics-listen`, loopback by default).
   */
  metricsRoute?: boolean
  /**
   * Options of the keyring's metrics, e.g. `{ splitInvalidKey: true }` for
   * the precise failure codes (an existence oracle for whoever can scrape
   * them: see docs/security.md). Default: `createMetrics`'s defaults.
   */
  metrics?: Omit<MetricsOptions, 'keyring' | 'registry'>
  /**
   * Whether the store is reachable, for `/healthz`: resolve when it is, throw
   * when not. Default: one store read of a key id that does not exist.
   */
  health?: () => Promise<unknown>
  /** Longest `/healthz` waits for `health`, in ms. Default 2000. */
  healthTimeoutMs?: number
  /** Largest JSON body the admin API reads, in bytes or as `'16kb'`. Default `'16kb'`. */
  bodyLimit?: number | string
  /**
   * Scope a key needs for the admin API: it then manages the keys of its own
   * tenant. A key that also holds the same scope with `:*` (`'admin:*'`)
   * manages every tenant.
   * Default `'admin'`.
   */
  adminScope?: string
  /** Audit and error log. Default: silent. */
  logger?: Logger
  /**
   * Adds routes (a dashboard page, your own API) before the JSON 404 and
   * error handlers, which must stay last.
   */
  extend?: (app: Express) => void
  /** `info` of the OpenAPI document. */
  openapi?: { title?: string; version?: string }
  /**
   * Express's `trust proxy` setting: how many proxies in front of the server
   * to trust for the client IP (`X-Forwarded-For`), which abuse limits and the
   * audit log use. Default `false`: the socket's address.
   */
  trustProxy?: boolean | number | string
  /** The operator dashboard at `/dashboard` (docs/dashboard.md) and its usage routes. `false` leaves them out. Default: on. */
  dashboard?: false | DashboardOptions
  /** Leak-report routes for secret scanning programs (docs/leak-response.md). Default: from `KEYROT_*_KEYS_URL` (see `leakRoutesFromEnv`). `false` leaves them out. */
  leakReports?: false | LeakRoutesOptions
}

const DEFAULT_BODY_LIMIT = '16kb'

function serviceRoutes(options: { registry: Registry; metricsRoute: boolean; health: () => Promise<unknown>; healthTimeoutMs: number; document: () => unknown }): RouteSpec[] {
  return [
    defineRoute({
      method: 'get',
      path: '/healthz',
      operationId: 'health',
      summary: 'Whether the key store (Redis) answers.',
      auth: 'none',
      query: emptyObject,
      responses: { 200: { description: 'The store answers.', schema: healthResponse }, 503: { description: 'The store does not answer.', schema: healthResponse } },
      async handler({ res }) {
        let timer: NodeJS.Timeout | undefined
        try {
          await Promise.race([
            options.health(),
            new Promise((_, reject) => {
              timer = setTimeout(() => reject(new Error('health check timed out')), options.healthTimeoutMs)
            }),
          ])
          res.setHeader('cache-control', 'no-store')
          return { status: 200, body: { status: 'ok' } }
        } catch {
          res.setHeader('cache-control', 'no-store')
          return { status: 503, body: { status: 'unavailable' } }
        } finally {
          clearTimeout(timer)
        }
      },
    }),
    ...(options.metricsRoute ? [metricsRoute(options.registry)] : []),
    defineRoute({
      method: 'get',
      path: '/openapi.json',
      operationId: 'openapi',
      summary: 'This document.',
      auth: 'none',
      query: emptyObject,
      responses: { 200: { description: 'OpenAPI 3.1 document.', contentType: 'application/json' } },
      handler: () => ({ status: 200, body: options.document() }),
    }),
    defineRoute({
      method: 'get',
      path: '/v1/whoami',
      operationId: 'whoami',
      summary: 'A sample protected route: any valid key may call it; answers with the key it was called with.',
      auth: 'key',
      query: emptyObject,
      responses: {
        200: { description: 'The calling key.', schema: whoamiResponse },
        401: { description: 'No key, or a key that is not valid.', schema: errorSchema },
      },
      handler({ req }) {
        const key = req.apiKey!
        return { status: 200, body: { keyId: key.id, tenantId: key.tenantId, name: key.name, scopes: key.scopes, state: key.state } }
      },
    }),
  ]
}

/** body-parser's errors (too large, bad JSON, bad charset) as keyrot errors. */
function bodyParserError(error: { type?: unknown; status?: unknown; message?: unknown }, limit: number | string): Error | undefined {
  switch (error.type) {
    case 'entity.too.large':
      return new BodyError('KEYROT_PAYLOAD_TOO_LARGE', `The request body is larger than the ${String(limit)} this API accepts.`)
    case 'entity.parse.failed':
      return new InvalidInputError('body', 'is not valid JSON (the top level must be an object)')
    case 'encoding.unsupported':
    case 'charset.unsupported':
    case 'request.size.invalid':
    case 'request.aborted':
    case 'entity.verify.failed':
      return new InvalidInputError('body', String(error.message))
    default:
      return typeof error.status === 'number' && error.status >= 400 && error.status < 500
        ? new InvalidInputError('body', 'could not be read')
        : undefined
  }
}

/**
 * The JSON body parser, with every failure to read or decode the body (a
 * corrupt gzip stream, a bad charset, a client that stops sending) answered
 * as the client's fault: 400 or 413 with a code. Only errors raised after
 * the body was read can still be the server's.
 */
function jsonBody(limit: number | string): RequestHandler {
  const json = express.json({ limit, strict: true })
  return function keyrotJsonBody(req: Request, res: Response, next: NextFunction) {
    json(req, res, (error?: unknown) => {
      if (error === undefined || error === null) return next()
      const described = typeof error === 'object' ? (error as { type?: unknown; status?: unknown; message?: unknown }) : {}
      next(bodyParserError(described, limit) ?? new InvalidInputError('body', 'could not be decoded (check Content-Encoding and the data sent)'))
    })
  }
}

function routeHandler(route: RouteSpec, keyring: Keyring, logger: Logger): RequestHandler {
  return async function keyrotRoute(req: Request, res: Response, next: NextFunction) {
    try {
      for (const [name, value] of Object.entries(req.query)) {
        if (typeof value !== 'string') throw new InvalidInputError(name, 'must be given once, as a plain value')
      }
      const params = route.params ? parseInput(route.params, req.params, 'path') : {}
      const query = route.query ? parseInput(route.query, req.query, 'query') : {}
      let body: unknown = {}
      if (route.body) {
        // An empty POST (Content-Length: 0) has no body to type; any other body must be JSON.
        const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0'
        if (hasBody && req.is('application/json') === false) throw new InvalidInputError('body', 'must be sent as Content-Type: application/json')
        body = parseInput(route.body, req.body === undefined && route.bodyOptional ? {} : req.body, 'body')
      }
      const context = { keyring, params, query, body, req, res }
      // Admin actions are recorded in the history with the admin key that made them.
      if (route.auth === 'admin') res.setHeader('cache-control', 'no-store')
      const reply = await (route.auth === 'admin' && req.apiKey ? runAsActor(`api-key:${req.apiKey.id}`, () => route.handler(context)) : route.handler(context))
      if (route.auth === 'admin') {
        logger.info({ event: 'admin.request', operation: route.operationId, adminKeyId: req.apiKey?.id, keyId: (params as { id?: string }).id, status: reply?.status ?? res.statusCode }, 'keyrot admin request')
      }
      if (reply) res.status(reply.status).json(reply.body)
    } catch (error) {
      next(error)
    }
  }
}

/**
 * The reference server as an Express app, without listening: health, metrics,
 * OpenAPI document, a sample protected route and the admin API. Mount more
 * routes with `extend`; listen with `listen()` (graceful shutdown included).
 *
 * @example
 * const app = createServer({ keyring })
 * const running = await listen(app, { port: 3000, onClose: () => keyring.close() })
 */
export function createServer(options: ServerOptions): Express {
  if (!options || typeof options !== 'object' || !options.keyring || typeof options.keyring.verify !== 'function') {
    throw new TypeError('createServer needs { keyring }: a keyring from createKeyring()')
  }
  const { keyring } = options
  const logger = options.logger ?? silentLogger
  const bodyLimit = options.bodyLimit ?? DEFAULT_BODY_LIMIT
  const adminScope = options.adminScope ?? 'admin'
  const healthTimeoutMs = options.healthTimeoutMs ?? 2_000
  if (!Number.isFinite(healthTimeoutMs) || healthTimeoutMs <= 0) throw new TypeError('healthTimeoutMs must be a positive number of milliseconds')
  let registry = options.registry
  if (!registry) {
    registry = new Registry()
    collectDefaultMetrics({ register: registry })
  }
  createMetrics({ ...options.metrics, keyring, registry })

  const dashboard = options.dashboard === false ? null : createDashboard(keyring, options.dashboard)
  let document: unknown
  const routes = [
    ...serviceRoutes({
      registry,
      metricsRoute: options.metricsRoute ?? false,
      health: options.health ?? (() => keyring.get('0000000000000000')),
      healthTimeoutMs,
      document: () => document,
    }),
    // Before adminRoutes: `/v1/keys/due` must not be read as `/v1/keys/:id`.
    ...policyRoutes(),
    ...adminRoutes,
    ...rotationRoutes(),
    ...creditsRoutes(),
    ...(dashboard?.routes ?? []),
    // Signed by the provider over the raw body (no API key, no JSON parser).
    ...(options.leakReports === false ? [] : leakRoutes(keyring, options.leakReports ?? leakRoutesFromEnv(process.env), logger)),
  ]
  document = buildOpenApiDocument(routes, options.openapi)

  const app = express()
  app.disable('x-powered-by')
  app.set('query parser', 'simple')
  app.set('trust proxy', options.trustProxy ?? false)
  const adminAuth = apiKeyAuth({ keyring, scopes: [adminScope], realm: 'keyrot-admin' })
  const adminAccess = recordAdminAccess(adminScope)
  const keyAuth = apiKeyAuth({ keyring, realm: 'api' })
  const json = jsonBody(bodyLimit)

  for (const route of routes) {
    const chain: RequestHandler[] = []
    if (route.auth === 'admin') chain.push(adminAuth, adminAccess)
    if (route.auth === 'key') chain.push(keyAuth)
    if (route.body) chain.push(json)
    chain.push(routeHandler(route, keyring, logger))
    app[route.method](route.path, ...chain)
  }
  options.extend?.(app)

  app.use((req: Request, res: Response) => {
    res.status(404).json({ error: { code: 'KEYROT_ROUTE_NOT_FOUND', message: `No route ${req.method} ${req.path}.` } })
  })
  const onError: ErrorRequestHandler = (error, req, res, next) => {
    if (res.headersSent) return next(error)
    const mapped = error && typeof error === 'object' && 'type' in error ? bodyParserError(error, bodyLimit) : undefined
    const response = adminErrorResponse(mapped ?? error)
    if (response.status >= 500) {
      logger.error({ event: 'http.error', method: req.method, path: req.path, err: { name: (error as Error)?.name, message: (error as Error)?.message } }, 'keyrot request failed')
    }
    res.status(response.status).set(response.headers).json(response.body)
  }
  app.use(onError)
  return app
}
