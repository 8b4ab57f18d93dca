import type { HistoryEntry } from '../audit/history.js'
import { InvalidInputError } from '../errors.js'
import type { Keyring } from '../lifecycle/keyring.js'
import type { ApiKey, KeyState } from '../types.js'
import { DAY_MS, utcDay } from './daily-usage.js'
import { complianceOf, dueWindowOf, effectivePolicy, type RotationPolicy } from './policy-options.js'
import { keyringPolicy } from './tenant-policy.js'

/**
 * Where a key stands against its tenant's rotation policy:
 * `compliant` (younger than `maxAge - rotationWarning`), `due` (in the
 * warning window), `overdue` (older than `maxAge`), `retired` (rotated,
 * revoked or expired: no longer in service, its successor is judged
 * instead), `no-policy` (its tenant has no maximum age).
 */
export type Compliance = 'compliant' | 'due' | 'overdue' | 'retired' | 'no-policy'

/** One key of an evidence report. Instants are ISO 8601 (UTC); `null` means never / not applicable. */
export interface EvidenceRow {
  keyId: string
  tenantId: string
  name: string
  state: KeyState
  createdAt: string
  /** When the key was rotated (it has a successor), else when its predecessor was rotated into it; `null`: never rotated. */
  lastRotatedAt: string | null
  /** Days since the key's own `createdAt` (a successor is a new key), one decimal. */
  ageDays: number
  /** `createdAt + maxAge` under its tenant's policy; `null` without a maximum age. */
  dueAt: string | null
  compliance: Compliance
  lastUsedAt: string | null
  /** Uses on the last 30 UTC days (today and the 29 before); `null` when the store keeps no per-day usage. */
  usesLast30Days: number | null
  /** Actor of the rotation in `lastRotatedAt`, from the admin history; `unrecorded` when the history has the rotation without an actor; `null` when not rotated or no history. */
  rotatedBy: string | null
  /** Actor of the revocation (an emergency rotation, a leak report); same conventions as `rotatedBy`. */
  revokedBy: string | null
}

export interface EvidenceSummary {
  keys: number
  /** Compliant keys, counting retired keys and keys without a policy. */
  compliant: number
  due: number
  overdue: number
  generatedAt: string
}

export interface EvidenceReport {
  tenantId: string | null
  rows: EvidenceRow[]
  summary: EvidenceSummary
}

export interface EvidenceReportOptions {
  /** Only this tenant's keys. Default: every tenant. */
  tenantId?: string
  /** The policy of tenants without an override. Default: the keyring's `policy` (none: no maximum age). */
  defaults?: RotationPolicy
  /** Newest admin history entries read for the "who" columns. Default 10,000. */
  historyLimit?: number
}

const REPORT_DAYS = 30

/** Who did an entry's action: its actor, the provider of a leak report, else `unrecorded`. */
function actorOf(entry: HistoryEntry): string {
  if (entry.actor !== undefined) return entry.actor
  if (entry.action === 'key.leaked' && entry.incidentId !== undefined) return entry.incidentId
  return 'unrecorded'
}

function iso(at: number | null): string | null {
  return at === null ? null : new Date(at).toISOString()
}

/**
 * Builds the compliance evidence report (docs/policies.md#evidence-report):
 * every key with its tenant, creation, last rotation, age, due date, state,
 * last use, uses on the last 30 days and who rotated or revoked it, and a
 * summary. Reads the keys, each tenant's policy once, per-day usage in one
 * store call and the newest `historyLimit` history entries (when the keyring
 * has a `history`).
 */
export async function buildEvidenceReport(keyring: Keyring, options: EvidenceReportOptions = {}): Promise<EvidenceReport> {
  const now = keyring.clock.now()
  const historyLimit = options.historyLimit ?? 10_000
  if (!Number.isSafeInteger(historyLimit) || historyLimit < 0) throw new InvalidInputError('historyLimit', 'must be a non-negative integer')
  const keys = await keyring.list(options.tenantId === undefined ? {} : { tenantId: options.tenantId })
  const defaults = options.defaults ?? keyringPolicy(keyring.options)
  const store = keyring.store

  const policies = await policiesOf(keyring, keys, defaults)
  const since = (utcDay(now) - (REPORT_DAYS - 1)) * DAY_MS
  const usage = store.usageSince ? await store.usageSince(keys.map((key) => key.id), since) : null
  const history = keyring.options.history ? await keyring.options.history.read({ limit: historyLimit }) : null
  const rotations = new Map<string, HistoryEntry>()
  const creations = new Map<string, HistoryEntry>()
  const revocations = new Map<string, HistoryEntry>()
  for (const entry of history ?? []) {
    if (entry.action === 'key.rotated' || entry.action === 'key.emergency_rotated') {
      rotations.set(entry.keyId, entry)
      if (entry.newKeyId !== undefined) creations.set(entry.newKeyId, entry)
    }
    if (entry.action === 'key.revoked' || entry.action === 'key.emergency_rotated' || (entry.action === 'key.leaked' && entry.reason?.includes('(notify)') !== true)) {
      if (!revocations.has(entry.keyId)) revocations.set(entry.keyId, entry)
    }
  }

  const summary: EvidenceSummary = { keys: keys.length, compliant: 0, due: 0, overdue: 0, generatedAt: new Date(now).toISOString() }
  const rows = keys.map((key) => {
    const row = evidenceRow(key, policies.get(key.tenantId) as RotationPolicy, now, usage, history !== null, rotations, creations, revocations)
    if (row.compliance === 'due') summary.due++
    else if (row.compliance === 'overdue') summary.overdue++
    else summary.compliant++
    return row
  })
  return { tenantId: options.tenantId ?? null, rows, summary }
}

/** Each tenant's policy in force, one store read per tenant. */
async function policiesOf(keyring: Keyring, keys: readonly ApiKey[], defaults: RotationPolicy): Promise<Map<string, RotationPolicy>> {
  const policies = new Map<string, RotationPolicy>()
  for (const tenantId of new Set(keys.map((key) => key.tenantId))) {
    const override = (await keyring.store.getTenantPolicy?.(tenantId)) ?? null
    policies.set(tenantId, effectivePolicy(defaults, override))
  }
  return policies
}

/** A key past its policy's warning instant: what the dashboard's "Due for rotation" view lists. */
export type KeyDueForRotation = ApiKey & { dueAt: number; compliance: 'due' | 'overdue' }

/**
 * Active keys due (in the warning window) or overdue under their tenant's
 * rotation policy, soonest due first.
 */
export async function keysDueForRotation(keyring: Keyring, options: Pick<EvidenceReportOptions, 'tenantId' | 'defaults'> = {}): Promise<KeyDueForRotation[]> {
  const now = keyring.clock.now()
  const keys = await keyring.list(options.tenantId === undefined ? { state: 'active' } : { tenantId: options.tenantId, state: 'active' })
  const policies = await policiesOf(keyring, keys, options.defaults ?? keyringPolicy(keyring.options))
  const due: KeyDueForRotation[] = []
  for (const key of keys) {
    const window = dueWindowOf(key, policies.get(key.tenantId) as RotationPolicy)
    const compliance = complianceOf(window, now)
    if (window && (compliance === 'due' || compliance === 'overdue')) due.push({ ...key, dueAt: window.dueAt, compliance })
  }
  return due.sort((a, b) => a.dueAt - b.dueAt)
}

function evidenceRow(
  key: ApiKey,
  policy: RotationPolicy,
  now: number,
  usage: Map<string, number> | null,
  hasHistory: boolean,
  rotations: Map<string, HistoryEntry>,
  creations: Map<string, HistoryEntry>,
  revocations: Map<string, HistoryEntry>,
): EvidenceRow {
  const lastRotatedAt = key.rotatedAt ?? (key.rotatedFrom !== null ? key.createdAt : null)
  const rotation = key.rotatedAt !== null ? rotations.get(key.id) : key.rotatedFrom !== null ? creations.get(key.id) : undefined
  const retired = key.state !== 'active'
  const window = dueWindowOf(key, policy)
  const compliance: Compliance = retired ? 'retired' : (complianceOf(window, now) ?? 'no-policy')
  const revocation = key.revokedAt !== null ? revocations.get(key.id) : undefined
  return {
    keyId: key.id,
    tenantId: key.tenantId,
    name: key.name,
    state: key.state,
    createdAt: iso(key.createdAt) as string,
    lastRotatedAt: iso(lastRotatedAt),
    ageDays: Math.floor(((now - key.createdAt) / DAY_MS) * 10) / 10,
    dueAt: policy.maxAgeMs === 0 ? null : iso(key.createdAt + policy.maxAgeMs),
    compliance,
    lastUsedAt: iso(key.lastUsedAt),
    usesLast30Days: usage === null ? null : (usage.get(key.id) ?? 0),
    rotatedBy: rotation ? actorOf(rotation) : lastRotatedAt !== null && hasHistory ? 'unrecorded' : null,
    revokedBy: revocation ? actorOf(revocation) : key.revokedAt !== null && hasHistory ? 'unrecorded' : null,
  }
}

const CSV_COLUMNS: ReadonlyArray<[keyof EvidenceRow, string]> = [
  ['keyId', 'key_id'],
  ['tenantId', 'tenant_id'],
  ['name', 'name'],
  ['state', 'state'],
  ['createdAt', 'created_at'],
  ['lastRotatedAt', 'last_rotated_at'],
  ['ageDays', 'age_days'],
  ['dueAt', 'due_at'],
  ['compliance', 'compliance'],
  ['lastUsedAt', 'last_used_at'],
  ['usesLast30Days', 'uses_30d'],
  ['rotatedBy', 'rotated_by'],
  ['revokedBy', 'revoked_by'],
]

/**
 * One CSV cell (RFC 4180 quoting). A text starting with `= + - @` or a tab
 * gets a leading `'`, so a spreadsheet does not run a key name as a formula.
 */
function csvCell(value: unknown): string {
  if (value === null || value === undefined) return ''
  let text = String(value)
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(text)) text = `'${text}`
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}

/** The summary as the report's last line says it. */
export function summaryLine(summary: EvidenceSummary): string {
  return `# summary: keys=${summary.keys} compliant=${summary.compliant} due=${summary.due} overdue=${summary.overdue} generated_at=${summary.generatedAt}`
}

/** The report as CSV: a header, one line per key, and the summary as its last line. */
export function evidenceCsv(report: EvidenceReport): string {
  const lines = [CSV_COLUMNS.map(([, header]) => header).join(',')]
  for (const row of report.rows) lines.push(CSV_COLUMNS.map(([field]) => csvCell(row[field])).join(','))
  lines.push(summaryLine(report.summary))
  return `${lines.join('\n')}\n`
}

/** The report as JSON Lines: one object per key, and `{"summary": {...}}` as the last line. */
export function evidenceJsonLines(report: EvidenceReport): string {
  const lines = report.rows.map((row) => JSON.stringify(row))
  lines.push(JSON.stringify({ summary: report.summary }))
  return `${lines.join('\n')}\n`
}
