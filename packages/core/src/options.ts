import { systemClock, type Clock } from './clock.js'
import type { HistoryLog } from './audit/history.js'
import { parseGracePeriod } from './grace-period.js'
import { parseDuration, type Duration } from './duration.js'
import { Argon2Hasher, type Hasher } from './hash/hasher.js'
import { DEFAULT_ARGON2_MAX_WAIT_MS } from './hash/argon2-queue.js'
import { resolveProofKey } from './proof/proof-key.js'
import { resolveRotationPolicyOptions, type ResolvedRotationPolicyOptions, type RotationPolicyOptions } from './policy/policy-options.js'
import { resolveImportOptions, type ImportOptions } from './lifecycle/imported-keys.js'
import { silentLogger, type Logger } from './logger.js'
import { resolveRateLimitOptions, type RateLimitOptions, type ResolvedRateLimitOptions } from './rate-limit/options.js'
import { SecretSealer, type SigningOptions } from './signing/sealer.js'
import { MemoryStore } from './store/memory-store.js'
import type { KeyStore } from './store/store.js'
import { assertValidPrefix, DEFAULT_PREFIX } from './token/format.js'

export interface KeyringOptions {
  /** Where keys live. Default: a new `MemoryStore` (one process, forgotten at exit). */
  store?: KeyStore
  /** How tokens are hashed. Default: `Argon2Hasher` with OWASP parameters (m=19456 KiB, t=2, p=1). */
  hasher?: Hasher
  /** How long an old key keeps working after `rotate()`. ms or `'24h'`. Default `'24h'`; `0` ends it at once. */
  gracePeriod?: Duration
  /** Token prefix for new keys. Default `'sk_live'`. */
  prefix?: string
  /** Time source (epoch ms). Default: `Date.now`. */
  clock?: Clock
  cache?: {
    /** Most proven tokens kept. Default 10,000. `0` disables the cache (every verify runs Argon2). */
    maxEntries?: number
    /**
     * Longest a cached key state (revocation, expiry, scopes) is trusted without
     * a store read: the revocation bound when no invalidation message arrives.
     * ms or `'5s'`. Default `'5s'`. `0` reads the store on every verify.
     */
    stateTtl?: Duration
    /**
     * How long a key this replica confirmed keeps verifying while the store
     * cannot answer (stale-if-error), counted from the last confirmation: a
     * store read, or a cache hit while the invalidation feed was live. Only
     * tokens already proven here; never past the key's `expiresAt`; never
     * after this replica received the key's revocation or expiry change. A
     * change written just before an outage whose invalidation was lost can
     * be missed for at most this long. ms or `'30s'`. Default `'30s'` (rides
     * out a Sentinel failover or a Redis restart). `0`: fail closed (503
     * while the store is down).
     */
    staleIfError?: Duration
  }
  /** Least time between two `key.used_in_grace` events for one key. Default `'1m'`. */
  graceUsageEventInterval?: Duration
  /** pino-compatible logger for warnings and the audit trail. Default: silent. */
  logger?: Logger
  /**
   * Master keys that encrypt signing secrets at rest (AES-256-GCM). Needed
   * for `createSigningSecret()`, webhook signing and signed requests. Default:
   * none (API keys only).
   */
  signing?: SigningOptions
  /**
   * Abuse protection for `verify()`: failed attempts per client IP, IP
   * blocks, failed attempts per key id, a request quota per key and a short
   * negative cache of wrong tokens. On by default with an in-memory limiter
   * (see `RateLimitOptions` for the defaults and docs/rate-limits.md);
   * `false` turns it all off.
   */
  rateLimit?: RateLimitOptions | false
  /**
   * A shared admin history (`MemoryHistoryLog`, or `RedisHistoryLog` from
   * `@keyrot/redis`): every successful create, rotate, revoke, emergency
   * rotation and expiry change is appended to it as a hash-chained entry,
   * read with `keyring.history(keyId)` and checked with
   * `keyring.verifyHistory()`. Default: none.
   */
  history?: HistoryLog
  /**
   * The server-side key of the fleet-wide proof cache (docs/redis.md#shared-proofs):
   * at least 32 random bytes, as a `Buffer` or base64. Every replica of a
   * fleet needs the same one; it never reaches the store. When a replica
   * proves a token with Argon2, it stores an HMAC of it under this key, and
   * every other replica then accepts that token with one HMAC instead of
   * Argon2. Default: `KEYROT_PROOF_KEY` from the environment; without either
   * (or with `null`) each replica proves each token with Argon2 itself.
   */
  proofKey?: Buffer | Uint8Array | string | null
  /**
   * Rotation policy (docs/policies.md): keys older than `maxAge` are due,
   * warned from `maxAge - rotationWarning` on (`Deprecation` header, one
   * `key.rotation-due` event), expired at verify with `enforce: true`.
   * Tenants override it with `keyring.setTenantPolicy()`. Default: none,
   * and verify does no policy work at all (tenant overrides need a `policy`,
   * `{}` for tenant overrides only).
   */
  policy?: RotationPolicyOptions | false
  /**
   * Server-side key of the index of imported keys (`keyring.import()`): at
   * least 32 random bytes, as a `Buffer` or base64; every replica needs the
   * same one, and it never reaches the store. Default: derived from the proof
   * key (`proofKey` or `KEYROT_PROOF_KEY`) with HKDF under its own label;
   * without either, `import()` throws. Changing it orphans the index: imported
   * tokens no longer verify. See docs/policies.md#importing-keys.
   */
  importKey?: Buffer | Uint8Array | string
  /**
   * Token prefixes of imported keys (e.g. `['old_']`): a token that is not in
   * keyrot format and starts with one of them is looked up in the import
   * index. Default: none (tokens not in keyrot format fail at once, with no
   * store read).
   */
  importedPrefixes?: string[]
  /** The Argon2 runs of `verify()` (tokens not proven before). */
  argon2?: {
    /** Runs at once. Default: the machine's cores. */
    concurrency?: number
    /**
     * Longest a token waits for an Argon2 slot before its verify answers
     * `KEYROT_OVERLOADED` (503 + `Retry-After`). ms or `'1s'`. Default `'1s'`.
     * `0`: never refuse, wait as long as the queue takes.
     */
    maxWait?: Duration
  }
}

export interface ResolvedKeyringOptions {
  store: KeyStore
  hasher: Hasher
  gracePeriodMs: number
  prefix: string
  clock: Clock
  cacheMaxEntries: number
  stateTtlMs: number
  /** `0`: no stale-if-error (fail closed while the store is down). */
  staleIfErrorMs: number
  graceUsageEventIntervalMs: number
  logger: Logger
  /** Encrypts and decrypts signing secrets; `null` when no master keys are configured. */
  signing: SecretSealer | null
  /** `null` when `rateLimit: false`. */
  rateLimit: ResolvedRateLimitOptions | null
  /** `null` when no history log is configured. */
  history: HistoryLog | null
  /** `null` when shared proofs are off (no `proofKey`, no `KEYROT_PROOF_KEY`). */
  proofKey: Buffer | null
  /** The import index key (`null`: imports off) and the prefixes routed to it. */
  imports: ImportOptions
  argon2: { concurrency: number | undefined; maxWaitMs: number }
  /** `null` when no `policy` is configured. */
  policy: ResolvedRotationPolicyOptions | null
}

/** Resolves and validates options once; never mutates the caller's object. */
export function resolveKeyringOptions(options: KeyringOptions = {}): ResolvedKeyringOptions {
  if (options === null || typeof options !== 'object') throw new TypeError('createKeyring options must be an object')
  const prefix = options.prefix ?? DEFAULT_PREFIX
  assertValidPrefix(prefix, 'prefix')
  if (options.cache !== undefined && (options.cache === null || typeof options.cache !== 'object')) {
    throw new TypeError('cache must be an object: { maxEntries?, stateTtl?, staleIfError? }')
  }
  const cacheMaxEntries = options.cache?.maxEntries ?? 10_000
  if (!Number.isInteger(cacheMaxEntries) || cacheMaxEntries < 0) {
    throw new TypeError(`cache.maxEntries must be a non-negative integer; got ${String(cacheMaxEntries)}`)
  }
  const store = options.store ?? new MemoryStore()
  for (const method of ['insert', 'get', 'rotate', 'revoke', 'emergencyRotate', 'setExpiry', 'list', 'recordUsage', 'close'] as const) {
    if (typeof (store as unknown as Record<string, unknown>)[method] !== 'function') {
      throw new TypeError(`store must implement KeyStore: missing ${method}()`)
    }
  }
  const hasher = options.hasher ?? new Argon2Hasher()
  if (typeof hasher.hash !== 'function' || typeof hasher.verify !== 'function') {
    throw new TypeError('hasher must implement Hasher: hash() and verify()')
  }
  const clock = options.clock ?? systemClock
  if (typeof clock.now !== 'function') throw new TypeError('clock must have a now() method returning epoch milliseconds')
  const logger = options.logger ?? silentLogger
  for (const level of ['info', 'warn', 'error'] as const) {
    if (typeof (logger as unknown as Record<string, unknown>)[level] !== 'function') {
      throw new TypeError(`logger must have info(), warn() and error() methods (pino-compatible); missing ${level}()`)
    }
  }
  const history = options.history ?? null
  if (history !== null) {
    for (const method of ['append', 'read', 'verify'] as const) {
      if (typeof (history as unknown as Record<string, unknown>)[method] !== 'function') {
        throw new TypeError(`history must implement HistoryLog: missing ${method}()`)
      }
    }
  }
  const proofKey = resolveProofKey(options.proofKey)
  return {
    store,
    hasher,
    gracePeriodMs: parseGracePeriod(options.gracePeriod ?? '24h', 'gracePeriod'),
    prefix,
    clock,
    cacheMaxEntries,
    stateTtlMs: parseDuration(options.cache?.stateTtl ?? '5s', 'cache.stateTtl'),
    staleIfErrorMs: parseDuration(options.cache?.staleIfError ?? '30s', 'cache.staleIfError'),
    graceUsageEventIntervalMs: parseDuration(options.graceUsageEventInterval ?? '1m', 'graceUsageEventInterval'),
    logger,
    signing: options.signing === undefined ? null : new SecretSealer(options.signing),
    rateLimit: resolveRateLimitOptions(options.rateLimit),
    history,
    proofKey,
    imports: resolveImportOptions(options.importKey, options.importedPrefixes, proofKey),
    argon2: resolveArgon2Options(options.argon2),
    policy: resolveRotationPolicyOptions(options.policy),
  }
}

function resolveArgon2Options(value: KeyringOptions['argon2']): ResolvedKeyringOptions['argon2'] {
  if (value !== undefined && (value === null || typeof value !== 'object')) throw new TypeError('argon2 must be an object: { concurrency?, maxWait? }')
  const concurrency = value?.concurrency
  if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1)) {
    throw new TypeError(`argon2.concurrency must be a positive integer; got ${String(concurrency)}`)
  }
  return { concurrency, maxWaitMs: value?.maxWait === undefined ? DEFAULT_ARGON2_MAX_WAIT_MS : parseDuration(value.maxWait, 'argon2.maxWait') }
}
