import type { Context } from 'hono'
import { register as globalRegistry, type Registry } from 'prom-client'

/**
 * A Hono handler that answers with a Prometheus registry's exposition and its
 * content type: route it at `/metrics`. A collector that fails reaches
 * `app.onError`.
 *
 * Default registry: prom-client's global `register`, the one `createMetrics`
 * uses by default. With two copies of prom-client installed, pass the
 * registry explicitly.
 *
 * @example
 * const registry = new Registry()
 * createMetrics({ keyring, registry })
 * app.get('/metrics', metricsHandler(registry))
 */
export function metricsHandler(registry: Registry = globalRegistry): (c: Context) => Promise<Response> {
  if (!registry || typeof registry.metrics !== 'function') throw new TypeError('metricsHandler needs a prom-client Registry')
  return async function keyrotMetrics(c) {
    const exposition = await registry.metrics()
    return c.body(exposition, 200, { 'Content-Type': registry.contentType, 'Cache-Control': 'no-store' })
  }
}
