import { InvalidRequestError, MissingKeyError, type KeyrotError } from '../errors.js'
import { MAX_TOKEN_LENGTH } from '../token/format.js'

/** Request headers as Node gives them: a string, several strings, or nothing. */
export type HeaderValue = string | string[] | undefined

export interface CredentialHeaders {
  authorization?: HeaderValue
  /** `X-API-Key` */
  apiKey?: HeaderValue
}

/** The parts of a Node `IncomingMessage` that carry credentials. */
export interface NodeRequestHeaders {
  headers: Record<string, HeaderValue>
  headersDistinct?: Record<string, string[] | undefined>
  rawHeaders?: string[]
}

/**
 * The credential headers of a Node request, for adapters. Reads every copy of
 * each header: Node's `headers` keeps only the first `Authorization`, so a
 * second one would go unseen instead of being refused. See
 * {@link requestHeadersOf}.
 */
export function credentialHeadersOf(request: NodeRequestHeaders): CredentialHeaders {
  const { authorization, apiKey } = requestHeadersOf(request)
  return { authorization, apiKey }
}

/**
 * The credential headers and the `User-Agent` of a Node request. The values
 * are read from `headers` (what middleware before us may have set or
 * removed); `rawHeaders` (as received) only tells how many copies of each
 * credential header came. When one came more than once, `headersDistinct`
 * (an array for every header) gives every copy, so the request is refused
 * rather than judged by its first copy.
 */
export function requestHeadersOf(request: NodeRequestHeaders): CredentialHeaders & { userAgent: string | undefined } {
  const headers = request.headers
  const agent = headers['user-agent']
  const userAgent = typeof agent === 'string' ? agent : undefined
  const raw = request.rawHeaders
  if (raw !== undefined) {
    let authorizations = 0
    let apiKeys = 0
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i] as string
      if (name.length === 13 && (name === 'authorization' || name === 'Authorization' || name.toLowerCase() === 'authorization')) authorizations++
      else if (name.length === 9 && (name === 'x-api-key' || name === 'X-API-Key' || name.toLowerCase() === 'x-api-key')) apiKeys++
    }
    if (authorizations <= 1 && apiKeys <= 1) return { authorization: headers['authorization'], apiKey: headers['x-api-key'], userAgent }
  }
  const distinct = request.headersDistinct
  if (distinct) return { authorization: distinct['authorization'], apiKey: distinct['x-api-key'], userAgent }
  // HTTP/2's compatibility request has rawHeaders but no headersDistinct, and its headers keep only the first copy.
  if (raw !== undefined) return { authorization: copiesOf(raw, 'authorization'), apiKey: copiesOf(raw, 'x-api-key'), userAgent }
  return { authorization: headers['authorization'], apiKey: headers['x-api-key'], userAgent }
}

/** Every value of the header `name` (lower case) in Node's `rawHeaders` list. */
function copiesOf(raw: string[], name: string): string[] | undefined {
  const copies: string[] = []
  for (let i = 0; i < raw.length; i += 2) if ((raw[i] as string).toLowerCase() === name) copies.push(raw[i + 1] as string)
  return copies.length === 0 ? undefined : copies
}

export type CredentialResult = { ok: true; token: string; source: 'authorization' | 'x-api-key' } | { ok: false; error: KeyrotError }

/** Longest header value looked at; anything longer is refused unread. */
const MAX_HEADER_LENGTH = 4 * MAX_TOKEN_LENGTH
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/

/** `Bearer <token68>` exactly: one space, no padding around it. One compiled scan (twice as fast as a loop over a class table). */
const PLAIN_BEARER = new RegExp(`^Bearer ${TOKEN68.source.slice(1)}`)

/**
 * The token of `Bearer <token68>` exactly as written (one space, no padding
 * around it), or `undefined` for anything else. What the full path accepts
 * of such a header, in one regular expression instead of its three and its
 * trims: the usual request's whole credential check.
 */
function plainBearer(value: string): string | undefined {
  if (value.length > MAX_HEADER_LENGTH || !PLAIN_BEARER.test(value)) return undefined
  return value.slice(7)
}

function single(value: HeaderValue, name: string): string | undefined | KeyrotError {
  if (value === undefined) return undefined
  if (Array.isArray(value)) {
    if (value.length === 0) return undefined
    if (value.length > 1) return new InvalidRequestError(`Send one ${name} header, not ${value.length}.`)
    value = value[0] as string
  }
  if (typeof value !== 'string') return new InvalidRequestError(`The ${name} header is not text.`)
  if (value.length > MAX_HEADER_LENGTH) return new InvalidRequestError(`The ${name} header is too long.`)
  if (!PRINTABLE_ASCII.test(value)) return new InvalidRequestError(`The ${name} header must be printable ASCII.`)
  return value
}

/**
 * Finds the one API key in a request: `Authorization: Bearer <token>` or
 * `X-API-Key: <token>`. Returns `KEYROT_MISSING_KEY` when neither is sent and
 * `KEYROT_INVALID_REQUEST` for a malformed header or two credentials at once.
 * Does not check the token itself (that is `verify`'s job).
 */
export function extractCredential(headers: CredentialHeaders): CredentialResult {
  // The usual request: one `Authorization: Bearer <token68>` and no X-API-Key. Checked in one scan;
  // anything else (spaces, case, a second header, bad characters) takes the full path below.
  if (headers.apiKey === undefined && typeof headers.authorization === 'string') {
    const token = plainBearer(headers.authorization)
    if (token !== undefined) return { ok: true, token, source: 'authorization' }
  }
  const authorization = single(headers.authorization, 'Authorization')
  if (authorization instanceof Error) return { ok: false, error: authorization }
  const apiKey = single(headers.apiKey, 'X-API-Key')
  if (apiKey instanceof Error) return { ok: false, error: apiKey }

  let bearer: string | undefined
  if (authorization !== undefined && authorization.trim() !== '') {
    const trimmed = authorization.trim()
    const space = trimmed.indexOf(' ')
    const scheme = space === -1 ? trimmed : trimmed.slice(0, space)
    if (scheme.toLowerCase() === 'bearer') {
      const credentials = space === -1 ? '' : trimmed.slice(space + 1).trim()
      if (credentials === '') return { ok: false, error: new InvalidRequestError('The Bearer credentials are empty.') }
      if (/[\s,]/.test(credentials)) {
        return { ok: false, error: new InvalidRequestError('The Authorization header must carry exactly one Bearer token.') }
      }
      if (!TOKEN68.test(credentials)) return { ok: false, error: new InvalidRequestError('The Bearer token has characters a token cannot have.') }
      bearer = credentials
    } else if (apiKey === undefined) {
      return { ok: false, error: new InvalidRequestError('Use the Bearer scheme (Authorization: Bearer <key>) or the X-API-Key header.') }
    } else {
      return { ok: false, error: new InvalidRequestError('Send the API key once: in Authorization: Bearer or in X-API-Key, not both.') }
    }
  } else if (authorization !== undefined && apiKey === undefined) {
    return { ok: false, error: new InvalidRequestError('The Authorization header is empty.') }
  }

  let headerKey: string | undefined
  if (apiKey !== undefined) {
    const trimmed = apiKey.trim()
    if (trimmed === '') return { ok: false, error: new InvalidRequestError('The X-API-Key header is empty.') }
    if (/[\s,]/.test(trimmed)) return { ok: false, error: new InvalidRequestError('The X-API-Key header must carry exactly one key.') }
    headerKey = trimmed
  }

  if (bearer !== undefined && headerKey !== undefined) {
    return { ok: false, error: new InvalidRequestError('Send the API key once: in Authorization: Bearer or in X-API-Key, not both.') }
  }
  if (bearer !== undefined) return { ok: true, token: bearer, source: 'authorization' }
  if (headerKey !== undefined) return { ok: true, token: headerKey, source: 'x-api-key' }
  return { ok: false, error: new MissingKeyError() }
}
