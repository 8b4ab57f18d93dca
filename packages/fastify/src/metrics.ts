import type { FastifyReply, FastifyRequest } from 'fastify'
import { register as globalRegistry, type Registry } from 'prom-client'

/**
 * A Fastify route handler (Fastify 4 and 5) that answers with a Prometheus
 * registry's exposition and its content type: route it at `/metrics`. A
 * collector that fails reaches Fastify's error handler.
 *
 * Default registry: prom-client's global `register`, the one `createMetrics`
 * uses by default. With two copies of prom-client installed, pass the
 * registry explicitly.
 *
 * @example
 * const registry = new Registry()
 * createMetrics({ keyring, registry })
 * fastify.get('/metrics', { config: { keyrot: false } }, metricsHandler(registry))
 */
export function metricsHandler(registry: Registry = globalRegistry): (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply> {
  if (!registry || typeof registry.metrics !== 'function') throw new TypeError('metricsHandler needs a prom-client Registry')
  return async function keyrotMetrics(_request, reply) {
    const exposition = await registry.metrics()
    return reply.header('content-type', registry.contentType).header('cache-control', 'no-store').send(exposition)
  }
}
