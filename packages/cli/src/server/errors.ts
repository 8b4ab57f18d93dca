import { asKeyrotError, errorResponse, InvalidInputError, KeyrotError, type ErrorCode } from '@keyrot/core'
import type { z } from 'zod'

export type InputLocation = 'body' | 'query' | 'path'

/** The first problem zod found, as a KEYROT_INVALID_INPUT naming the field. */
export function invalidInputFrom(error: z.ZodError, where: InputLocation): InvalidInputError {
  const issue = error.issues[0]
  if (!issue) return new InvalidInputError(where, 'is not valid')
  const path = issue.path.map(String)
  // zod's messages start with 'Invalid input: '; ours already say 'Invalid <field>:'.
  let reason = issue.message.replace(/^Invalid input: /, '')
  if (issue.code === 'unrecognized_keys') {
    path.push(String(issue.keys[0]))
    reason = where === 'query' ? 'is not a known query parameter' : 'is not a known field'
  } else if (where === 'body' && path.length === 0 && issue.code === 'invalid_type') {
    reason = 'must be a JSON object (Content-Type: application/json)'
  } else if (issue.code === 'invalid_type' && / received undefined$/.test(issue.message)) {
    reason = 'is required'
  }
  return new InvalidInputError(path.length === 0 ? where : path.join('.'), reason)
}

/** Parses `value` with `schema` or throws KEYROT_INVALID_INPUT. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, where: InputLocation): z.output<S> {
  const result = schema.safeParse(value)
  if (result.success) return result.data
  throw invalidInputFrom(result.error, where)
}

/** A request body that could not be read: body-parser's errors as keyrot errors. */
export class BodyError extends KeyrotError {
  constructor(code: ErrorCode, message: string) {
    super(code, message)
  }
}

export interface AdminErrorResponse {
  status: number
  headers: Record<string, string>
  body: { error: { code: string; message: string; field?: string } }
}

/**
 * The admin API's answer to an error. Admin callers are authenticated, so
 * unlike the verification path they get precise reasons: the field at fault,
 * 404 for an unknown key (not the 401 a client sees), 409 when the key's
 * state forbids the change (already rotated, revoked, expired).
 * Authentication failures keep the shared RFC 6750 responses.
 */
export function adminErrorResponse(thrown: unknown): AdminErrorResponse {
  const error = asKeyrotError(thrown)
  const headers: Record<string, string> = { 'cache-control': 'no-store' }
  const body = (status: number, field?: string): AdminErrorResponse => ({
    status,
    headers,
    body: { error: { code: error.code, message: error.message, ...(field === undefined ? {} : { field }) } },
  })
  switch (error.code) {
    case 'KEYROT_INVALID_INPUT':
      return body(400, error instanceof InvalidInputError ? error.field : undefined)
    case 'KEYROT_KEY_NOT_FOUND':
      return body(404)
    case 'KEYROT_ALREADY_ROTATED':
    case 'KEYROT_KEY_REVOKED':
    case 'KEYROT_KEY_EXPIRED':
      return body(409)
    case 'KEYROT_PAYLOAD_TOO_LARGE':
      return body(413)
    case 'KEYROT_ADMIN_TENANT_FORBIDDEN':
      return body(403)
    case 'KEYROT_SIGNING_NOT_CONFIGURED':
      return body(501)
    default: {
      const shared = errorResponse(error)
      return { status: shared.status, headers: { ...shared.headers }, body: shared.body }
    }
  }
}
