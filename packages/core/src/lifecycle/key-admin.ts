import { InvalidInputError, KeyRevokedError } from '../errors.js'
import type { TenantPolicy } from '../policy/policy-options.js'
import { writeTenantPolicy, type TenantPolicyView } from '../policy/tenant-policy.js'
import { toApiKey, type ApiKey } from '../types.js'
import { checkAllowedIps } from './allowed-ips.js'
import { adjustKeyCredits, type KeyCredits } from './credits.js'
import type { KeyringContext } from './keyring-context.js'
import { checkName, checkTenantId, checkTimestamp } from './validate.js'

// The keyring's admin writes to keys it has: revoke, expiry, allowed IPs,
// credits, and tenant rotation policies. The doc comments of the `Keyring`
// methods that run them say what each promises.

/** `keyring.revoke()`. */
export async function revokeKey(context: KeyringContext, keyId: string, options: { reason?: string; incidentId?: string }): Promise<ApiKey> {
  context.assertOpen()
  const now = context.clock.now()
  const reason = options.reason === undefined ? null : checkName(options.reason, 'reason')
  // An incident id ties the revocation to an incident (a leak report: 'leak:github').
  const incidentId = options.incidentId === undefined ? null : checkName(options.incidentId, 'incidentId')
  await context.mustGet(keyId)
  const record = await context.store.revoke({ keyId, at: now, reason, ...(incidentId === null ? {} : { incidentId }) })
  context.reset.observe(record, true)
  context.invalidate(keyId)
  const key = toApiKey(record, now)
  context.events.emit('key.revoked', { key, reason: record.revokedReason, at: now })
  context.audit('key.revoked', { keyId, tenantId: key.tenantId, reason: record.revokedReason })
  await context.historySettled()
  return key
}

/** `keyring.setExpiry()`. */
export async function setKeyExpiry(context: KeyringContext, keyId: string, expiresAt: number | Date | string | null): Promise<ApiKey> {
  context.assertOpen()
  const now = context.clock.now()
  const at = checkTimestamp(expiresAt, 'expiresAt')
  const old = await context.mustGet(keyId)
  if (old.revokedAt !== null) throw new KeyRevokedError(keyId, old.revokedAt, old.revokedReason)
  if (at === null && old.rotatedTo !== null) {
    throw new InvalidInputError('expiresAt', `key ${keyId} was rotated; its grace period needs an end`)
  }
  const record = await context.store.setExpiry(keyId, at)
  context.reset.observe(record, true)
  context.invalidate(keyId)
  const key = toApiKey(record, now)
  context.events.emit('key.expiry_changed', { key, previousExpiresAt: old.expiresAt, at: now })
  context.audit('key.expiry_changed', { keyId, tenantId: key.tenantId, expiresAt: at, previousExpiresAt: old.expiresAt })
  await context.historySettled()
  return key
}

/** `keyring.setAllowedIps()`. */
export async function setKeyAllowedIps(context: KeyringContext, keyId: string, allowedIps: readonly string[] | null): Promise<ApiKey> {
  context.assertOpen()
  const ranges = checkAllowedIps(allowedIps)
  if (!context.store.setAllowedIps) throw new TypeError('this store cannot change allowedIps (no setAllowedIps)')
  await context.mustGet(keyId)
  const record = await context.store.setAllowedIps(keyId, ranges)
  context.invalidate(keyId)
  const key = toApiKey(record, context.clock.now())
  context.audit('key.allowed_ips_changed', { keyId, tenantId: key.tenantId, allowedIps: ranges })
  return key
}

/** `keyring.setCredits()`. */
export async function setKeyCredits(context: KeyringContext, keyId: string, remaining: number): Promise<KeyCredits> {
  context.assertOpen()
  const credits = await adjustKeyCredits(context.store, await context.mustGet(keyId), { set: remaining }, context.clock.now())
  context.audit('key.credits_set', { keyId, remaining: credits.remaining })
  return credits
}

/** `keyring.addCredits()`. */
export async function addKeyCredits(context: KeyringContext, keyId: string, amount: number): Promise<KeyCredits> {
  context.assertOpen()
  const credits = await adjustKeyCredits(context.store, await context.mustGet(keyId), { add: amount }, context.clock.now())
  context.audit('key.credits_added', { keyId, amount, remaining: credits.remaining })
  return credits
}

/** `keyring.setTenantPolicy()`. */
export async function setTenantPolicyOverride(context: KeyringContext, tenantId: string, override: TenantPolicy | null): Promise<TenantPolicyView> {
  context.assertOpen()
  const view = await writeTenantPolicy(context.options, checkTenantId(tenantId), override)
  context.noteTenantPolicy(view.tenantId, view.override)
  context.options.logger.info({ event: 'policy.tenant_changed', tenantId: view.tenantId, override: view.override }, 'keyrot tenant rotation policy changed')
  return view
}
