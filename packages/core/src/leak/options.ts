import { checkDuration } from '../lifecycle/validate.js'
import type { Duration } from '../duration.js'
import type { Keyring } from '../lifecycle/keyring.js'
import type { Logger } from '../logger.js'
import type { ApiKey } from '../types.js'
import type { PublicKeySource } from './public-keys.js'
import { LEAK_PROVIDERS, type LeakProvider } from './report.js'

/**
 * What happens to a key whose real secret a provider found in public:
 * - `revoke` (default): it stops working at once, on every replica;
 * - `emergencyRotate`: it is revoked and a successor issued in one step;
 *   `onEmergencyRotation` receives the successor's token to hand to its owner;
 * - `notify`: nothing changes; the `key.leaked` event, the history entry and
 *   the metric tell someone to act.
 */
export type LeakAction = 'revoke' | 'emergencyRotate' | 'notify'

/** The action per tenant and per token prefix; a tenant's rule wins over a prefix's. */
export interface LeakActionRules {
  /** Default `'revoke'`. */
  default?: LeakAction
  /** By tenant id, e.g. `{ 'internal-ci': 'notify' }`. */
  tenants?: Record<string, LeakAction>
  /** By token prefix, e.g. `{ sk_test: 'notify', sk_live: 'revoke' }`. */
  prefixes?: Record<string, LeakAction>
}

/** What `onEmergencyRotation` receives: the successor's token is its only copy. */
export interface LeakRotation {
  token: string
  key: ApiKey
  revoked: ApiKey
  provider: string
  sourceUrl: string | null
}

export interface LeakReportHandlerOptions {
  keyring: Keyring
  /** Which program sends the reports: sets the signature headers and GitHub's default keys URL. */
  provider: LeakProvider
  /**
   * Where the provider's public keys come from: a URL serving
   * `{ public_keys: [...] }`, or a function returning it. Default for
   * `github`: `https://api.github.com/meta/public_keys/secret_scanning`.
   * `gitlab` has no default: required.
   */
  keys?: PublicKeySource
  /** What to do with a proven leaked key. Default `'revoke'`. */
  action?: LeakAction | LeakActionRules
  /** Receives each successor issued by `emergencyRotate` (required when any rule says `emergencyRotate`). Awaited before the answer. */
  onEmergencyRotation?: (rotation: LeakRotation) => void | Promise<void>
  /** Largest report body read, in bytes. Default 1 MiB. */
  maxBodyBytes?: number
  /** Most tokens read from one report. Default 5,000. */
  maxTokens?: number
  /**
   * Most Argon2 proofs one answer runs. Only tokens with a valid checksum
   * whose key id exists with the same prefix are proven, so random strings
   * cost nothing. Past the budget the proven ones are acted on and the
   * answer is 503 with `Retry-After`: the provider's retry proves the rest
   * (results already proven are remembered). Default 200.
   */
  maxProofs?: number
  /** Proofs run at once. Default 2. */
  proofConcurrency?: number
  /** Answer each token by its SHA-256 (`token_hash`, default: the answer never echoes a secret) or as sent (`token_raw`). */
  answerWith?: 'token_hash' | 'token_raw'
  /** Longest one keys fetch may take (ms or `'5s'`). Default `'5s'`. */
  fetchTimeout?: Duration
  /** Least time between two keys fetches (an unknown key id triggers one). Default `'1m'`. `0`: no limit. */
  minRefreshInterval?: Duration
  /** Keys older than this are refetched before use. Default `'1h'`. */
  keysMaxAge?: Duration
  /** The HTTP client for the keys URL. Default `globalThis.fetch`. */
  fetch?: typeof fetch
  /** Default: the keyring's logger. */
  logger?: Logger
}

export interface ResolvedLeakOptions {
  keyring: Keyring
  provider: LeakProvider
  keyIdHeader: string
  signatureHeader: string
  keys: PublicKeySource
  actionFor: (key: { tenantId: string; prefix: string }) => LeakAction
  onEmergencyRotation: ((rotation: LeakRotation) => void | Promise<void>) | null
  maxBodyBytes: number
  maxTokens: number
  maxProofs: number
  proofConcurrency: number
  answerWith: 'token_hash' | 'token_raw'
  fetchTimeoutMs: number
  minRefreshIntervalMs: number
  keysMaxAgeMs: number
  fetch: typeof fetch
  logger: Logger
}

const ACTIONS: readonly LeakAction[] = ['revoke', 'emergencyRotate', 'notify']

function checkAction(value: unknown, name: string): LeakAction {
  if (!ACTIONS.includes(value as LeakAction)) throw new TypeError(`${name} must be one of ${ACTIONS.join(', ')}; got ${JSON.stringify(value)}`)
  return value as LeakAction
}

function checkCount(value: unknown, fallback: number, name: string): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || (value as number) < 1) throw new TypeError(`${name} must be a positive integer; got ${JSON.stringify(value)}`)
  return value as number
}

function checkMs(value: Duration | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  try {
    return checkDuration(value, name)
  } catch {
    throw new TypeError(`${name} must be a duration (ms or a string such as '30s'); got ${JSON.stringify(value)}`)
  }
}

function actionRule(action: LeakReportHandlerOptions['action']): { uses: Set<LeakAction>; actionFor: ResolvedLeakOptions['actionFor'] } {
  if (action === undefined || typeof action === 'string') {
    const only = action === undefined ? 'revoke' : checkAction(action, 'action')
    return { uses: new Set([only]), actionFor: () => only }
  }
  if (typeof action !== 'object' || action === null) throw new TypeError('action must be an action name or { default, tenants, prefixes }')
  const fallback = action.default === undefined ? 'revoke' : checkAction(action.default, 'action.default')
  const tenants = new Map(Object.entries(action.tenants ?? {}).map(([id, rule]) => [id, checkAction(rule, `action.tenants.${id}`)]))
  const prefixes = new Map(Object.entries(action.prefixes ?? {}).map(([id, rule]) => [id, checkAction(rule, `action.prefixes.${id}`)]))
  return {
    uses: new Set([fallback, ...tenants.values(), ...prefixes.values()]),
    actionFor: (key) => tenants.get(key.tenantId) ?? prefixes.get(key.prefix) ?? fallback,
  }
}

/** Resolves the options once; impossible settings throw a `TypeError` naming the option. */
export function resolveLeakOptions(options: LeakReportHandlerOptions): ResolvedLeakOptions {
  if (!options || typeof options !== 'object' || !options.keyring || typeof options.keyring.verify !== 'function') {
    throw new TypeError('createLeakReportHandler needs { keyring, provider }: a keyring from createKeyring()')
  }
  const spec = LEAK_PROVIDERS[options.provider as LeakProvider]
  if (!Object.hasOwn(LEAK_PROVIDERS, options.provider) || !spec) {
    throw new TypeError(`provider must be one of ${Object.keys(LEAK_PROVIDERS).join(', ')}; got ${JSON.stringify(options.provider)}`)
  }
  const keys = options.keys ?? spec.defaultKeysUrl
  if (keys === null) throw new TypeError(`keys is required for provider '${options.provider}': the URL of its public keys, or a function returning them`)
  if (typeof keys !== 'function') {
    let url: URL
    try {
      url = new URL(String(keys))
    } catch {
      throw new TypeError(`keys must be an http(s) URL or a function; got ${JSON.stringify(String(keys))}`)
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new TypeError(`keys must be an http(s) URL; got ${JSON.stringify(url.href)}`)
  }
  const { uses, actionFor } = actionRule(options.action)
  if (uses.has('emergencyRotate') && typeof options.onEmergencyRotation !== 'function') {
    throw new TypeError("onEmergencyRotation is required when an action is 'emergencyRotate': it receives the successor's token, its only copy")
  }
  const answerWith = options.answerWith ?? 'token_hash'
  if (answerWith !== 'token_hash' && answerWith !== 'token_raw') throw new TypeError(`answerWith must be 'token_hash' or 'token_raw'`)
  const fetchImpl = options.fetch ?? globalThis.fetch
  if (typeof fetchImpl !== 'function') throw new TypeError('fetch must be a function (no global fetch in this runtime)')
  return {
    keyring: options.keyring,
    provider: options.provider,
    keyIdHeader: spec.keyIdHeader,
    signatureHeader: spec.signatureHeader,
    keys,
    actionFor,
    onEmergencyRotation: options.onEmergencyRotation ?? null,
    maxBodyBytes: checkCount(options.maxBodyBytes, 1024 * 1024, 'maxBodyBytes'),
    maxTokens: checkCount(options.maxTokens, 5_000, 'maxTokens'),
    maxProofs: checkCount(options.maxProofs, 200, 'maxProofs'),
    proofConcurrency: checkCount(options.proofConcurrency, 2, 'proofConcurrency'),
    answerWith,
    fetchTimeoutMs: checkMs(options.fetchTimeout, 5_000, 'fetchTimeout'),
    minRefreshIntervalMs: checkMs(options.minRefreshInterval, 60_000, 'minRefreshInterval'),
    keysMaxAgeMs: checkMs(options.keysMaxAge, 3_600_000, 'keysMaxAge'),
    fetch: fetchImpl,
    logger: options.logger ?? options.keyring.options.logger,
  }
}
