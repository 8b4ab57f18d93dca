import type { Registry } from 'prom-client'
import express, { type Express, type Request, type Response } from 'express'
import { defineRoute, type RouteSpec } from './route-spec.js'

/** `GET /metrics`: the registry in the Prometheus text format. */
export function metricsRoute(registry: Registry): RouteSpec {
  return defineRoute({
    method: 'get',
    path: '/metrics',
    operationId: 'metrics',
    summary: 'Prometheus metrics (text exposition format).',
    auth: 'none',
    responses: { 200: { description: 'Metrics.', contentType: 'text/plain' } },
    async handler({ res }) {
      const text = await registry.metrics()
      res.status(200).type(registry.contentType).send(text)
    },
  })
}

/**
 * An app that serves only `GET /metrics`, for a listener apart from the API
 * (`keyrot serve --metrics-listen 127.0.0.1:9464`): metrics tell whoever
 * reads them which key ids exist and what admins did, so they belong where
 * only Prometheus reaches.
 *
 * @example
 * const registry = new Registry()
 * const app = createServer({ keyring, registry })
 * await listen(createMetricsApp(registry), { host: '127.0.0.1', port: 9464 })
 */
export function createMetricsApp(registry: Registry): Express {
  const app = express()
  app.disable('x-powered-by')
  app.get('/metrics', async (_req: Request, res: Response) => {
    try {
      const text = await registry.metrics()
      res.status(200).type(registry.contentType).set('cache-control', 'no-store').send(text)
    } catch {
      res.status(500).type('text/plain').send('metrics could not be collected\n')
    }
  })
  app.use((_req: Request, res: Response) => {
    res.status(404).type('text/plain').send('only /metrics here\n')
  })
  return app
}

/**
 * `--metrics-listen`: `host:port` (`[::1]:9464` for IPv6), or `off` for no
 * metrics listener. Returns `null` for `off`, or throws a `TypeError`.
 */
export function parseListenAddress(value: string): { host: string; port: number } | null {
  if (value === 'off') return null
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(value)
  const port = Number(match?.[3])
  if (!match || !Number.isInteger(port) || port > 65_535) throw new TypeError(`expected host:port such as 127.0.0.1:9464, or off (got ${JSON.stringify(value)})`)
  return { host: (match[1] ?? match[2]) as string, port }
}
