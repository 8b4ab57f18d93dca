import { parseDuration, type Duration } from '../duration.js'
import { errorFields } from '../logger.js'
import type { ApiKey } from '../types.js'
import type { Keyring } from './keyring.js'
import { checkTenantId } from './validate.js'

/** Longest delay Node's timers accept. */
const MAX_TIMER_MS = 2 ** 31 - 1

export interface ExpiryWatcherOptions {
  /** Emit `key.grace_ending_soon` when a rotated key's grace period ends within this. ms or `'1h'`. Default `'1h'`; `0`: never. */
  graceEndingWithin?: Duration
  /** Emit `key.expiring_soon` when an active key's expiry is within this. ms or `'7d'`. Default `'7d'`; `0`: never. */
  expiringWithin?: Duration
  /** Time between two checks. ms or `'1m'`. Default `'1m'`; `0`: no timer, call `tick()` yourself. */
  interval?: Duration
  /** Watch one tenant's keys only. Default: every key. */
  tenantId?: string
}

export interface ExpiryWatcher {
  /** Checks now and emits the notices due. Concurrent calls share one check. Rejects if the store fails. */
  tick(): Promise<void>
  /** Stops the timer. Idempotent; `tick()` still works afterwards. */
  stop(): void
}

/**
 * Emits `key.grace_ending_soon` and `key.expiring_soon` on the keyring, so
 * you can email or page the customer whose clients still use a key about to
 * stop working. Each notice fires once per key and deadline: moving a
 * deadline (`extendGrace`, `setExpiry`) arms it again.
 *
 * Time comes from the keyring's clock; the timer only sets the pace, is
 * `unref`'d (it never keeps the process alive) and stops with `stop()`.
 * Each check lists the store's keys (O(keys)), and is skipped while nobody
 * listens to either event: pick `interval` to match.
 * A check that fails is logged through the keyring's logger and retried at
 * the next interval.
 *
 * @example
 * keyring.on('key.grace_ending_soon', (e) => mailer.send(e.tenantId, `key ${e.keyId} stops at ${new Date(e.expiresAt)}`))
 * const watcher = watchExpiry(keyring, { graceEndingWithin: '1h', expiringWithin: '7d', interval: '1m' })
 * // on shutdown: watcher.stop()
 */
export function watchExpiry(keyring: Keyring, options: ExpiryWatcherOptions = {}): ExpiryWatcher {
  if (!keyring || typeof keyring.expiringWithin !== 'function') throw new TypeError('watchExpiry needs a keyring from createKeyring()')
  if (options === null || typeof options !== 'object') throw new TypeError('watchExpiry options must be an object')
  const graceWithinMs = parseDuration(options.graceEndingWithin ?? '1h', 'graceEndingWithin')
  const expiringWithinMs = parseDuration(options.expiringWithin ?? '7d', 'expiringWithin')
  const intervalMs = parseDuration(options.interval ?? '1m', 'interval')
  if (intervalMs > MAX_TIMER_MS) throw new TypeError(`interval must be at most ${MAX_TIMER_MS} ms (about 24.8 days); got ${intervalMs}`)
  if (graceWithinMs === 0 && expiringWithinMs === 0) throw new TypeError('graceEndingWithin and expiringWithin cannot both be 0: nothing to watch')
  const query = options.tenantId === undefined ? {} : { tenantId: checkTenantId(options.tenantId) }

  /** `grace:<keyId>` / `expiring:<keyId>` → the deadline already announced. */
  const announced = new Map<string, number>()
  let running: Promise<void> | null = null

  async function check(): Promise<void> {
    const watchGrace = graceWithinMs > 0 && keyring.listens('key.grace_ending_soon')
    const watchExpiring = expiringWithinMs > 0 && keyring.listens('key.expiring_soon')
    if (!watchGrace && !watchExpiring) return // nobody to tell: no store read
    const keys = await keyring.expiringWithin(Math.max(graceWithinMs, expiringWithinMs), query)
    const now = keyring.clock.now()
    const seen = new Set<string>()
    for (const key of keys) {
      const expiresAt = key.expiresAt as number
      const remainingMs = Math.max(0, expiresAt - now)
      if (key.state === 'grace' && watchGrace && remainingMs <= graceWithinMs) {
        if (announce(`grace:${key.id}`, expiresAt, seen)) emitGraceEnding(key, expiresAt, remainingMs, now)
      } else if (key.state === 'active' && watchExpiring && remainingMs <= expiringWithinMs) {
        if (announce(`expiring:${key.id}`, expiresAt, seen)) emitExpiring(key, expiresAt, remainingMs, now)
      }
    }
    // Forget keys that left their window (expired, revoked, deadline moved out): memory stays bounded by the window.
    for (const id of announced.keys()) if (!seen.has(id)) announced.delete(id)
  }

  function announce(id: string, expiresAt: number, seen: Set<string>): boolean {
    seen.add(id)
    if (announced.get(id) === expiresAt) return false
    announced.set(id, expiresAt)
    return true
  }

  function emitGraceEnding(key: ApiKey, expiresAt: number, remainingMs: number, now: number): void {
    keyring.emit('key.grace_ending_soon', {
      keyId: key.id,
      tenantId: key.tenantId,
      rotatedTo: key.rotatedTo,
      expiresAt,
      remainingMs,
      lastUsedInGraceAt: key.lastUsedInGraceAt,
      at: now,
    })
  }

  function emitExpiring(key: ApiKey, expiresAt: number, remainingMs: number, now: number): void {
    keyring.emit('key.expiring_soon', { keyId: key.id, tenantId: key.tenantId, expiresAt, remainingMs, lastUsedAt: key.lastUsedAt, at: now })
  }

  function tick(): Promise<void> {
    running ??= check().finally(() => {
      running = null
    })
    return running
  }

  function tickAndLog(): void {
    tick().catch((error: unknown) =>
      keyring.options.logger.warn({ event: 'expiry_watcher.check_failed', ...errorFields(error) }, 'keyrot could not check key expiries'),
    )
  }

  let timer: NodeJS.Timeout | null = null
  if (intervalMs > 0) {
    timer = setInterval(tickAndLog, intervalMs)
    timer.unref()
    tickAndLog()
  }

  return {
    tick,
    stop() {
      if (timer) clearInterval(timer)
      timer = null
    },
  }
}
