import { checkTenantPolicy, DAILY_USAGE_DAYS, DAY_MS, familyOf, isKeyId, utcDay, type TenantPolicy } from '@keyrot/core'
import { runScript } from '../connection.js'
import type { RedisClient } from '../options.js'
import type { UsageDelta } from '../usage-batcher.js'
import { COMPLIANCE_SCRIPTS } from './scripts.js'

/**
 * The Redis side of rotation policies and evidence reports (docs/policies.md):
 *
 * - `<p>:tenant-policy:{<tenantId>}`: a tenant's policy override, JSON. Read
 *   once per tenant per `policy.tenantRefresh` by each replica, never per request.
 * - `<p>:{<family>}:rdue:<keyId>`: "key.rotation-due was emitted", `SET NX`
 *   with a TTL, so one replica of the fleet emits it.
 * - `<p>:{<family>}:usd:<keyId>`: uses per UTC day, written by the usage
 *   flush (one script per key and batch, pipelined with the usage counts).
 */
export class ComplianceKeys {
  readonly #prefix: string
  constructor(prefix: string) {
    this.#prefix = prefix
  }

  tenantPolicy(tenantId: string): string {
    return `${this.#prefix}:tenant-policy:{${tenantId}}`
  }

  rotationDue(keyId: string): string {
    return `${this.#prefix}:{${familyOf(keyId)}}:rdue:${keyId}`
  }

  dailyUsage(keyId: string): string {
    return `${this.#prefix}:{${familyOf(keyId)}}:usd:${keyId}`
  }
}

/** A day hash outlives the last use by the days kept plus one, then Redis drops it. */
const DAILY_TTL_MS = (DAILY_USAGE_DAYS + 1) * DAY_MS

/**
 * A batch's uses per UTC day. The batch's uses are counted on the day of
 * its last use: a batch spans at most one flush interval (1 s by default),
 * so only uses in the interval before midnight UTC can land on the next day.
 */
export function writeDailyUsage(redis: RedisClient, keys: ComplianceKeys, delta: UsageDelta): Promise<unknown> {
  return runScript(redis, COMPLIANCE_SCRIPTS.addDailyUsage, [keys.dailyUsage(delta.keyId)], [utcDay(delta.lastUsedAt), delta.count, DAILY_USAGE_DAYS, DAILY_TTL_MS])
}

/** Uses of each key from the UTC day of `since` on, in one pipelined round trip. */
export async function readUsageSince(redis: RedisClient, keys: ComplianceKeys, keyIds: readonly string[], since: number): Promise<Map<string, number>> {
  const first = utcDay(since)
  const ids = keyIds.filter((keyId) => isKeyId(keyId))
  const replies = await Promise.all(ids.map((keyId) => redis.hgetall(keys.dailyUsage(keyId))))
  const out = new Map<string, number>()
  ids.forEach((keyId, index) => {
    const reply = replies[index]
    if (reply === null || typeof reply !== 'object') return
    let total = 0
    for (const [field, value] of Object.entries(reply)) {
      const day = Number(field)
      const count = Number(value)
      // Parsed defensively: a field that is not a day and a count is ignored.
      if (Number.isSafeInteger(day) && day >= first && Number.isSafeInteger(count) && count > 0) total += count
    }
    if (total > 0) out.set(keyId, total)
  })
  return out
}

/** A tenant's override, or `null`; an unreadable value reads as none (and the caller logs it). */
export async function readTenantPolicy(redis: RedisClient, keys: ComplianceKeys, tenantId: string): Promise<TenantPolicy | null> {
  const raw = await redis.get(keys.tenantPolicy(tenantId))
  if (raw === null || raw === undefined) return null
  try {
    return checkTenantPolicy(JSON.parse(raw))
  } catch {
    throw new TypeError(`the stored policy of tenant ${JSON.stringify(tenantId)} is not valid JSON of a tenant policy`)
  }
}

export async function writeTenantPolicy(redis: RedisClient, keys: ComplianceKeys, tenantId: string, policy: TenantPolicy | null): Promise<void> {
  if (policy === null) await redis.del(keys.tenantPolicy(tenantId))
  else await redis.set(keys.tenantPolicy(tenantId), JSON.stringify(checkTenantPolicy(policy)))
}

/** `SET NX PX`: `true` for the first replica to mark the key. */
export async function markRotationDue(redis: RedisClient, keys: ComplianceKeys, keyId: string, at: number, untilAt: number): Promise<boolean> {
  const reply = await redis.set(keys.rotationDue(keyId), String(at), 'PX', Math.max(1, untilAt - at), 'NX')
  return reply === 'OK'
}
