import type { ApiKey } from './types.js'
import type { ErrorCode } from './errors.js'

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
  'verification.succeeded': { keyId: string; tenantId: string; state: 'active' | 'grace'; cached: boolean; clientIp: string | undefined; at: number }
  'verification.failed': { code: ErrorCode; keyId: string | undefined; tenantId: string | undefined; clientIp: string | undefined; userAgent: string | undefined; at: number }
  /** A rate limit or block refused a request. */
  'ratelimit.blocked': { code: 'KEYROT_RATE_LIMITED' | 'KEYROT_IP_BLOCKED'; scope: 'ip' | 'key'; keyId: string | undefined; clientIp: string | undefined; retryAfterMs: number; at: number }
  /** The store's invalidation feed reset (reconnect, missed heartbeat): cached states were dropped. */
  'cache.reset': { reason: string; at: number }
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
