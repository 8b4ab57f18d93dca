import { decideAdjust, decideSpend, refilled, stateOfBalance, type CreditBalance, type CreditsRefill, type CreditsState } from '../credits/credits.js'
import { InvalidInputError, KeyNotFoundError } from '../errors.js'
import { assertRotatable } from '../lifecycle/succession.js'
import { DailyUsage } from '../policy/daily-usage.js'
import { checkTenantPolicy, type TenantPolicy } from '../policy/policy-options.js'
import type { KeyRecord } from '../types.js'
import { emptyRotationUsage, ROTATION_USAGE_LIMITS, RotationTally, type RotationUsage, type RotationUsageQuery, type RotationUse } from './rotation-usage.js'
import type {
  AdjustCreditsInput,
  EmergencyRotateInput,
  InvalidationListener,
  KeyStore,
  ListQuery,
  RevokeInput,
  RotateInput,
  SpendCreditsInput,
} from './store.js'

function clone(record: KeyRecord): KeyRecord {
  return {
    ...record,
    scopes: [...record.scopes],
    metadata: structuredClone(record.metadata),
    rateLimit: record.rateLimit ? { ...record.rateLimit } : null,
    ...(record.credits ? { credits: { refill: record.credits.refill ? { ...record.credits.refill } : null } } : {}),
    ...(record.allowedIps ? { allowedIps: [...record.allowedIps] } : {}),
  }
}

/** A new key has no shared proof yet: only a verify of its token writes one (`putProof`). */
function withoutProof(record: KeyRecord): KeyRecord {
  const copy = clone(record)
  delete copy.sharedProof
  return copy
}

/**
 * The embedded store: keys in a `Map`, for one process. Every operation runs
 * synchronously between two awaits, so each is atomic. Keyrings sharing one
 * `MemoryStore` in a process are told of each other's changes.
 *
 * State is lost when the process exits: use `@keyrot/redis` for anything that
 * must outlive it or be shared by replicas.
 */
export class MemoryStore implements KeyStore {
  readonly #keys = new Map<string, KeyRecord>()
  readonly #listeners = new Set<InvalidationListener>()
  readonly #rotation = new Map<string, RotationTally>()
  /** Credit balances by family id (see credits/credits.ts). */
  readonly #credits = new Map<string, CreditBalance>()
  readonly #daily = new DailyUsage()
  readonly #tenantPolicies = new Map<string, TenantPolicy>()
  readonly #rotationDue = new Map<string, number>()
  /** Imported keys by the keyed index of their token. */
  readonly #imported = new Map<string, string>()

  /** Number of stored records (any state). */
  get size(): number {
    return this.#keys.size
  }

  async insert(record: KeyRecord): Promise<void> {
    if (this.#keys.has(record.id)) throw new InvalidInputError('id', `key ${record.id} already exists`)
    this.#keys.set(record.id, withoutProof(record))
  }

  async get(keyId: string): Promise<KeyRecord | null> {
    const record = this.#keys.get(keyId)
    return record ? clone(record) : null
  }

  #mustGet(keyId: string): KeyRecord {
    const record = this.#keys.get(keyId)
    if (!record) throw new KeyNotFoundError(keyId)
    return record
  }

  async rotate(input: RotateInput): Promise<{ previous: KeyRecord; next: KeyRecord }> {
    const old = this.#mustGet(input.oldKeyId)
    assertRotatable(old, input.now)
    if (this.#keys.has(input.newKey.id)) throw new InvalidInputError('id', `key ${input.newKey.id} already exists`)
    old.rotatedTo = input.newKey.id
    old.rotatedAt = input.now
    delete old.sharedProof
    old.expiresAt = old.expiresAt === null ? input.graceDeadline : Math.min(old.expiresAt, input.graceDeadline)
    this.#keys.set(input.newKey.id, withoutProof(input.newKey))
    this.#notify(old.id)
    return { previous: clone(old), next: withoutProof(input.newKey) }
  }

  async revoke(input: RevokeInput): Promise<KeyRecord> {
    const record = this.#mustGet(input.keyId)
    if (record.revokedAt === null) {
      record.revokedAt = input.at
      record.revokedReason = input.reason
      record.incidentId = input.incidentId ?? null
      delete record.sharedProof
      this.#notify(record.id)
    }
    return clone(record)
  }

  async emergencyRotate(input: EmergencyRotateInput): Promise<{ revoked: KeyRecord; next: KeyRecord }> {
    const old = this.#mustGet(input.oldKeyId)
    assertRotatable(old, input.at)
    if (this.#keys.has(input.newKey.id)) throw new InvalidInputError('id', `key ${input.newKey.id} already exists`)
    old.revokedAt = input.at
    old.revokedReason = input.reason
    old.incidentId = input.incidentId
    old.rotatedTo = input.newKey.id
    old.rotatedAt = input.at
    delete old.sharedProof
    this.#keys.set(input.newKey.id, withoutProof(input.newKey))
    this.#notify(old.id)
    return { revoked: clone(old), next: withoutProof(input.newKey) }
  }

  async setExpiry(keyId: string, expiresAt: number | null): Promise<KeyRecord> {
    const record = this.#mustGet(keyId)
    record.expiresAt = expiresAt
    this.#notify(keyId)
    return clone(record)
  }

  /** Writes a revocation back (see `KeyStore.restoreRevocation`): only ever tightens. */
  async restoreRevocation(record: KeyRecord): Promise<boolean> {
    if (record.revokedAt === null) throw new InvalidInputError('revokedAt', 'a restored revocation must be revoked')
    const stored = this.#keys.get(record.id)
    if (stored && stored.revokedAt !== null) return false
    if (stored) {
      stored.revokedAt = record.revokedAt
      stored.revokedReason = record.revokedReason
      stored.incidentId = record.incidentId
    } else {
      this.#keys.set(record.id, clone(record))
    }
    this.#notify(record.id)
    return true
  }

  async setAllowedIps(keyId: string, allowedIps: string[] | null): Promise<KeyRecord> {
    const record = this.#mustGet(keyId)
    if (allowedIps === null) delete record.allowedIps
    else record.allowedIps = [...allowedIps]
    this.#notify(keyId)
    return clone(record)
  }

  async findImported(index: string): Promise<string | null> {
    return this.#imported.get(index) ?? null
  }

  async putImportIndex(index: string, keyId: string): Promise<string> {
    const holder = this.#imported.get(index)
    if (holder !== undefined) return holder
    this.#imported.set(index, keyId)
    return keyId
  }

  async dropImportIndex(index: string, keyId: string): Promise<void> {
    if (this.#imported.get(index) === keyId) this.#imported.delete(index)
  }

  // A revoked imported key keeps its index entry: importing its token again finds the revoked key instead of minting a live one.

  async updateHash(keyId: string, hash: string, replacing?: string): Promise<boolean> {
    const record = this.#mustGet(keyId)
    if (replacing !== undefined && record.hash !== replacing) return false
    record.hash = hash
    return true
  }

  async putProof(keyId: string, proof: string): Promise<boolean> {
    const record = this.#keys.get(keyId)
    if (!record || record.revokedAt !== null || record.rotatedTo !== null) return false
    record.sharedProof = proof
    return true
  }

  recordUsage(keyId: string, at: number, inGrace: boolean, rotation?: RotationUse): void {
    const record = this.#keys.get(keyId)
    if (!record) return
    record.usageCount += 1
    record.lastUsedAt = at
    if (inGrace) record.lastUsedInGraceAt = at
    this.#daily.add(keyId, at)
    if (rotation) {
      let tally = this.#rotation.get(keyId)
      if (!tally) this.#rotation.set(keyId, (tally = new RotationTally()))
      tally.add(at, inGrace, rotation)
    }
  }

  async rotationUsage(keyId: string, query: RotationUsageQuery): Promise<RotationUsage> {
    const tally = this.#rotation.get(keyId)
    // Like the Redis store's TTL: nothing is kept past the retention after the last use.
    const retentionMs = ROTATION_USAGE_LIMITS.retentionMinutes * ROTATION_USAGE_LIMITS.bucketMs
    if (!tally || tally.lastUsedAt === null || tally.lastUsedAt <= query.now - retentionMs) return emptyRotationUsage(keyId, query)
    return tally.read(keyId, query)
  }

  /** Atomic: the decision and the write run with no await in between. */
  async spendCredits(input: SpendCreditsInput): Promise<{ ok: boolean; state: CreditsState }> {
    const decision = decideSpend(this.#credits.get(input.familyId) ?? null, input.refill, input.cost, input.now)
    this.#credits.set(input.familyId, decision.balance)
    return { ok: decision.ok, state: decision.state }
  }

  async readCredits(familyId: string, refill: CreditsRefill | null, now: number): Promise<CreditsState> {
    return stateOfBalance(refilled(this.#credits.get(familyId) ?? null, refill, now), refill)
  }

  async adjustCredits(input: AdjustCreditsInput): Promise<CreditsState> {
    const balance = decideAdjust(this.#credits.get(input.familyId) ?? null, input.refill, input.change, input.now)
    this.#credits.set(input.familyId, balance)
    return stateOfBalance(balance, input.refill)
  }

  async list(query: ListQuery): Promise<KeyRecord[]> {
    const out: KeyRecord[] = []
    for (const record of this.#keys.values()) {
      if (query.tenantId === undefined || record.tenantId === query.tenantId) out.push(clone(record))
    }
    out.sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? -1 : 1))
    return query.limit === undefined ? out : out.slice(0, query.limit)
  }

  async usageSince(keyIds: readonly string[], since: number): Promise<Map<string, number>> {
    return this.#daily.since(keyIds, since)
  }

  async getTenantPolicy(tenantId: string): Promise<TenantPolicy | null> {
    const policy = this.#tenantPolicies.get(tenantId)
    return policy ? { ...policy } : null
  }

  async setTenantPolicy(tenantId: string, policy: TenantPolicy | null): Promise<void> {
    if (policy === null) this.#tenantPolicies.delete(tenantId)
    else this.#tenantPolicies.set(tenantId, checkTenantPolicy(policy))
  }

  async markRotationDue(keyId: string, at: number, untilAt: number): Promise<boolean> {
    const until = this.#rotationDue.get(keyId)
    if (until !== undefined && until > at) return false
    this.#rotationDue.set(keyId, untilAt)
    return true
  }

  subscribe(listener: InvalidationListener): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  #notify(keyId: string): void {
    for (const listener of this.#listeners) listener({ type: 'key', keyId })
  }

  async close(): Promise<void> {
    this.#listeners.clear()
  }
}
