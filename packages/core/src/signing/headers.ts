import { InvalidRequestError } from '../errors.js'

/**
 * Request headers as servers and clients hold them: Node's
 * `IncomingHttpHeaders` (lowercase names, a string or several), a plain
 * record in any case, or a fetch `Headers`.
 */
export type HeaderSource = Record<string, string | string[] | number | undefined> | { get(name: string): string | null }

/** Longest header value looked at; anything longer is refused unread. */
const MAX_HEADER_LENGTH = 1_024
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/

function rawHeader(headers: HeaderSource, name: string): string | string[] | number | undefined {
  if (typeof (headers as { get?: unknown }).get === 'function' && !(name in headers)) {
    return (headers as { get(name: string): string | null }).get(name) ?? undefined
  }
  const record = headers as Record<string, string | string[] | number | undefined>
  if (name in record) return record[name]
  for (const key of Object.keys(record)) if (key.toLowerCase() === name) return record[key]
  return undefined
}

/**
 * One header's value: `undefined` when absent or empty, an
 * `InvalidRequestError` when sent twice, too long or not printable ASCII.
 */
export function singleHeader(headers: HeaderSource, name: string): string | undefined | InvalidRequestError {
  let value = rawHeader(headers, name)
  if (Array.isArray(value)) {
    if (value.length > 1) return new InvalidRequestError(`Send one ${name} header, not ${value.length}.`)
    value = value[0]
  }
  if (value === undefined) return undefined
  if (typeof value === 'number') value = String(value)
  if (typeof value !== 'string') return new InvalidRequestError(`The ${name} header is not text.`)
  if (value.length > MAX_HEADER_LENGTH) return new InvalidRequestError(`The ${name} header is too long.`)
  if (!PRINTABLE_ASCII.test(value)) return new InvalidRequestError(`The ${name} header must be printable ASCII.`)
  const trimmed = value.trim()
  return trimmed === '' ? undefined : trimmed
}
