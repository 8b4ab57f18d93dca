import { formatDuration, type ApiKey } from '@keyrot/core'
import { formatInstant, formatRelative, formatSpan } from './relative-time.js'
import { renderDetails, renderTable } from './table.js'

/** Milliseconds left before a key in its grace period stops working; `null` otherwise. */
export function graceRemainingMs(key: ApiKey, now: number): number | null {
  if (key.state !== 'grace' || key.expiresAt === null) return null
  return Math.max(0, key.expiresAt - now)
}

/** The expiry column: `'in 23h 59m'`, `'expired 2d ago'`, `'revoked 3m ago'`, `'never'`. */
export function describeExpiry(key: ApiKey, now: number): string {
  if (key.state === 'revoked' && key.revokedAt !== null) return `revoked ${formatRelative(key.revokedAt, now)}`
  if (key.expiresAt === null) return 'never'
  if (key.expiresAt <= now) return `expired ${formatRelative(key.expiresAt, now)}`
  return formatRelative(key.expiresAt, now)
}

export function describeRateLimit(rateLimit: ApiKey['rateLimit']): string {
  return rateLimit === null ? 'default' : `${rateLimit.limit} per ${formatDuration(rateLimit.windowMs)}`
}

/** Keys as an aligned table, one per line. */
export function renderKeyTable(keys: readonly ApiKey[], now: number): string {
  return renderTable(
    ['ID', 'TENANT', 'NAME', 'STATE', 'SCOPES', 'EXPIRES', 'LAST USED'],
    keys.map((key) => [
      key.id,
      key.tenantId,
      key.name,
      key.state,
      key.scopes.length === 0 ? '-' : key.scopes.join(','),
      describeExpiry(key, now),
      formatRelative(key.lastUsedAt, now),
    ]),
  )
}

/** Oldest first: the keys this one was rotated from, itself, the keys rotated from it. */
export function renderLineage(lineage: readonly string[], current: string): string {
  return lineage.map((id) => (id === current ? `[${id}]` : id)).join(' -> ')
}

function rotatedWhen(key: ApiKey, now: number): string {
  const when = formatRelative(key.rotatedAt, now)
  return when === 'now' ? 'just now' : when
}

/** One key in full, for `keyrot inspect`. */
export function renderKeyDetails(key: ApiKey, lineage: readonly string[], now: number): string {
  const grace = graceRemainingMs(key, now)
  return renderDetails([
    ['Key', key.id],
    ['Tenant', key.tenantId],
    ['Name', key.name],
    ['State', key.state],
    ['Scopes', key.scopes.length === 0 ? '(none)' : key.scopes.join(', ')],
    ['Prefix', key.prefix],
    ['Created', formatInstant(key.createdAt, now)],
    ['Expires', formatInstant(key.expiresAt, now)],
    ['Grace', grace === null ? undefined : `${formatSpan(grace)} left (rotated to ${key.rotatedTo ?? '?'} ${rotatedWhen(key, now)})`],
    ['Rotated to', grace === null && key.rotatedTo !== null ? `${key.rotatedTo} (${rotatedWhen(key, now)})` : undefined],
    ['Revoked', key.revokedAt === null ? undefined : `${formatInstant(key.revokedAt, now)}${key.revokedReason ? `: ${key.revokedReason}` : ''}`],
    ['Incident', key.incidentId ?? undefined],
    ['Rate limit', describeRateLimit(key.rateLimit)],
    ['Allowed IPs', key.allowedIps === undefined ? undefined : key.allowedIps.join(', ')],
    ['Usage', `${key.usageCount} ${key.usageCount === 1 ? 'request' : 'requests'}`],
    ['Last used', key.lastUsedAt === null ? 'never' : formatInstant(key.lastUsedAt, now)],
    ['Last in grace', key.lastUsedInGraceAt === null ? undefined : formatInstant(key.lastUsedInGraceAt, now)],
    ['Lineage', renderLineage(lineage, key.id)],
    ['Metadata', Object.keys(key.metadata).length === 0 ? undefined : JSON.stringify(key.metadata)],
  ])
}
