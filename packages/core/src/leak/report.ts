import { createHash, verify as verifySignature, type KeyObject } from 'node:crypto'
import { LeakReportError } from '../errors.js'

/** The secret scanning programs keyrot answers, with the headers each signs its reports with. */
export const LEAK_PROVIDERS = {
  github: {
    keyIdHeader: 'github-public-key-identifier',
    signatureHeader: 'github-public-key-signature',
    /** GitHub publishes its keys here; GitLab has no public default. */
    defaultKeysUrl: 'https://api.github.com/meta/public_keys/secret_scanning',
  },
  gitlab: {
    keyIdHeader: 'gitlab-public-key-identifier',
    signatureHeader: 'gitlab-public-key-signature',
    defaultKeysUrl: null,
  },
} as const

export type LeakProvider = keyof typeof LEAK_PROVIDERS

/** One reported token: what the provider found and where. */
export interface ReportedToken {
  token: string
  /** The provider's name for the token type (not trusted: tokens are identified by their own format). */
  type: string | null
  /** Where the token was found (a public URL), if the provider said. */
  url: string | null
  /** What kind of place (`content`, `commit`, `issue`...), if the provider said. */
  source: string | null
}

/** A token's answer, in the providers' shared response format. */
export interface LeakLabel {
  token_hash?: string
  token_raw?: string
  token_type: string
  label: 'true_positive' | 'false_positive'
}

/** Longest signature header read: a DER P-256 signature is at most 72 bytes (96 in base64). */
const MAX_SIGNATURE_HEADER = 200
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/
/** Longest string field kept from a report item; longer ones are cut (a URL) or cannot be ours (a token). */
const MAX_FIELD = 2_048

/**
 * Whether `signature` (base64 DER ECDSA) signs `body` with `key` (P-256,
 * SHA-256), over the raw bytes as received. Any malformed input is `false`.
 */
export function signatureMatches(key: KeyObject, body: Uint8Array, signature: string): boolean {
  if (signature.length === 0 || signature.length > MAX_SIGNATURE_HEADER || !BASE64.test(signature)) return false
  try {
    return verifySignature('sha256', body, { key, dsaEncoding: 'der' }, Buffer.from(signature, 'base64'))
  } catch {
    return false
  }
}

/**
 * Parses a verified report: a JSON array of at most `maxTokens` objects,
 * each with a string `token`. Throws {@link LeakReportError} naming the rule
 * broken. Extra fields are ignored; `type`, `url`, `source` are kept when
 * they are strings.
 */
export function parseReport(body: Uint8Array, maxTokens: number): ReportedToken[] {
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'))
  } catch {
    throw new LeakReportError('The leak report is not valid JSON.')
  }
  if (!Array.isArray(parsed)) throw new LeakReportError('The leak report must be a JSON array of { token, type, url } objects.')
  if (parsed.length > maxTokens) throw new LeakReportError(`The leak report holds ${parsed.length} tokens; at most ${maxTokens} are read at once.`)
  return parsed.map((item: unknown, index) => {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) throw new LeakReportError(`Item ${index} of the leak report is not an object.`)
    const { token, type, url, source } = item as Record<string, unknown>
    if (typeof token !== 'string' || token.length === 0) throw new LeakReportError(`Item ${index} of the leak report has no string token.`)
    return { token, type: text(type), url: text(url), source: text(source) }
  })
}

function text(value: unknown): string | null {
  if (typeof value !== 'string' || value.length === 0) return null
  return value.length > MAX_FIELD ? value.slice(0, MAX_FIELD) : value
}

/** SHA-256 (hex) of a token: the `token_hash` the providers match answers on. */
export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex')
}
