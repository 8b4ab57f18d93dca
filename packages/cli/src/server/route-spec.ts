import type { Keyring } from '@keyrot/core'
import type { Request, Response } from 'express'
import type { z } from 'zod'

/** What a route handler receives: validated input and the keyring. */
export interface RouteContext<P = unknown, Q = unknown, B = unknown> {
  keyring: Keyring
  params: P
  query: Q
  body: B
  req: Request
  res: Response
}

/** A JSON answer; a handler that wrote the response itself returns nothing. */
export interface Reply {
  status: number
  body: unknown
}

/**
 * One HTTP route, described once: the server registers it and the OpenAPI
 * document is built from the same list, so the two cannot drift apart.
 */
export interface RouteSpec {
  method: 'get' | 'post'
  /** Express path, e.g. `/v1/keys/:id`. */
  path: string
  operationId: string
  summary: string
  /** `admin`: a key with the admin scope; `key`: any valid key; `none`: public. */
  auth: 'none' | 'key' | 'admin'
  params?: z.ZodType
  query?: z.ZodType
  body?: z.ZodType
  /** The body may be left out (every field is optional). */
  bodyOptional?: boolean
  /** Documented responses by status; `schema` describes a JSON body, `contentType` another one. */
  responses: Record<number, { description: string; schema?: z.ZodType; contentType?: string }>
  handler(context: RouteContext<any, any, any>): Promise<Reply | void> | Reply | void
}

/** Keeps handler input types tied to the schemas while the list stays one type. */
export function defineRoute<P extends z.ZodType = z.ZodType, Q extends z.ZodType = z.ZodType, B extends z.ZodType = z.ZodType>(
  spec: Omit<RouteSpec, 'handler' | 'params' | 'query' | 'body'> & {
    params?: P
    query?: Q
    body?: B
    handler(context: RouteContext<z.output<P>, z.output<Q>, z.output<B>>): Promise<Reply | void> | Reply | void
  },
): RouteSpec {
  return spec as RouteSpec
}
