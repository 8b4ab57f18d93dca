import { createSignedRequestVerifier, type SignedRequestVerifier, type SignedRequestVerifierOptions } from './signed-request.js'

/** What every framework's `signedRequest` takes beyond the verifier's options. */
export interface SignedRequestAdapterOptions extends SignedRequestVerifierOptions {
  /** Largest body read and verified, in bytes. Default 1 MiB (1,048,576). Larger bodies get 413. Must be a positive integer. */
  limit?: number
  /** The client's IP for events, logs and the abuse guard; its argument is the framework's request or context. */
  clientIp?: unknown
}

/**
 * The construction every adapter's `signedRequest` shares: the options
 * checked (a `TypeError` naming the option), the body limit resolved and the
 * verifier built. One place, so Express, Koa, Fastify and Hono cannot drift
 * apart (a forgotten `bodyTimeout` once did). `argument` names the
 * framework's `clientIp` parameter in the error, e.g. `'(req)'`.
 */
export function signedRequestAdapter(options: SignedRequestAdapterOptions, argument: string): { verifier: SignedRequestVerifier; limit: number } {
  if (!options || typeof options !== 'object') throw new TypeError('signedRequest needs { keyring }: a keyring from createKeyring()')
  const limit = options.limit ?? 1_048_576
  if (!Number.isInteger(limit) || limit < 1) throw new TypeError(`limit must be a positive integer (bytes); got ${String(limit)}`)
  if (options.clientIp !== undefined && typeof options.clientIp !== 'function') {
    throw new TypeError(`signedRequest clientIp must be a function ${argument} => string | undefined`)
  }
  const verifier = createSignedRequestVerifier({
    keyring: options.keyring,
    realm: options.realm ?? 'api',
    ...(options.replayStore ? { replayStore: options.replayStore } : {}),
    ...(options.tolerance !== undefined ? { tolerance: options.tolerance } : {}),
    ...(options.bodyTimeout !== undefined ? { bodyTimeout: options.bodyTimeout } : {}),
  })
  return { verifier, limit }
}
