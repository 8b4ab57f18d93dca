import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { register as globalRegistry, type Registry } from 'prom-client'

/**
 * An Express handler (Express 4 and 5) that answers with a Prometheus
 * registry's exposition and its content type: mount it at `/metrics`. A
 * collector that fails goes to `next(error)`.
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
export function metricsHandler(registry: Registry = globalRegistry): RequestHandler {
  if (!registry || typeof registry.metrics !== 'function') throw new TypeError('metricsHandler needs a prom-client Registry')
  return function keyrotMetrics(_req: Request, res: Response, next: NextFunction): void {
    registry.metrics().then(
      (exposition) => {
        res.setHeader('Content-Type', registry.contentType)
        res.setHeader('Cache-Control', 'no-store')
        res.end(exposition)
      },
      (error: unknown) => next(error),
    )
  }
}
