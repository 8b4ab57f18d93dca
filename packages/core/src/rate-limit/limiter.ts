/**
 * The policies a request can be refused by, named as they appear in the
 * `RateLimit-Policy` and `RateLimit` headers.
 *
 * - `ip-block`: the client IP reached `ipBlock.threshold` failures and is
 *   blocked for `ipBlock.duration`.
 * - `ip-failures`: the client IP failed `failuresPerIp.limit` times in the
 *   current window; refused until the window ends.
 * - `network-failures`: the client's wider network (IPv6 /48, IPv4 /24 by
 *   default) failed `failuresPerNetwork.limit` times in the current window.
 * - `key-failures`: `failuresPerKey.limit` attempts with unproven tokens for
 *   one key id failed in the current window; tokens not yet proven in this
 *   process are refused until the window ends (proven ones still pass).
 * - `per-key`: the key used up its request quota.
 */
export type RateLimitPolicy = 'ip-block' | 'ip-failures' | 'network-failures' | 'key-failures' | 'per-key'

/** A value, or a promise of it. */
export type MaybePromise<T> = T | Promise<T>

/** `limit` events per `windowMs` milliseconds. */
export interface WindowLimit {
  limit: number
  windowMs: number
}

export interface IpBlockLimit {
  /** Failures (within `windowMs`) that block the IP. */
  threshold: number
  windowMs: number
  /** How long the block lasts. */
  durationMs: number
}

/**
 * The failure limits, passed on every call so a limiter holds no
 * configuration of its own (one limiter, or one Redis, can serve keyrings
 * configured differently). `null` turns a limit off.
 */
export interface FailureLimits {
  failuresPerIp: WindowLimit | null
  ipBlock: IpBlockLimit | null
  failuresPerKey: WindowLimit | null
  /** Failures per wider network (all its addresses together). Omitted or `null`: off. */
  failuresPerNetwork?: WindowLimit | null
}

/** A request quota: `limit` requests per `windowMs`. */
export type Quota = WindowLimit

/**
 * One verification attempt, as the limiter sees it. `ip` and `keyId` say
 * which counters are checked; `chargeIp` and `chargeKey` say which are
 * incremented, at admission, before any store read or hashing. A charge is
 * a failure until `release()` refunds it (the attempt turned out not to be a
 * guess), so concurrent attempts cannot all slip under a limit.
 */
export interface Attempt {
  /** Client IP: checks `ip-block` and `ip-failures`. `undefined`: no IP limits. */
  ip: string | undefined
  /** Key id: checks `key-failures`. `undefined` for a malformed or already proven token. */
  keyId: string | undefined
  /** The client's wider network: checks `network-failures`, charged with `chargeIp`. Omitted: none. */
  network?: string | undefined
  chargeIp: boolean
  chargeKey: boolean
}

export type Admission =
  | { allowed: true }
  | {
      allowed: false
      policy: Exclude<RateLimitPolicy, 'per-key'>
      limit: number
      windowMs: number
      /** Until the refusal ends (end of the window, or of the block). */
      retryAfterMs: number
    }

export type QuotaDecision =
  | {
      allowed: true
      limit: number
      windowMs: number
      /** Requests still allowed right now. */
      remaining: number
      /** Until the whole quota is available again. */
      resetMs: number
    }
  | {
      allowed: false
      limit: number
      windowMs: number
      remaining: 0
      resetMs: number
      /** Until one more request is allowed. */
      retryAfterMs: number
    }

/** What the charged counters were, for {@link RateLimiter.release}. */
export interface Charge {
  ip: string | undefined
  keyId: string | undefined
  network?: string | undefined
  /** When the charge was made (the `now` given to `admit`). */
  chargedAt: number
}

/**
 * Where keyrot keeps its abuse counters. `MemoryRateLimiter` serves one
 * process; `RedisRateLimiter` (in `@keyrot/redis`) shares the counters
 * between replicas.
 *
 * Concurrency guarantee: each call is atomic (check and update happen with
 * no other call for the same IP or key in between), so N concurrent attempts
 * never all pass a limit of fewer than N. `now` is epoch ms from the
 * keyring's clock; the limiter never reads a clock itself.
 *
 * A limiter that cannot answer throws or rejects; the keyring reports it as
 * `KEYROT_STORE_UNAVAILABLE` (503), never as a pass.
 *
 * Methods may answer synchronously: the memory limiter does, so an
 * in-process check adds no tick to `verify()`.
 */
export interface RateLimiter {
  /**
   * Refuses the attempt if its IP is blocked or over its failure limit, or
   * if its key id is over its failure limit; otherwise applies the charges
   * (which may start an IP block) and admits it.
   */
  admit(attempt: Attempt, limits: FailureLimits, now: number): MaybePromise<Admission>
  /**
   * Refunds a charge: the attempt was not a failure. Counts only in the
   * window the charge landed in. Lifts an IP block the charge itself started.
   */
  release(charge: Charge, limits: FailureLimits, now: number): MaybePromise<void>
  /** Takes one request from a key's quota, if there is one left. */
  consume(keyId: string, quota: Quota, now: number): MaybePromise<QuotaDecision>
  /**
   * Optional, synchronous: `true` when no client IP or network has a failure
   * or a block on record that still counts at `now` under `limits` (every
   * window and block has ended), so `admit` would pass an attempt that charges nothing (a
   * proven token's) without a lookup. Lets the guard skip it.
   */
  clientsClean?(now: number, limits: FailureLimits): boolean
  /** Releases resources the limiter opened (never a client it was given). */
  close?(): Promise<void>
}
