import { DEFAULT_PREFIX, generateToken, newKeyId, parseToken } from '../../packages/core/src/token/format.js'

/**
 * Shared by the `serve-*` security suites: one HTTP call that keeps status,
 * headers and the parsed body, and tokens for wrong-secret attempts.
 */

export interface Answer {
  status: number
  headers: Headers
  body: any
  text: string
}

export async function call(
  base: string,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; headers?: Record<string, string>; raw?: Uint8Array | string } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...options.headers }
  if (options.token) headers['authorization'] = `Bearer ${options.token}`
  let body: string | Uint8Array | undefined
  if (options.raw !== undefined) body = options.raw
  else if (options.body !== undefined) {
    headers['content-type'] ??= 'application/json'
    body = JSON.stringify(options.body)
  }
  const response = await fetch(`${base}${path}`, { method, headers, ...(body === undefined ? {} : { body: body as string }) })
  const text = await response.text()
  let parsed: unknown = text
  try {
    parsed = JSON.parse(text)
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, headers: response.headers, body: parsed, text }
}

/** A well-formed token (valid checksum) for the key id of `token` with another, wrong secret: each try costs an Argon2 run unless limited. */
export function wrongSecretFor(token: string): string {
  const parsed = parseToken(token)
  return generateToken(parsed.prefix, parsed.keyId)
}

/** A well-formed token whose key id exists nowhere. */
export function unknownIdToken(): string {
  return generateToken(DEFAULT_PREFIX, newKeyId())
}

/** Counts of statuses, e.g. `{ 401: 5, 429: 55 }`. */
export function tally(statuses: readonly number[]): Record<number, number> {
  const counts: Record<number, number> = {}
  for (const status of statuses) counts[status] = (counts[status] ?? 0) + 1
  return counts
}

/** Random 32-byte base64 master key for `KEYROT_MASTER_KEYS`. */
export function masterKeysValue(id = 'mk1'): string {
  const bytes = new Uint8Array(32)
  crypto.getRandomValues(bytes)
  return `${id}:${Buffer.from(bytes).toString('base64')}`
}
