import { Readable } from 'node:stream'
import { signedRequestAdapter, readRawBody, type ApiKey, type SignedRequestVerifierOptions } from '@keyrot/core'
import type { FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'

/** Options of the `signedRequest` plugin: the verifier's (keyring, replay store, tolerance, realm) plus the body limit and client IP. */
export interface SignedRequestOptions extends SignedRequestVerifierOptions {
  /** Largest body read and verified, in bytes. Default 1 MiB (1,048,576). Larger bodies get 413. Must be a positive integer. */
  limit?: number
  /** The client's IP for events and logs. Default: `request.ip` (honours `trustProxy`). */
  clientIp?: (request: FastifyRequest) => string | undefined
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by `@keyrot/fastify`'s `signedRequest`: the signing secret's key (never the secret) and the exact body bytes that were verified. */
    signedRequest: { key: ApiKey; rawBody: Buffer } | null
  }
  interface FastifyContextConfig {
    /** `true` makes `signedRequest` verify this route's requests. */
    keyrotSigned?: boolean
  }
}

const JSON_TYPE = 'application/json; charset=utf-8'

const plugin: FastifyPluginCallback<SignedRequestOptions> = function keyrotSignedRequest(fastify, options, done) {
  const { verifier, limit } = signedRequestAdapter(options, '(request)')
  const clientIp = options.clientIp ?? ((request: FastifyRequest) => request.ip || undefined)

  fastify.decorateRequest('signedRequest', null)
  // preParsing sees the body stream before Fastify parses it: the bytes are
  // verified, then handed on, so the route's body parser still runs.
  fastify.addHook('preParsing', async (request: FastifyRequest, reply: FastifyReply, payload) => {
    if ((request.routeOptions?.config as { keyrotSigned?: boolean } | undefined)?.keyrotSigned !== true) return payload
    let bytes: Buffer | undefined
    const outcome = await verifier.verify({
      method: request.method,
      pathWithQuery: request.raw.url ?? request.url,
      headers: request.raw.headers,
      // Read only once the headers, timestamp and key passed; a declared length over it is refused first, alike for every key id.
      maxBodyBytes: limit,
      rawBody: async () => (bytes = await readRawBody(Object.assign(payload, { headers: request.raw.headers }), limit)),
      clientIp: clientIp(request),
      userAgent: request.headers['user-agent'],
    })
    reply.headers(outcome.headers)
    if (!outcome.ok) {
      await reply.code(outcome.status).header('content-type', JSON_TYPE).send(outcome.body)
      return Readable.from([])
    }
    const rawBody = bytes ?? (Buffer.isBuffer(outcome.rawBody) ? outcome.rawBody : Buffer.from(outcome.rawBody))
    request.signedRequest = { key: outcome.key, rawBody }
    return Readable.from(rawBody.length > 0 ? [rawBody] : [])
  })
  done()
}

/**
 * A Fastify plugin (Fastify 4 and 5) that verifies HMAC-signed requests on
 * the routes with `config: { keyrotSigned: true }`, exactly as the Express
 * and Koa adapters do; the decisions are `createSignedRequestVerifier()`'s in
 * `@keyrot/core`. See `docs/signing.md` for the headers.
 *
 * On success `request.signedRequest` holds the key and the verified body
 * bytes, and Fastify parses the body as usual. Refusals answer at once with
 * 401, 400, 413 or 503 and a JSON body `{ error: { code, message } }`.
 *
 * @example
 * await fastify.register(signedRequest, { keyring, replayStore })
 * fastify.post('/v1/payments', { config: { keyrotSigned: true } }, (request) => ({
 *   tenant: request.signedRequest!.key.tenantId,
 * }))
 */
export const signedRequest = fp(plugin, { name: '@keyrot/fastify/signed-request', fastify: '4.x || 5.x' })
