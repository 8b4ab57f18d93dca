import { parseDuration, type Duration } from '../duration.js'

/**
 * A rotation policy (SOC 2, PCI DSS 3.6.4 "cryptoperiod"): how old a key may
 * get before it is due for rotation. See docs/policies.md.
 */
export interface RotationPolicyOptions {
  /**
   * Age, counted from the key's own `createdAt` (a rotated successor is a new
   * key), at which a key is due for rotation. ms or `'90d'`. Default `0`:
   * no maximum age for tenants without their own policy (per-tenant policies
   * set through `keyring.setTenantPolicy()` or the admin API still apply).
   */
  maxAge?: Duration
  /**
   * How long before `maxAge` the warnings start: the `Deprecation` header
   * (RFC 9745) on every response of the key and one `key.rotation-due` event.
   * ms or `'14d'`. Default `'14d'`, capped at `maxAge` (a value set above `maxAge` is refused). `0`: warn only once
   * the key is due.
   */
  rotationWarning?: Duration
  /**
   * Overdue keys stop verifying: `KEYROT_KEY_EXPIRED`, only after the secret
   * was proven, like any expiry. Evaluated at verify time, never by a timer.
   * Default `false` (overdue keys keep working and carry the warning).
   */
  enforce?: boolean
  /**
   * How long a replica uses a tenant's policy read from the store before it
   * reads it again (in the background; the verify that notices does not
   * wait). A change made on this replica applies at once; on the others
   * within this time. ms or `'30s'`. Default `'30s'`.
   */
  tenantRefresh?: Duration
}

/** A rotation policy with every field resolved. `maxAgeMs` `0`: no maximum age. */
export interface RotationPolicy {
  maxAgeMs: number
  rotationWarningMs: number
  enforce: boolean
}

/**
 * A tenant's override as stored: fields left out inherit the keyring's
 * policy. `maxAgeMs: 0` turns the maximum age off for the tenant.
 */
export interface TenantPolicy {
  maxAgeMs?: number
  rotationWarningMs?: number
  enforce?: boolean
}

export interface ResolvedRotationPolicyOptions {
  defaults: RotationPolicy
  tenantRefreshMs: number
}

/** The default warning window; a policy's warning never starts before the key exists. */
/** The longest `maxAge`/`rotationWarning` (100 years): due dates stay printable dates. */
export const MAX_POLICY_AGE_MS = 100 * 365.25 * 86_400_000

export const DEFAULT_ROTATION_WARNING_MS = 14 * 86_400_000
const DEFAULT_TENANT_REFRESH_MS = 30_000

/** Resolves `createKeyring({ policy })`; `undefined` or `false` is `null` (no policy work at all on verify). */
export function resolveRotationPolicyOptions(value: RotationPolicyOptions | false | undefined): ResolvedRotationPolicyOptions | null {
  if (value === undefined || value === false) return null
  if (value === null || typeof value !== 'object') throw new TypeError('policy must be an object: { maxAge?, rotationWarning?, enforce?, tenantRefresh? }')
  const maxAgeMs = parseDuration(value.maxAge ?? 0, 'policy.maxAge')
  const warning = parseDuration(value.rotationWarning ?? DEFAULT_ROTATION_WARNING_MS, 'policy.rotationWarning')
  if (value.enforce !== undefined && typeof value.enforce !== 'boolean') throw new TypeError('policy.enforce must be a boolean')
  if (maxAgeMs > MAX_POLICY_AGE_MS) throw new TypeError(`policy.maxAge must be at most 100 years (${MAX_POLICY_AGE_MS} ms); got ${maxAgeMs}`)
  // The default warning is capped at maxAge; an explicit one longer than maxAge is a contradiction.
  if (value.rotationWarning !== undefined && maxAgeMs > 0 && warning > maxAgeMs) {
    throw new TypeError(`policy.rotationWarning (${warning} ms) must not exceed policy.maxAge (${maxAgeMs} ms)`)
  }
  const tenantRefreshMs = parseDuration(value.tenantRefresh ?? DEFAULT_TENANT_REFRESH_MS, 'policy.tenantRefresh')
  if (tenantRefreshMs === 0) throw new TypeError('policy.tenantRefresh must be greater than 0 (a store read per verify is not an option)')
  return { defaults: { maxAgeMs, rotationWarningMs: warning, enforce: value.enforce ?? false }, tenantRefreshMs }
}

/**
 * Checks a tenant override (from an API body or the store). Throws a
 * `TypeError` naming the field; returns a copy holding only known fields.
 */
export function checkTenantPolicy(value: unknown): TenantPolicy {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new TypeError('tenant policy must be an object: { maxAgeMs?, rotationWarningMs?, enforce? }')
  const input = value as Record<string, unknown>
  const out: TenantPolicy = {}
  for (const name of ['maxAgeMs', 'rotationWarningMs'] as const) {
    const field = input[name]
    if (field === undefined) continue
    if (typeof field !== 'number' || !Number.isSafeInteger(field) || field < 0) throw new TypeError(`tenant policy ${name} must be a non-negative integer (ms)`)
    // Past this, `createdAt + maxAge` leaves the range of a Date and the report could not print it.
    if (field > MAX_POLICY_AGE_MS) throw new TypeError(`tenant policy ${name} must be at most 100 years (${MAX_POLICY_AGE_MS} ms)`)
    out[name] = field
  }
  if (input.enforce !== undefined) {
    if (typeof input.enforce !== 'boolean') throw new TypeError('tenant policy enforce must be a boolean')
    out.enforce = input.enforce
  }
  return out
}

/** The policy in force for a tenant: its override over the keyring's defaults. */
export function effectivePolicy(defaults: RotationPolicy, override: TenantPolicy | null): RotationPolicy {
  if (override === null) return defaults
  return {
    maxAgeMs: override.maxAgeMs ?? defaults.maxAgeMs,
    rotationWarningMs: override.rotationWarningMs ?? defaults.rotationWarningMs,
    enforce: override.enforce ?? defaults.enforce,
  }
}

/** Where a key stands against a policy, when it is subject to one and inside the warning window. */
export interface RotationDue {
  /** Epoch ms at which the key reaches `maxAge`. */
  dueAt: number
  /** Epoch ms from which warnings are given (`dueAt - rotationWarning`, not before `createdAt`). */
  warnFrom: number
  /** The key is past `dueAt`. */
  overdue: boolean
  /** The policy expires overdue keys (`enforce`). */
  enforced: boolean
}

/**
 * The due and warning instants of a key under a policy, or `null` when the
 * policy does not apply to it: no maximum age, or the key already left
 * active service (revoked, or rotated: its successor is the key that counts).
 * Pure: the verifier calls it once per cached record.
 */
export function dueWindowOf(record: { createdAt: number; revokedAt: number | null; rotatedTo: string | null }, policy: RotationPolicy): { dueAt: number; warnFrom: number } | null {
  if (policy.maxAgeMs === 0 || record.revokedAt !== null || record.rotatedTo !== null) return null
  const dueAt = record.createdAt + policy.maxAgeMs
  return { dueAt, warnFrom: Math.max(record.createdAt, dueAt - policy.rotationWarningMs) }
}

/** Where a key stands at `now`: `compliant` (before the warning), `due` (in the warning window), `overdue`, or `null` when no policy applies. */
export function complianceOf(window: { dueAt: number; warnFrom: number } | null, now: number): 'compliant' | 'due' | 'overdue' | null {
  if (window === null) return null
  if (now >= window.dueAt) return 'overdue'
  return now >= window.warnFrom ? 'due' : 'compliant'
}
