import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { systemClock, type Clock } from '../clock.js'
import { parseDuration, type Duration } from '../duration.js'
import { InvalidRequestError, KeyExpiredError, KeyRevokedError, KeyrotError, StoreUnavailableError } from '../errors.js'
import type { RequestContext } from '../events.js'
import type { ErrorResponse } from '../http/respond.js'
import type { Keyring } from '../lifecycle/keyring.js'
import { errorFields } from '../logger.js'
import { isKeyId } from '../token/format.js'
import { stateOf, toApiKey, type ApiKey, type KeyRecord } from '../types.js'
import { isPromise, type Gate, type Ticket } from '../rate-limit/guard.js'
import { InvalidSignatureError, MissingSignatureError, PayloadTooLargeError, ReplayedRequestError, StaleTimestampError } from './errors.js'
import { singleHeader, type HeaderSource } from './headers.js'
import { MemoryReplayStore, type ReplayStore } from './replay-store.js'
import { signatureErrorResponse } from './respond.js'
import { isSigningSecret, signingKeyBytes } from './secret.js'
import { hmacKeyOf, sealerOf } from './signing-keys.js'

/** Header names of a signed request (lowercase, as Node gives them). */
export const SIGNED_REQUEST_HEADERS = {
  /** Id of the signing secret (`key.id`). */
  keyId: 'keyrot-key-id',
  /** Unix seconds when the request was signed. */
  timestamp: 'keyrot-timestamp',
  /** A request id, unique per request: 16-128 characters of letters, digits, `-` and `_`. */
  nonce: 'keyrot-nonce',
  /** `v1,<base64 HMAC-SHA256 of the canonical string>`. */
  signature: 'keyrot-signature',
} as const

/** First line of the canonical string: names the scheme and its version. */
export const CANONICAL_REQUEST_TAG = 'KEYROT-HMAC-SHA256-V1'

const NONCE_PATTERN = /^[A-Za-z0-9_-]{16,128}$/
const METHOD_PATTERN = /^[A-Za-z]{1,16}$/
const TIMESTAMP_PATTERN = /^\d{1,12}$/
const HMAC_BYTES = 32

export interface CanonicalRequestParts {
  method: string
  /** The request target exactly as sent on the request line: path and query, e.g. `/v1/orders?limit=10`. */
  pathWithQuery: string
  /** Unix seconds. */
  timestamp: number
  nonce: string
  keyId: string
  /** The exact body bytes (empty when there is none). */
  body: string | Uint8Array
}

/**
 * The string a signed request's HMAC covers, seven lines joined by `\n`
 * (no trailing newline):
 *
 * ```
 * KEYROT-HMAC-SHA256-V1
 * <METHOD, uppercase>
 * <path with query, exactly as sent>
 * <timestamp, Unix seconds>
 * <nonce>
 * <key id>
 * <hex SHA-256 of the raw body>
 * ```
 */
export function canonicalRequest(parts: CanonicalRequestParts): string {
  const bodyDigest = createHash('sha256').update(parts.body).digest('hex')
  return [CANONICAL_REQUEST_TAG, parts.method.toUpperCase(), parts.pathWithQuery, String(parts.timestamp), parts.nonce, parts.keyId, bodyDigest].join('\n')
}

function requestHmac(key: Buffer, parts: CanonicalRequestParts): Buffer {
  return createHmac('sha256', key).update(canonicalRequest(parts)).digest()
}

export interface SignRequestInput {
  /** Id of the signing secret (`key.id` from `createSigningSecret`). */
  keyId: string
  /** The signing secret (`whsec_...`). */
  secret: string
  method: string
  /**
   * The request target: a path with query (`/v1/orders?limit=10`), sent as
   * given, or a full URL, whose path and query (as `URL` normalises them, as
   * `fetch` sends them) are signed.
   */
  url: string | URL
  /** The exact body bytes sent. Default: none. */
  body?: string | Uint8Array
  /** When the request is signed: epoch ms or Date. Default: `clock.now()`. */
  timestamp?: number | Date
  /** A unique request id. Default: 128 random bits, base64url. */
  nonce?: string
  /** Time source for the default timestamp. Default: `Date.now`. */
  clock?: Clock
}

export type SignedRequestHeaders = Record<(typeof SIGNED_REQUEST_HEADERS)[keyof typeof SIGNED_REQUEST_HEADERS], string>

/**
 * Signs an outgoing request: returns the four headers to send with it. Sign
 * the exact bytes you send, and send them once: each nonce is accepted once.
 *
 * @example
 * const body = JSON.stringify({ amount: 42 })
 * const headers = signRequest({ keyId, secret, method: 'POST', url: 'https://api.example.test/v1/payments', body })
 * await fetch('https://api.example.test/v1/payments', { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body })
 */
export function signRequest(input: SignRequestInput): SignedRequestHeaders {
  if (input === null || typeof input !== 'object') throw new TypeError('signRequest needs { keyId, secret, method, url }')
  if (!isKeyId(input.keyId)) throw new TypeError('keyId must be the id of a signing secret (16 letters and digits)')
  const key = signingKeyBytes(input.secret, 'secret')
  if (typeof input.method !== 'string' || !METHOD_PATTERN.test(input.method)) throw new TypeError('method must be an HTTP method such as GET or POST')
  let pathWithQuery: string
  if (typeof input.url === 'string' && input.url.startsWith('/')) {
    pathWithQuery = input.url
  } else {
    let url: URL
    try {
      url = new URL(input.url)
    } catch {
      throw new TypeError('url must be a path starting with "/" or an absolute URL')
    }
    pathWithQuery = url.pathname + url.search
  }
  const nonce = input.nonce ?? randomBytes(16).toString('base64url')
  if (!NONCE_PATTERN.test(nonce)) throw new TypeError('nonce must be 16-128 letters, digits, "-" or "_"')
  const at = input.timestamp instanceof Date ? input.timestamp.getTime() : (input.timestamp ?? (input.clock ?? systemClock).now())
  if (!Number.isFinite(at) || at < 0) throw new TypeError('timestamp must be epoch milliseconds or a Date')
  const timestamp = Math.floor(at / 1000)
  const body = input.body ?? ''
  if (typeof body !== 'string' && !(body instanceof Uint8Array)) throw new TypeError('body must be a string or bytes')
  const signature = requestHmac(key, { method: input.method, pathWithQuery, timestamp, nonce, keyId: input.keyId, body })
  return {
    [SIGNED_REQUEST_HEADERS.keyId]: input.keyId,
    [SIGNED_REQUEST_HEADERS.timestamp]: String(timestamp),
    [SIGNED_REQUEST_HEADERS.nonce]: nonce,
    [SIGNED_REQUEST_HEADERS.signature]: `v1,${signature.toString('base64')}`,
  } as SignedRequestHeaders
}

export interface SignedRequestVerifierOptions {
  /** The keyring holding the signing secrets, configured with `signing.masterKeys`. */
  keyring: Keyring
  /**
   * Where seen nonces are kept. Default: a new `MemoryReplayStore` (this
   * process only). Behind a load balancer use `RedisReplayStore` from
   * `@keyrot/redis`, so a replay sent to another replica is refused too.
   */
  replayStore?: ReplayStore
  /**
   * Largest accepted distance between the signed timestamp and now, either
   * way. ms or `'5m'`. Default `'5m'`. Must be at least 1s. A nonce is
   * remembered for twice this long.
   */
  tolerance?: Duration
  /** `realm` of the `WWW-Authenticate` challenge. Default `'api'`. */
  realm?: string
  /**
   * Longest wait for a request's body once its headers passed, before the
   * signature can be checked: the client is not authenticated yet, so it
   * may not hold the connection longer. Past it: 400 and the connection is
   * closed. ms or `'10s'`. Default `'10s'`. Must be greater than 0.
   */
  bodyTimeout?: Duration
}

export interface SignedRequestInput extends RequestContext {
  /** The HTTP method as received. */
  method: string
  /** The request target exactly as received (`req.originalUrl` in Express, `ctx.originalUrl` in Koa, `req.url` in Node). */
  pathWithQuery: string
  headers: HeaderSource
  /**
   * The body bytes exactly as received (empty when there is none), or a
   * function that reads them: it is called only once the headers, the
   * timestamp and the key passed, so a request refused on those is refused
   * without reading its body. A `KeyrotError` it throws (e.g.
   * `PayloadTooLargeError` from `readRawBody`) becomes the outcome; anything
   * else is thrown.
   */
  rawBody: string | Uint8Array | (() => Promise<string | Uint8Array>)
  /**
   * The largest body the caller reads (`limit` of the middleware). A
   * `Content-Length` over it is refused with 413 before the key id is
   * looked at, so the answer is the same for every key id.
   */
  maxBodyBytes?: number
}

export type SignedRequestOutcome =
  | {
      ok: true
      /** The signing secret's key (never the secret). */
      key: ApiKey
      /** Headers to add to the response: `Sunset` while the secret is in its grace period. */
      headers: Record<string, string>
      /** The body bytes that were verified (read by `rawBody()` when it was a function). */
      rawBody: string | Uint8Array
    }
  | ({ ok: false; error: KeyrotError } & ErrorResponse)

/** A reusable signed-request verifier; see {@link createSignedRequestVerifier}. */
export interface SignedRequestVerifier {
  verify(request: SignedRequestInput): Promise<SignedRequestOutcome>
  readonly toleranceMs: number
  readonly replayStore: ReplayStore
}

/**
 * Builds the framework-free check behind the Express and Koa
 * `signedRequest()` middleware. For each request, cheapest first: the four
 * headers (`KEYROT_MISSING_SIGNATURE`, or `KEYROT_INVALID_REQUEST` when
 * malformed), the timestamp within ±tolerance (`KEYROT_STALE_TIMESTAMP`), a
 * declared body over `maxBodyBytes` (413, the same for every key id), the
 * keyring's abuse guard (IP and network failure budgets: 429), the signing
 * secret (one store read and an AES-GCM decryption; an unknown id is refused
 * before the body is read), the body within `bodyTimeout`, the HMAC compared
 * with `crypto.timingSafeEqual` (`KEYROT_INVALID_SIGNATURE`; an unknown key id
 * reads the same), the secret's state (`KEYROT_KEY_REVOKED`,
 * `KEYROT_KEY_EXPIRED`), and last the nonce, which is recorded only for a
 * request that passed everything else (`KEYROT_REPLAYED_REQUEST` if seen).
 *
 * During a rotation's grace period the old secret still verifies and the
 * response carries `Sunset`. The outcome says which status, headers and body
 * to send; `verify` never throws for a bad request.
 */
export function createSignedRequestVerifier(options: SignedRequestVerifierOptions): SignedRequestVerifier {
  if (options === null || typeof options !== 'object' || !options.keyring || typeof options.keyring.verify !== 'function') {
    throw new TypeError('signed requests need { keyring }: a keyring from createKeyring()')
  }
  const { keyring } = options
  const sealer = sealerOf(keyring)
  const toleranceMs = parseDuration(options.tolerance ?? '5m', 'tolerance')
  if (toleranceMs < 1000) throw new TypeError('tolerance must be at least 1s (timestamps have one-second resolution)')
  const replayStore = options.replayStore ?? new MemoryReplayStore({ clock: keyring.clock, logger: keyring.options.logger })
  if (typeof replayStore.remember !== 'function') throw new TypeError('replayStore must implement ReplayStore: remember(key, ttlMs)')
  const realm = options.realm ?? 'api'
  const logger = keyring.options.logger
  const bodyTimeoutMs = parseDuration(options.bodyTimeout ?? '10s', 'bodyTimeout')
  if (bodyTimeoutMs <= 0) throw new TypeError('bodyTimeout must be longer than 0')

  /** The body, or a 400 once `bodyTimeoutMs` has passed without it. */
  function readBody(read: () => Promise<string | Uint8Array>): Promise<string | Uint8Array> {
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new InvalidRequestError(`The request body did not arrive within ${bodyTimeoutMs} ms.`)), bodyTimeoutMs)
      timer.unref?.()
    })
    return Promise.race([read(), deadline]).finally(() => clearTimeout(timer))
  }

  function refuse(error: KeyrotError, request: SignedRequestInput, record: KeyRecord | null, startedAt: number | undefined, now: number): SignedRequestOutcome {
    if (keyring.listens('verification.failed')) {
      keyring.emit('verification.failed', {
        code: error.code,
        keyId: record?.id ?? error.keyId,
        tenantId: record?.tenantId,
        clientIp: request.clientIp,
        userAgent: request.userAgent,
        durationMs: startedAt === undefined ? undefined : performance.now() - startedAt,
        at: now,
      })
    }
    return { ok: false, error, ...signatureErrorResponse(error, realm) }
  }

  async function verify(request: SignedRequestInput): Promise<SignedRequestOutcome> {
    const watched = keyring.listens('verification.failed') || keyring.listens('verification.succeeded')
    const startedAt = watched ? performance.now() : undefined
    const now = keyring.clock.now()
    const fail = (error: KeyrotError, record: KeyRecord | null = null) => refuse(error, request, record, startedAt, now)
    if (request === null || typeof request !== 'object' || request.headers === null || typeof request.headers !== 'object') {
      return fail(new InvalidRequestError('A signed request needs { method, pathWithQuery, headers, rawBody }.'))
    }

    const values: Record<keyof typeof SIGNED_REQUEST_HEADERS, string | undefined> = { keyId: undefined, timestamp: undefined, nonce: undefined, signature: undefined }
    const missing: string[] = []
    for (const field of Object.keys(SIGNED_REQUEST_HEADERS) as (keyof typeof SIGNED_REQUEST_HEADERS)[]) {
      const value = singleHeader(request.headers, SIGNED_REQUEST_HEADERS[field])
      if (value instanceof KeyrotError) return fail(value)
      if (value === undefined) missing.push(SIGNED_REQUEST_HEADERS[field])
      values[field] = value
    }
    if (missing.length > 0) return fail(new MissingSignatureError(missing))
    const { keyId, nonce } = values as Record<keyof typeof SIGNED_REQUEST_HEADERS, string>
    if (!TIMESTAMP_PATTERN.test(values.timestamp as string)) return fail(new InvalidRequestError(`The ${SIGNED_REQUEST_HEADERS.timestamp} header must be Unix seconds.`))
    if (!NONCE_PATTERN.test(nonce)) return fail(new InvalidRequestError(`The ${SIGNED_REQUEST_HEADERS.nonce} header must be 16-128 letters, digits, "-" or "_".`))
    const signature = values.signature as string
    const sent = signature.startsWith('v1,') ? Buffer.from(signature.slice(3), 'base64') : null
    if (!sent || sent.length !== HMAC_BYTES) return fail(new InvalidRequestError(`The ${SIGNED_REQUEST_HEADERS.signature} header must be "v1," and a base64 HMAC-SHA256.`))
    if (typeof request.method !== 'string' || !METHOD_PATTERN.test(request.method) || typeof request.pathWithQuery !== 'string') {
      return fail(new InvalidRequestError('The request line is malformed.'))
    }
    if (typeof request.rawBody !== 'string' && !(request.rawBody instanceof Uint8Array) && typeof request.rawBody !== 'function') {
      return fail(new InvalidRequestError('The raw body must be a string, bytes, or a function that reads them.'))
    }

    const timestamp = Number(values.timestamp)
    if (Math.abs(timestamp * 1000 - now) > toleranceMs) return fail(new StaleTimestampError(timestamp * 1000, now, toleranceMs, isKeyId(keyId) ? keyId : undefined))
    // Before the key id is looked at: the same 413 for every key id.
    if (request.maxBodyBytes !== undefined) {
      const declared = singleHeader(request.headers, 'content-length')
      if (declared instanceof KeyrotError) return fail(declared)
      if (declared !== undefined && /^\d+$/.test(declared) && Number(declared) > request.maxBodyBytes) return fail(new PayloadTooLargeError(request.maxBodyBytes))
    }

    // The abuse guard of bearer keys: the IP and network failure budgets; a bad signature or an unknown id is a failure. Not the key
    // id's budget: it bounds Argon2 work, and an HMAC costs next to nothing, so a flood on one id cannot lock its client out here.
    const guard = keyring.abuseGuard
    if (!guard) return check(request, keyId, nonce, sent, timestamp, now, startedAt, fail)
    let gate: Gate
    try {
      const admitted = guard.admit({ ip: request.clientIp, keyId: undefined, digest: signature, proven: false, unpaced: true }, now)
      gate = isPromise(admitted) ? await admitted : admitted
    } catch (error) {
      return fail(error instanceof StoreUnavailableError ? error : new StoreUnavailableError('The rate limiter is unavailable.', { cause: error }))
    }
    if (!gate.ok) {
      if (keyring.listens('ratelimit.blocked')) {
        const { error } = gate
        keyring.emit('ratelimit.blocked', {
          code: error.code as 'KEYROT_RATE_LIMITED' | 'KEYROT_IP_BLOCKED',
          policy: error.policy,
          scope: error.scope,
          keyId: isKeyId(keyId) ? keyId : undefined,
          clientIp: request.clientIp,
          retryAfterMs: error.retryAfterMs,
          at: now,
        })
      }
      return fail(gate.error)
    }
    const ticket: Ticket | null = gate.ticket
    if (!ticket) return check(request, keyId, nonce, sent, timestamp, now, startedAt, fail)
    let failed = false
    try {
      const outcome = await check(request, keyId, nonce, sent, timestamp, now, startedAt, fail)
      failed = !outcome.ok && outcome.error.code === 'KEYROT_INVALID_SIGNATURE'
      return outcome
    } finally {
      await guard.settle(ticket, failed)
    }
  }

  /** From the key id on: the secret, the body, the HMAC, the state and the nonce. */
  async function check(
    request: SignedRequestInput,
    keyId: string,
    nonce: string,
    sent: Buffer,
    timestamp: number,
    now: number,
    startedAt: number | undefined,
    fail: (error: KeyrotError, record?: KeyRecord | null) => SignedRequestOutcome,
  ): Promise<SignedRequestOutcome> {
    if (!isKeyId(keyId)) return fail(new InvalidSignatureError('unknown signing key'))

    let record: KeyRecord | null
    try {
      record = await keyring.store.get(keyId)
    } catch (error) {
      return fail(error instanceof StoreUnavailableError ? error : new StoreUnavailableError(undefined, { cause: error, keyId }))
    }
    if (!record || !isSigningSecret(record)) return fail(new InvalidSignatureError('unknown signing key', keyId))

    let hmacKey: Buffer
    try {
      hmacKey = hmacKeyOf(sealer, record)
    } catch (error) {
      logger.error({ event: 'signing.secret_unreadable', keyId, ...errorFields(error) }, 'keyrot cannot decrypt a signing secret')
      return fail(error instanceof KeyrotError ? error : new StoreUnavailableError(undefined, { keyId }), record)
    }
    let body: string | Uint8Array
    try {
      body = typeof request.rawBody === 'function' ? await readBody(request.rawBody) : request.rawBody
    } catch (error) {
      if (!(error instanceof KeyrotError)) throw error
      logger.warn({ event: 'signing.body_unread', keyId, code: error.code, reason: error.message }, 'keyrot could not read a signed request body')
      // A body found too large only while read answers as a bad signature: a 413 here, after the key lookup, would say the id exists.
      const refused = fail(error instanceof PayloadTooLargeError ? new InvalidSignatureError('the body is over the limit', keyId) : error, record)
      // The rest of the body was not read: do not keep the connection for another request.
      return { ...refused, headers: { ...refused.headers, connection: 'close' } } as SignedRequestOutcome
    }
    if (typeof body !== 'string' && !(body instanceof Uint8Array)) return fail(new InvalidRequestError('The raw body must be a string or bytes.'), record)
    const expected = requestHmac(hmacKey, { method: request.method, pathWithQuery: request.pathWithQuery, timestamp, nonce, keyId, body })
    if (!timingSafeEqual(sent, expected)) return fail(new InvalidSignatureError('the signature does not match', keyId), record)

    // Revoked or expired is told only to a caller who proved the secret, as verify() does for API keys.
    const state = stateOf(record, now)
    if (state === 'revoked') return fail(new KeyRevokedError(keyId, record.revokedAt as number, record.revokedReason), record)
    if (state === 'expired') return fail(new KeyExpiredError(keyId, record.expiresAt as number), record)

    let fresh: boolean
    try {
      fresh = await replayStore.remember(`${keyId}:${nonce}`, 2 * toleranceMs)
    } catch (error) {
      return fail(error instanceof StoreUnavailableError ? error : new StoreUnavailableError('The replay store is unavailable.', { cause: error, keyId }), record)
    }
    if (!fresh) return fail(new ReplayedRequestError(keyId), record)

    const inGrace = state === 'grace'
    keyring.store.recordUsage(keyId, now, inGrace)
    if (keyring.listens('verification.succeeded')) {
      keyring.emit('verification.succeeded', {
        keyId,
        tenantId: record.tenantId,
        state: inGrace ? 'grace' : 'active',
        cached: false,
        clientIp: request.clientIp,
        userAgent: request.userAgent,
        durationMs: startedAt === undefined ? 0 : performance.now() - startedAt,
        at: now,
      })
    }
    const headers: Record<string, string> = {}
    if (inGrace && record.expiresAt !== null) headers['sunset'] = new Date(record.expiresAt).toUTCString()
    return { ok: true, key: toApiKey(record, now), headers, rawBody: body }
  }

  return { verify, toleranceMs, replayStore }
}

/**
 * Verifies one signed request with an explicit replay store (a shorthand for
 * `createSignedRequestVerifier(options).verify(request)`; build the verifier
 * once when you verify many).
 */
export function verifySignedRequest(
  request: SignedRequestInput,
  options: SignedRequestVerifierOptions & { replayStore: ReplayStore },
): Promise<SignedRequestOutcome> {
  if (options?.replayStore === undefined) throw new TypeError('verifySignedRequest needs a replayStore: a per-call memory store would catch no replay')
  return createSignedRequestVerifier(options).verify(request)
}
