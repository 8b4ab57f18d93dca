import type { KeyringEventName, KeyringListener } from '../events.js'
import type { Keyring } from '../lifecycle/keyring.js'
import type { Logger } from '../logger.js'

export interface AuditLogOptions {
  /** Log successful verifications (at `info`). Default `true`; `false` keeps failures, admin actions and notices only. */
  successes?: boolean
  /**
   * Log admin actions (created, rotated, revoked, emergency_rotated,
   * expiry_changed). Default `true`. The keyring's own `logger` option also
   * notes them briefly: give the keyring a different logger, or none, to get
   * each action once.
   */
  adminActions?: boolean
  /** Log lifecycle notices: old key used in grace, key seen expired, grace ending soon, key expiring soon, cache reset. Default `true`. */
  notices?: boolean
}

/** `audit` field of every line: which trail it belongs to. */
export type AuditKind = 'verification' | 'admin' | 'notice'

/**
 * Writes an audit trail of a keyring through a pino-compatible logger: one
 * structured line per verification attempt, per admin action and per
 * lifecycle notice. Lines carry key ids, tenant ids, client IP and user
 * agent, never a token, a secret or a hash (events carry none).
 *
 * Every line has `audit` ({@link AuditKind}), `event` (the keyring event
 * name) and `at` (epoch ms from the keyring's clock). Levels: `info` for
 * successes and admin actions, `warn` for refusals and notices, `error` when
 * the store was unavailable. See docs/observability.md for every field.
 *
 * Returns a function that detaches the log.
 *
 * @example
 * import pino from 'pino'
 * const detach = attachAuditLog(keyring, pino().child({ component: 'keyrot-audit' }))
 */
export function attachAuditLog(keyring: Keyring, logger: Logger, options: AuditLogOptions = {}): () => void {
  if (!keyring || typeof keyring.on !== 'function') throw new TypeError('attachAuditLog needs a keyring from createKeyring()')
  if (!logger || typeof logger.info !== 'function' || typeof logger.warn !== 'function' || typeof logger.error !== 'function') {
    throw new TypeError('logger must have info(), warn() and error() methods (pino-compatible)')
  }
  if (options === null || typeof options !== 'object') throw new TypeError('attachAuditLog options must be an object')
  const successes = options.successes ?? true
  const adminActions = options.adminActions ?? true
  const notices = options.notices ?? true

  const detachers: Array<() => void> = []
  const on = <E extends KeyringEventName>(event: E, listener: KeyringListener<E>): void => {
    detachers.push(keyring.on(event, listener))
  }

  if (successes) {
    on('verification.succeeded', (e) =>
      logger.info(
        {
          audit: 'verification',
          event: 'verification.succeeded',
          outcome: 'ok',
          keyId: e.keyId,
          tenantId: e.tenantId,
          state: e.state,
          cached: e.cached,
          clientIp: e.clientIp,
          userAgent: e.userAgent,
          durationMs: e.durationMs,
          at: e.at,
        },
        'keyrot verification succeeded',
      ),
    )
  }
  on('verification.failed', (e) => {
    const line = {
      audit: 'verification',
      event: 'verification.failed',
      outcome: 'error',
      code: e.code,
      keyId: e.keyId,
      tenantId: e.tenantId,
      clientIp: e.clientIp,
      userAgent: e.userAgent,
      durationMs: e.durationMs,
      at: e.at,
    }
    if (e.code === 'KEYROT_STORE_UNAVAILABLE') logger.error(line, 'keyrot verification failed: store unavailable')
    else logger.warn(line, `keyrot verification failed: ${e.code}`)
  })
  on('ratelimit.blocked', (e) =>
    logger.warn(
      {
        audit: 'verification',
        event: 'ratelimit.blocked',
        outcome: 'error',
        code: e.code,
        policy: e.policy,
        scope: e.scope,
        keyId: e.keyId,
        clientIp: e.clientIp,
        retryAfterMs: e.retryAfterMs,
        at: e.at,
      },
      `keyrot request blocked: ${e.code}`,
    ),
  )

  if (adminActions) {
    on('key.created', (e) =>
      logger.info(
        {
          audit: 'admin',
          event: 'key.created',
          keyId: e.key.id,
          tenantId: e.key.tenantId,
          name: e.key.name,
          prefix: e.key.prefix,
          scopes: e.key.scopes,
          expiresAt: e.key.expiresAt,
          at: e.at,
        },
        'keyrot key created',
      ),
    )
    on('key.rotated', (e) =>
      logger.info(
        {
          audit: 'admin',
          event: 'key.rotated',
          keyId: e.previous.id,
          newKeyId: e.next.id,
          tenantId: e.previous.tenantId,
          gracePeriodMs: e.gracePeriodMs,
          graceEndsAt: e.previous.expiresAt,
          at: e.at,
        },
        'keyrot key rotated',
      ),
    )
    on('key.revoked', (e) =>
      logger.info(
        { audit: 'admin', event: 'key.revoked', keyId: e.key.id, tenantId: e.key.tenantId, reason: e.reason, at: e.at },
        'keyrot key revoked',
      ),
    )
    on('key.emergency_rotated', (e) =>
      logger.warn(
        {
          audit: 'admin',
          event: 'key.emergency_rotated',
          keyId: e.revoked.id,
          newKeyId: e.next.id,
          tenantId: e.revoked.tenantId,
          incidentId: e.incidentId,
          reason: e.revoked.revokedReason,
          at: e.at,
        },
        'keyrot key revoked by emergency rotation',
      ),
    )
    on('key.expiry_changed', (e) =>
      logger.info(
        {
          audit: 'admin',
          event: 'key.expiry_changed',
          keyId: e.key.id,
          tenantId: e.key.tenantId,
          expiresAt: e.key.expiresAt,
          previousExpiresAt: e.previousExpiresAt,
          at: e.at,
        },
        'keyrot key expiry changed',
      ),
    )
  }

  if (notices) {
    on('key.used_in_grace', (e) =>
      logger.warn(
        {
          audit: 'notice',
          event: 'key.used_in_grace',
          keyId: e.keyId,
          tenantId: e.tenantId,
          rotatedTo: e.rotatedTo,
          expiresAt: e.expiresAt,
          clientIp: e.clientIp,
          userAgent: e.userAgent,
          at: e.at,
        },
        'keyrot old key used during its grace period',
      ),
    )
    on('key.expired', (e) =>
      logger.info(
        { audit: 'notice', event: 'key.expired', keyId: e.keyId, tenantId: e.tenantId, expiredAt: e.expiredAt, at: e.at },
        'keyrot expired key presented',
      ),
    )
    on('key.grace_ending_soon', (e) =>
      logger.warn(
        {
          audit: 'notice',
          event: 'key.grace_ending_soon',
          keyId: e.keyId,
          tenantId: e.tenantId,
          rotatedTo: e.rotatedTo,
          expiresAt: e.expiresAt,
          remainingMs: e.remainingMs,
          lastUsedInGraceAt: e.lastUsedInGraceAt,
          at: e.at,
        },
        'keyrot grace period ending soon',
      ),
    )
    on('key.expiring_soon', (e) =>
      logger.warn(
        {
          audit: 'notice',
          event: 'key.expiring_soon',
          keyId: e.keyId,
          tenantId: e.tenantId,
          expiresAt: e.expiresAt,
          remainingMs: e.remainingMs,
          lastUsedAt: e.lastUsedAt,
          at: e.at,
        },
        'keyrot key expiring soon',
      ),
    )
    on('cache.reset', (e) =>
      logger.warn({ audit: 'notice', event: 'cache.reset', reason: e.reason, at: e.at }, 'keyrot dropped cached key states'),
    )
  }

  let detached = false
  return function detachAuditLog(): void {
    if (detached) return
    detached = true
    for (const detach of detachers) detach()
  }
}
