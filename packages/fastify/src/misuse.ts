import { middlewareMisuseResponse, reportMiddlewareMisuse } from '@keyrot/core'
import type { FastifyReply, FastifyRequest } from 'fastify'

/** A Fastify request where options were expected: the factory itself was put in a route's hooks. */
export function isMisuse(value: unknown): value is FastifyRequest {
  return typeof value === 'object' && value !== null && 'raw' in value && 'headers' in value && 'id' in value
}

/** Answers 500 KEYROT_MIDDLEWARE_MISUSE (JSON, never a stack trace) and logs it once. */
export function misused(name: string, fix: string) {
  return async function keyrotMisused(_request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    reportMiddlewareMisuse(name, fix)
    const { status, headers, body } = middlewareMisuseResponse(name, fix)
    return reply.code(status).headers(headers).header('content-type', 'application/json; charset=utf-8').send(body)
  }
}
