import { createHmac, timingSafeEqual } from 'node:crypto'
import { systemClock, type Clock } from '../clock.js'
import { parseDuration, type Duration } from '../duration.js'
import { InvalidInputError, InvalidRequestError, type KeyrotError } from '../errors.js'
import type { Keyring } from '../lifecycle/keyring.js'
import { checkTimestamp } from '../lifecycle/validate.js'
import { InvalidSignatureError, MissingSignatureError, StaleTimestampError } from './errors.js'
import { singleHeader, type HeaderSource } from './headers.js'
import { signingKeyBytes } from './secret.js'
import { hmacKeyOf, sealerOf, webhookSigningRecords } from './signing-keys.js'

/** The three headers of the Standard Webhooks specification. */
export type WebhookHeaders = {
  'webhook-id': string
  /** Unix seconds. */
  'webhook-timestamp': string
  /** One `v1,<base64 HMAC-SHA256>` per signing secret, space-separated. */
  'webhook-signature': string
}

export interface SignWebhookInput {
  /** Id of a signing secret (`key.id` from `createSigningSecret`), or of any secret rotated from it. */
  secretId: string
  /** The message id: unique per message, the same for every retry of it (receivers deduplicate by it). */
  id: string
  /** When the message is sent: epoch ms, Date or ISO string. Default: the keyring's clock. */
  timestamp?: number | Date | string
  /** The exact bytes sent as the body. */
  payload: string | Uint8Array
}

/** Printable ASCII without spaces or commas, as the signed content and header lists need. */
const WEBHOOK_ID = /^[\x21-\x2b\x2d-\x7e]{1,256}$/
/** Most signatures looked at in one header; more is refused as malformed. */
const MAX_SIGNATURES = 16
const HMAC_BYTES = 32

function webhookHmac(key: Buffer, id: string, timestampSeconds: number, payload: string | Uint8Array): Buffer {
  return createHmac('sha256', key).update(`${id}.${timestampSeconds}.`).update(payload).digest()
}

/**
 * Signs a webhook with the Standard Webhooks scheme: HMAC-SHA256 over
 * `<id>.<timestamp>.<payload>` with the secret's key bytes, sent as
 * `webhook-signature: v1,<base64>`.
 *
 * During a rotation's grace period it signs with the new secret **and** every
 * predecessor still in grace (space-separated signatures), so receivers
 * configured with either secret keep verifying while they switch: zero
 * downtime for webhook receivers. Naming an old `secretId` after a rotation
 * signs with its successor.
 *
 * Throws `KeyNotFoundError`, `InvalidInputError`, `KeyRevokedError` or
 * `KeyExpiredError` when the secret cannot sign; `StoreUnavailableError` when
 * the store cannot answer.
 *
 * @example
 * const body = JSON.stringify({ type: 'invoice.paid', id: 'in_123' })
 * const headers = await signWebhook(keyring, { secretId, id: 'msg_2Kx9', payload: body })
 * await fetch(endpoint, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body })
 */
export async function signWebhook(keyring: Keyring, input: SignWebhookInput): Promise<WebhookHeaders> {
  const sealer = sealerOf(keyring)
  if (input === null || typeof input !== 'object') throw new InvalidInputError('input', 'must be an object')
  if (typeof input.id !== 'string' || !WEBHOOK_ID.test(input.id)) {
    throw new InvalidInputError('id', 'must be 1-256 printable ASCII characters without spaces or commas')
  }
  if (typeof input.payload !== 'string' && !(input.payload instanceof Uint8Array)) {
    throw new InvalidInputError('payload', 'must be a string or bytes (the exact body sent)')
  }
  const now = keyring.clock.now()
  const at = input.timestamp === undefined || input.timestamp === null ? now : (checkTimestamp(input.timestamp, 'timestamp') as number)
  const seconds = Math.floor(at / 1000)
  const records = await webhookSigningRecords(keyring, input.secretId, now)
  const signatures = records.map((record) => `v1,${webhookHmac(hmacKeyOf(sealer, record), input.id, seconds, input.payload).toString('base64')}`)
  return { 'webhook-id': input.id, 'webhook-timestamp': String(seconds), 'webhook-signature': signatures.join(' ') }
}

export interface WebhookVerifierOptions {
  /**
   * Secrets this receiver accepts (`whsec_...`), any of which may match.
   * During a sender's rotation list both the old and the new one, or only
   * either: the sender signs with both.
   */
  secrets: readonly string[]
  /** Largest accepted distance between the `webhook-timestamp` and now, either way. ms or `'5m'`. Default `'5m'`. Must be at least 1s. */
  tolerance?: Duration
  /** Time source (epoch ms). Default: `Date.now`. */
  clock?: Clock
}

export interface WebhookInput {
  /** The raw body exactly as received (not re-serialised JSON). */
  payload: string | Uint8Array
  headers: HeaderSource
}

export type WebhookVerifyResult =
  | {
      ok: true
      /** `webhook-id`: deduplicate on it, since retries of one message reuse it. */
      id: string
      /** `webhook-timestamp`, epoch ms. */
      timestamp: number
      /** Index in `secrets` of the secret that matched. */
      secretIndex: number
    }
  | { ok: false; error: KeyrotError }

/**
 * Builds a Standard Webhooks verifier for receivers. It checks the headers,
 * the timestamp (±`tolerance`, default 5 minutes) and the signatures against
 * every configured secret in constant time (`crypto.timingSafeEqual`).
 *
 * It deliberately keeps no replay list: a sender retries a failed delivery
 * with the same `webhook-id`, so refusing a seen id would refuse the retry.
 * Deduplicate on `id` where you process the message.
 *
 * Errors (never thrown): `KEYROT_MISSING_SIGNATURE`, `KEYROT_INVALID_REQUEST`
 * (malformed header), `KEYROT_STALE_TIMESTAMP`, `KEYROT_INVALID_SIGNATURE`.
 * Bad options throw a `TypeError` here, at start-up.
 *
 * @example
 * const verifyWebhook = createWebhookVerifier({ secrets: [process.env.WEBHOOK_SECRET!] })
 * const result = verifyWebhook({ payload: rawBody, headers: req.headers })
 * if (!result.ok) return res.writeHead(400).end(result.error.code)
 */
export function createWebhookVerifier(options: WebhookVerifierOptions): (input: WebhookInput) => WebhookVerifyResult {
  if (options === null || typeof options !== 'object') throw new TypeError('createWebhookVerifier options must be an object: { secrets }')
  if (!Array.isArray(options.secrets) || options.secrets.length === 0) {
    throw new TypeError('secrets must be a non-empty array of signing secrets (whsec_...)')
  }
  const keys = options.secrets.map((secret, index) => signingKeyBytes(secret, `secrets[${index}]`))
  const toleranceMs = parseDuration(options.tolerance ?? '5m', 'tolerance')
  if (toleranceMs < 1000) throw new TypeError('tolerance must be at least 1s (timestamps have one-second resolution)')
  const clock = options.clock ?? systemClock
  if (typeof clock.now !== 'function') throw new TypeError('clock must have a now() method returning epoch milliseconds')

  return function verifyWebhook(input: WebhookInput): WebhookVerifyResult {
    const fail = (error: KeyrotError): WebhookVerifyResult => ({ ok: false, error })
    if (input === null || typeof input !== 'object' || input.headers === null || typeof input.headers !== 'object') {
      return fail(new InvalidRequestError('A webhook needs { payload, headers }.'))
    }
    const id = singleHeader(input.headers, 'webhook-id')
    const timestamp = singleHeader(input.headers, 'webhook-timestamp')
    const signature = singleHeader(input.headers, 'webhook-signature')
    for (const value of [id, timestamp, signature]) if (value instanceof Error) return fail(value)
    const missing = (
      [
        ['webhook-id', id],
        ['webhook-timestamp', timestamp],
        ['webhook-signature', signature],
      ] as const
    )
      .filter(([, value]) => value === undefined)
      .map(([name]) => name)
    if (missing.length > 0) return fail(new MissingSignatureError(missing))
    if (!WEBHOOK_ID.test(id as string)) return fail(new InvalidRequestError('The webhook-id header is malformed.'))
    if (!/^\d{1,12}$/.test(timestamp as string)) return fail(new InvalidRequestError('The webhook-timestamp header must be Unix seconds.'))
    if (typeof input.payload !== 'string' && !(input.payload instanceof Uint8Array)) {
      return fail(new InvalidRequestError('The webhook payload must be the raw body: a string or bytes.'))
    }
    const seconds = Number(timestamp)
    const now = clock.now()
    if (Math.abs(seconds * 1000 - now) > toleranceMs) return fail(new StaleTimestampError(seconds * 1000, now, toleranceMs))

    const sent: Buffer[] = []
    const entries = (signature as string).split(' ').filter((entry) => entry !== '')
    if (entries.length > MAX_SIGNATURES) return fail(new InvalidRequestError('The webhook-signature header carries too many signatures.'))
    for (const entry of entries) {
      const comma = entry.indexOf(',')
      // Other schemes (e.g. v1a, asymmetric) are skipped, as the specification asks.
      if (comma === -1 || entry.slice(0, comma) !== 'v1') continue
      const bytes = Buffer.from(entry.slice(comma + 1), 'base64')
      if (bytes.length === HMAC_BYTES) sent.push(bytes)
    }
    for (let index = 0; index < keys.length; index++) {
      const expected = webhookHmac(keys[index] as Buffer, id as string, seconds, input.payload)
      // Compare against every signature without stopping early on a match.
      let matched = false
      for (const candidate of sent) matched = timingSafeEqual(candidate, expected) || matched
      if (matched) return { ok: true, id: id as string, timestamp: seconds * 1000, secretIndex: index }
    }
    return fail(new InvalidSignatureError(sent.length === 0 ? 'no v1 signature was sent' : 'no signature matches a configured secret'))
  }
}

/**
 * Verifies one webhook (a shorthand for `createWebhookVerifier(options)(input)`;
 * build the verifier once when you verify many).
 */
export function verifyWebhook(input: WebhookInput, options: WebhookVerifierOptions): WebhookVerifyResult {
  return createWebhookVerifier(options)(input)
}
