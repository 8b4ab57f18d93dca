import { KeyrotError } from '../errors.js'

/** No signature headers (or not all of them) were sent. */
export class MissingSignatureError extends KeyrotError {
  /** Headers that were missing, by name. */
  readonly missing: readonly string[]
  constructor(missing: readonly string[]) {
    super('KEYROT_MISSING_SIGNATURE', `No request signature was sent: missing ${missing.join(', ')}.`)
    this.missing = missing
  }
}

/** The signature does not match, or names no usable signing secret. */
export class InvalidSignatureError extends KeyrotError {
  constructor(reason: string, keyId?: string) {
    super('KEYROT_INVALID_SIGNATURE', `The request signature is not valid: ${reason}.`, keyId === undefined ? undefined : { keyId })
  }
}

/** The signed timestamp is too old or too far in the future. */
export class StaleTimestampError extends KeyrotError {
  /** The signed timestamp, epoch ms. */
  readonly timestamp: number
  /** Signed timestamp minus the receiver's clock, ms (negative: in the past). */
  readonly skewMs: number
  readonly toleranceMs: number
  constructor(timestamp: number, now: number, toleranceMs: number, keyId?: string) {
    const skewMs = timestamp - now
    super(
      'KEYROT_STALE_TIMESTAMP',
      `The signature timestamp is ${Math.round(Math.abs(skewMs) / 1000)}s ${skewMs < 0 ? 'old' : 'in the future'}; at most ${Math.round(toleranceMs / 1000)}s is accepted.`,
      keyId === undefined ? undefined : { keyId },
    )
    this.timestamp = timestamp
    this.skewMs = skewMs
    this.toleranceMs = toleranceMs
  }
}

/** A request with this nonce (or a webhook with this id) was already accepted within the tolerance window. */
export class ReplayedRequestError extends KeyrotError {
  constructor(keyId?: string) {
    super('KEYROT_REPLAYED_REQUEST', 'This signed request was already received.', keyId === undefined ? undefined : { keyId })
  }
}

/** The body is larger than the verifier reads. */
export class PayloadTooLargeError extends KeyrotError {
  readonly limit: number
  constructor(limit: number) {
    super('KEYROT_PAYLOAD_TOO_LARGE', `The request body is larger than ${limit} bytes.`)
    this.limit = limit
  }
}

/** A sealed secret could not be opened: its master key is not configured, or the data was altered. */
export class SecretUnreadableError extends KeyrotError {
  /** Id of the master key the secret was sealed with (not secret), when readable. */
  readonly masterKeyId: string | undefined
  constructor(keyId: string, reason: string, masterKeyId?: string) {
    super('KEYROT_SECRET_UNREADABLE', `The signing secret of key ${keyId} cannot be decrypted: ${reason}.`, { keyId })
    this.masterKeyId = masterKeyId
  }
}
