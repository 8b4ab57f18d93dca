import { Counter, type Registry } from 'prom-client'
import type { Keyring } from '../lifecycle/keyring.js'

/** Label value for every tenant past the first `maxTenants` seen. */
const OTHER = '_other'

/**
 * Failures that are the client's doing, not the infrastructure's: a store or
 * overload refusal says nothing about who is attacking which tenant.
 */
const INFRASTRUCTURE_CODE = /^KEYROT_(STORE_|OVERLOADED$)/

/**
 * `keyrot_tenant_failures_total{tenant}`: failed verifications of keys that
 * belong to a tenant (wrong secret, revoked, expired, missing scope, rate
 * limited), the series behind the "failure spike per tenant" alert.
 * Failures with no tenant (malformed token, unknown key id) are not here:
 * there is no key to attribute them to, and they stay in
 * `keyrot_verifications_total`.
 *
 * Bounded: the first `maxTenants` tenants that fail get their own label, the
 * rest share `_other`. Opt-in (`tenantFailures: true`) because the label
 * names tenants and tells a reader of `/metrics` which tenant a failing key
 * id belongs to: serve `/metrics` to monitoring only.
 */
export function countTenantFailures(options: {
  keyring: Keyring
  name: string
  registers: Registry[]
  maxTenants: number
}): () => void {
  const counter = new Counter({
    name: options.name,
    help: `Failed verifications of keys that belong to a tenant (not store outages), by tenant; tenants past the first ${options.maxTenants} seen share tenant="${OTHER}".`,
    labelNames: ['tenant'] as const,
    registers: options.registers,
  })
  const named = new Set<string>()
  return options.keyring.on('verification.failed', (event) => {
    if (event.tenantId === undefined || INFRASTRUCTURE_CODE.test(event.code)) return
    let tenant = event.tenantId
    if (!named.has(tenant)) {
      if (named.size < options.maxTenants) named.add(tenant)
      else tenant = OTHER
    }
    counter.inc({ tenant })
  })
}
