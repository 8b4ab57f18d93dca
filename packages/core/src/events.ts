import type { ApiKey } from './types.js'
import type { ErrorCode } from './errors.js'
import type { RateLimitPolicy } from './rate-limit/limiter.js'

/** Who made a request: for events and audit logs. Never contains a credential. */
export interface RequestContext {
  clientIp?: string | undefined
  userAgent?: string | undefined
}

/** Payloads of the keyring's events. None carries a token, a secret or a hash. */
export interface KeyringEvents {
  'key.created': { key: ApiKey; at: number }
  'key.rotated': { previous: ApiKey; next: ApiKey; gracePeriodMs: number; at: number }
  'key.revoked': { key: ApiKey; reason: string | null; at: number }
  'key.emergency_rotated': { revoked: ApiKey; next: ApiKey; incidentId: string; at: number }
  'key.expiry_changed': { key: ApiKey; previousExpiresAt: number | null; at: number }
  /** A key was seen past its deadline (observed at verify time, not by a timer). */
  'key.expired': { keyId: string; tenantId: string; expiredAt: number; at: number }
  /** A key in its grace period was used: its client has not migrated. Throttled per key. */
  'key.used_in_grace': {
    keyId: string
    tenantId: string
    rotatedTo: string | null
    expiresAt: number
    clientIp: string | undefined
    userAgent: string | undefined
    at: number
  }
  /**
   * `durationMs`: time spent in `verify()` (fractional ms, from `performance.now()`),
   * measured only while a verification event has a listener.
   */
  'verification.succeeded': {
    keyId: string
    tenantId: string
    state: 'active' | 'grace'
    cached: boolean
    clientIp: string | undefined
    userAgent: string | undefined
    durationMs: number
    at: number
  }
  /** `durationMs` is `undefined` for a request refused before `verify()` ran (no key, malformed header). */
  'verification.failed': {
    code: ErrorCode
    keyId: string | undefined
    tenantId: string | undefined
    clientIp: string | undefined
    userAgent: string | undefined
    durationMs: number | undefined
    at: number
  }
  /**
   * A rate limit or block refused a request (every refusal, so an operator
   * can alert on bursts of them). `policy` names the limit, as in the
   * `RateLimit` header: `ip-block`, `ip-failures`, `key-failures`, `per-key`
   * (always set by the keyring; optional for events emitted by other code).
   */
  'ratelimit.blocked': {
    code: 'KEYROT_RATE_LIMITED' | 'KEYROT_IP_BLOCKED'
    policy?: RateLimitPolicy
    scope: 'ip' | 'key'
    keyId: string | undefined
    clientIp: string | undefined
    retryAfterMs: number
    at: number
  }
  /** The store's invalidation feed reset (reconnect, missed heartbeat): cached states were dropped. */
  'cache.reset': { reason: string; at: number }
  /**
   * The store reported another process's change to a key. `lagMs` is
   * receive time minus the sender's `sentAt` (includes clock skew between
   * hosts), `undefined` when the store does not stamp its messages.
   */
  'invalidation.received': { keyId: string; lagMs: number | undefined; at: number }
  /**
   * The key store stopped answering key reads (once per outage). Keys this
   * replica confirmed keep verifying for `cache.staleIfError`; others get 503.
   * `code` is the failure's error code (`KEYROT_STORE_UNAVAILABLE`...).
   */
  'store.down': { code: string; at: number }
  /** The key store answers again (once per outage): `downtimeMs` since `store.down`. */
  'store.up': { downtimeMs: number; at: number }
  /**
   * The shared rate limiter stopped answering and limits fell back to this
   * replica's own counters (`phase: 'start'`), or it answers again and limits
   * are shared again (`phase: 'end'`, with `downtimeMs`). Once per outage.
   */
  'ratelimit.fallback': { phase: 'start' | 'end'; downtimeMs: number | undefined; at: number }
  /** The store came back empty or rolled back (see docs/redis.md); `detail` says what was seen. */
  'store.reset': { cause: 'empty' | 'rollback'; detail: string; at: number }
  /**
   * Keys this replica knew that the reset store no longer has, by id (at most
   * 1,000 listed; `count` is the total), so operators can reissue them.
   */
  'keys.lost': { keyIds: string[]; count: number; cause: 'empty' | 'rollback'; at: number }
  /** A rotated key's grace period ends within the watcher's `graceEndingWithin` (see `watchExpiry`). Once per key and deadline. */
  'key.grace_ending_soon': {
    keyId: string
    tenantId: string
    rotatedTo: string | null
    expiresAt: number
    remainingMs: number
    /** Last use of the old key during its grace period: `null` means its clients have migrated. */
    lastUsedInGraceAt: number | null
    at: number
  }
  /**
   * A leak report (docs/leak-response.md) proved that this key's real secret
   * is public, and `action` was applied: `key` is its state afterwards.
   * `sourceUrl` is where the provider found it (`null` if not given);
   * `newKeyId` is the successor of an emergency rotation. Once per key per
   * leak: a redelivered report emits nothing.
   */
  'key.leaked': {
    key: ApiKey
    provider: string
    sourceUrl: string | null
    action: 'revoke' | 'emergencyRotate' | 'notify'
    newKeyId: string | null
    at: number
  }
  /** A verified leak report was answered: how many of its tokens were ours (`truePositives`) and not. */
  'leak.reported': { provider: string; truePositives: number; falsePositives: number; at: number }
  /**
   * A key reached its rotation policy's warning window (`dueAt - rotationWarning`)
   * or is past `dueAt` (`overdue`), seen at verify time. Once per key: per
   * fleet with a store that has `markRotationDue`, else per process
   * (docs/policies.md#rotation-policy).
   */
  'key.rotation-due': { keyId: string; tenantId: string; createdAt: number; dueAt: number; overdue: boolean; enforced: boolean; at: number }
  /** An active key's planned expiry falls within the watcher's `expiringWithin` (see `watchExpiry`). Once per key and deadline. */
  'key.expiring_soon': {
    keyId: string
    tenantId: string
    expiresAt: number
    remainingMs: number
    lastUsedAt: number | null
    at: number
  }
}

export type KeyringEventName = keyof KeyringEvents
export type KeyringListener<E extends KeyringEventName> = (payload: KeyringEvents[E]) => void

/**
 * A small typed emitter. `has()` lets the caller skip building a payload when
 * nobody listens. A listener that throws is reported to `onListenerError` and
 * never breaks the operation that emitted.
 */
export class TypedEmitter {
  readonly #listeners = new Map<KeyringEventName, Set<(payload: never) => void>>()
  readonly #onListenerError: (event: string, error: unknown) => void

  constructor(onListenerError: (event: string, error: unknown) => void) {
    this.#onListenerError = onListenerError
  }

  on<E extends KeyringEventName>(event: E, listener: KeyringListener<E>): () => void {
    let set = this.#listeners.get(event)
    if (!set) this.#listeners.set(event, (set = new Set()))
    set.add(listener as (payload: never) => void)
    return () => this.off(event, listener)
  }

  off<E extends KeyringEventName>(event: E, listener: KeyringListener<E>): void {
    const set = this.#listeners.get(event)
    set?.delete(listener as (payload: never) => void)
    if (set && set.size === 0) this.#listeners.delete(event)
  }

  has(event: KeyringEventName): boolean {
    return this.#listeners.has(event)
  }

  emit<E extends KeyringEventName>(event: E, payload: KeyringEvents[E]): void {
    const set = this.#listeners.get(event)
    if (!set) return
    for (const listener of set) {
      try {
        ;(listener as KeyringListener<E>)(payload)
      } catch (error) {
        this.#onListenerError(event, error)
      }
    }
  }

  clear(): void {
    this.#listeners.clear()
  }
}
