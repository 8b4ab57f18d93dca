import type { IncomingMessage } from 'node:http'
import type { CredentialHeaders } from '@keyrot/core'
import type { Context } from 'hono'

/**
 * The Node request under `@hono/node-server` (`c.env.incoming`), when there
 * is one. Its headers keep repeated fields apart (two `Authorization`
 * headers stay two, so they are refused as the other adapters refuse them),
 * where the Fetch `Headers` would join them with a comma.
 */
export function incomingOf(c: Context): IncomingMessage | undefined {
  const env = c.env as { incoming?: IncomingMessage; server?: { incoming?: IncomingMessage } } | undefined
  return env?.incoming ?? env?.server?.incoming
}

/** The credential headers of a request without a Node request under it (Bun, Deno, workers): the Fetch `Headers` join repeated fields. */
export function fetchCredentialHeaders(c: Context): CredentialHeaders {
  const headers = c.req.raw.headers
  return { authorization: headers.get('authorization') ?? undefined, apiKey: headers.get('x-api-key') ?? undefined }
}

/** Headers as a plain record, for the signed-request verifier. */
export function headerRecord(c: Context, incoming: IncomingMessage | undefined): Record<string, string | string[] | undefined> {
  return incoming ? incoming.headers : Object.fromEntries(c.req.raw.headers)
}

export const JSON_TYPE = 'application/json; charset=utf-8'
