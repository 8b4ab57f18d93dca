/** One UTC day in ms. */
export const DAY_MS = 86_400_000
/** Days of per-day usage a store keeps: the 30 days of an evidence report and today. */
export const DAILY_USAGE_DAYS = 31

/** The UTC day number (days since the epoch) of an instant. */
export function utcDay(at: number): number {
  return Math.floor(at / DAY_MS)
}

/**
 * Uses per key per UTC day, for the memory store: the "last 30 days" column
 * of evidence reports. Days older than {@link DAILY_USAGE_DAYS} are dropped
 * when a key starts a new day, so a key holds at most that many counters.
 */
export class DailyUsage {
  readonly #days = new Map<string, Map<number, number>>()

  add(keyId: string, at: number, count = 1): void {
    const day = utcDay(at)
    let days = this.#days.get(keyId)
    if (!days) this.#days.set(keyId, (days = new Map()))
    const current = days.get(day)
    if (current !== undefined) {
      days.set(day, current + count)
      return
    }
    days.set(day, count)
    for (const old of days.keys()) if (old <= day - DAILY_USAGE_DAYS) days.delete(old)
  }

  /** Uses of each key from the UTC day of `since` on; keys without any are left out. */
  since(keyIds: readonly string[], since: number): Map<string, number> {
    const first = utcDay(since)
    const out = new Map<string, number>()
    for (const keyId of keyIds) {
      const days = this.#days.get(keyId)
      if (!days) continue
      let total = 0
      for (const [day, count] of days) if (day >= first) total += count
      if (total > 0) out.set(keyId, total)
    }
    return out
  }
}
