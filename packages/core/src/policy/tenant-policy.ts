import { InvalidInputError } from '../errors.js'
import type { ResolvedKeyringOptions } from '../options.js'
import { checkTenantPolicy, effectivePolicy, type RotationPolicy, type TenantPolicy } from './policy-options.js'

/** A tenant's policy as the admin API and the CLI show it. */
export interface TenantPolicyView {
  tenantId: string
  /** The stored override; `null` when the tenant follows the keyring's policy. */
  override: TenantPolicy | null
  /** The policy in force: the override over the keyring's. `maxAgeMs` `0`: no maximum age. */
  policy: RotationPolicy
}

const NO_POLICY: RotationPolicy = Object.freeze({ maxAgeMs: 0, rotationWarningMs: 0, enforce: false })

/** The keyring's own policy; a keyring without one enforces nothing. */
export function keyringPolicy(options: Pick<ResolvedKeyringOptions, 'policy'>): RotationPolicy {
  return options.policy?.defaults ?? NO_POLICY
}

/** Reads a tenant's override from the store (none when the store keeps no tenant policies). */
export async function readTenantPolicy(options: Pick<ResolvedKeyringOptions, 'policy' | 'store'>, tenantId: string): Promise<TenantPolicyView> {
  const override = (await options.store.getTenantPolicy?.(tenantId)) ?? null
  return { tenantId, override, policy: effectivePolicy(keyringPolicy(options), override) }
}

/** Checks and stores a tenant's override. Bad fields are `InvalidInputError`s (400), naming the field. */
export async function writeTenantPolicy(options: Pick<ResolvedKeyringOptions, 'policy' | 'store'>, tenantId: string, override: TenantPolicy | null): Promise<TenantPolicyView> {
  const store = options.store
  if (typeof store.setTenantPolicy !== 'function') throw new TypeError('this store keeps no tenant policies (it has no setTenantPolicy())')
  let checked: TenantPolicy | null = null
  if (override !== null) {
    try {
      checked = checkTenantPolicy(override)
    } catch (error) {
      const field = /tenant policy (\w+)/.exec((error as Error).message)?.[1] ?? 'policy'
      throw new InvalidInputError(field, (error as Error).message)
    }
  }
  // An empty override is no override.
  const stored = checked !== null && Object.keys(checked).length > 0 ? checked : null
  // A warning set here that starts before the key exists says nothing useful: refused, as at createKeyring.
  const inForce = effectivePolicy(keyringPolicy(options), stored)
  if (stored?.rotationWarningMs !== undefined && inForce.maxAgeMs > 0 && inForce.rotationWarningMs > inForce.maxAgeMs) {
    throw new InvalidInputError('rotationWarning', `must not exceed maxAge (${inForce.maxAgeMs} ms in force for this tenant); got ${inForce.rotationWarningMs} ms`)
  }
  await store.setTenantPolicy(tenantId, stored)
  return { tenantId, override: stored, policy: effectivePolicy(keyringPolicy(options), stored) }
}
