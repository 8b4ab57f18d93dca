import type { Context, Middleware, Next } from 'koa'
import { register as globalRegistry, type Registry } from 'prom-client'

/**
 * A Koa middleware (Koa 2 and 3) that answers with a Prometheus registry's
 * exposition and its content type. Route it to `/metrics` with your router,
 * or let it check the path itself with `{ path: '/metrics' }` (other paths
 * go to the next middleware). A collector that fails throws to Koa's error
 * handling.
 *
 * Default registry: prom-client's global `register`, the one `createMetrics`
 * uses by default. With two copies of prom-client installed, pass the
 * registry explicitly.
 *
 * @example
 * const registry = new Registry()
 * createMetrics({ keyring, registry })
 * app.use(metricsHandler(registry, { path: '/metrics' }))
 */
export function metricsHandler(registry: Registry = globalRegistry, options: { path?: string } = {}): Middleware {
  if (!registry || typeof registry.metrics !== 'function') throw new TypeError('metricsHandler needs a prom-client Registry')
  const path = options.path
  if (path !== undefined && (typeof path !== 'string' || !path.startsWith('/'))) throw new TypeError(`path must start with '/'; got ${JSON.stringify(path)}`)
  return async function keyrotMetrics(ctx: Context, next: Next): Promise<void> {
    if (path !== undefined && (ctx.path !== path || (ctx.method !== 'GET' && ctx.method !== 'HEAD'))) {
      await next()
      return
    }
    const exposition = await registry.metrics()
    // The header first: a string body would otherwise set text/plain without the exposition version.
    ctx.set('Content-Type', registry.contentType)
    ctx.set('Cache-Control', 'no-store')
    ctx.body = exposition
  }
}
