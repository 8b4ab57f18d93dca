import { newFamilyId, type KeyRecord, type KeyStore } from '@keyrot/core'
import { describe, expect, it } from 'vitest'

const DAY = 86_400_000

/**
 * Credit balances (`spendCredits`, `readCredits`, `adjustCredits`): the
 * rules of core's `decideSpend`/`decideAdjust` at the boundaries, records
 * that keep their `credits` configuration, and spends that race without
 * overspending. Every store with credits passes it.
 */
export function describeCreditsContract(
  context: () => { store: KeyStore; peer?: KeyStore },
  makeRecord: (overrides?: Partial<KeyRecord>) => Promise<KeyRecord>,
): void {
  describe('credits', () => {
    function methods(store: KeyStore) {
      const { spendCredits, readCredits, adjustCredits } = store
      if (!spendCredits || !readCredits || !adjustCredits) throw new Error('the store has no credits')
      return {
        spend: (familyId: string, cost: number, now: number, refill: { amount: number; intervalMs: number } | null = null) =>
          spendCredits.call(store, { familyId, cost, refill, now }),
        read: (familyId: string, now: number, refill: { amount: number; intervalMs: number } | null = null) => readCredits.call(store, familyId, refill, now),
        set: (familyId: string, n: number, now: number, refill: { amount: number; intervalMs: number } | null = null) =>
          adjustCredits.call(store, { familyId, change: { set: n }, refill, now }),
        add: (familyId: string, n: number, now: number, refill: { amount: number; intervalMs: number } | null = null) =>
          adjustCredits.call(store, { familyId, change: { add: n }, refill, now }),
      }
    }

    it('keeps a record\'s credits configuration, and no field for a key without credits', async () => {
      const { store } = context()
      const withCredits = await makeRecord({ credits: { refill: { amount: 1000, intervalMs: DAY } } })
      const without = await makeRecord()
      const empty = await makeRecord({ credits: { refill: null } })
      for (const record of [withCredits, without, empty]) await store.insert(record)
      expect((await store.get(withCredits.id))?.credits).toEqual({ refill: { amount: 1000, intervalMs: DAY } })
      expect((await store.get(empty.id))?.credits).toEqual({ refill: null })
      expect('credits' in ((await store.get(without.id)) ?? {})).toBe(false)
    })

    it('spends down to exactly 0, counts a missing balance as empty, and refuses cost 0 on an empty balance', async () => {
      const { store } = context()
      const credits = methods(store)
      const family = newFamilyId()
      const now = 1_000_000
      expect(await credits.spend(family, 1, now)).toEqual({ ok: false, state: { remaining: 0, nextRefillAt: null } })
      expect(await credits.set(family, 3, now)).toEqual({ remaining: 3, nextRefillAt: null })
      expect(await credits.spend(family, 2, now)).toEqual({ ok: true, state: { remaining: 1, nextRefillAt: null } })
      expect(await credits.spend(family, 2, now)).toEqual({ ok: false, state: { remaining: 1, nextRefillAt: null } })
      expect(await credits.spend(family, 0, now)).toEqual({ ok: true, state: { remaining: 1, nextRefillAt: null } })
      expect(await credits.spend(family, 1, now)).toEqual({ ok: true, state: { remaining: 0, nextRefillAt: null } })
      expect(await credits.spend(family, 0, now)).toEqual({ ok: false, state: { remaining: 0, nextRefillAt: null } })
      expect(await credits.read(family, now)).toEqual({ remaining: 0, nextRefillAt: null })
    })

    it('refills lazily to the amount at each interval boundary, anchored on the first write', async () => {
      const { store } = context()
      const credits = methods(store)
      const family = newFamilyId()
      const refill = { amount: 5, intervalMs: DAY }
      const t0 = 5_000_000
      expect(await credits.set(family, 1, t0, refill)).toEqual({ remaining: 1, nextRefillAt: t0 + DAY })
      expect((await credits.spend(family, 1, t0 + DAY - 1, refill)).state).toEqual({ remaining: 0, nextRefillAt: t0 + DAY })
      expect(await credits.spend(family, 1, t0 + DAY - 1, refill)).toMatchObject({ ok: false })
      // A read applies the refill to its answer but writes nothing.
      expect(await credits.read(family, t0 + DAY, refill)).toEqual({ remaining: 5, nextRefillAt: t0 + 2 * DAY })
      expect(await credits.spend(family, 2, t0 + DAY, refill)).toEqual({ ok: true, state: { remaining: 3, nextRefillAt: t0 + 2 * DAY } })
      // Several intervals later: one refill to the amount, not one per interval.
      expect(await credits.spend(family, 1, t0 + 4 * DAY + 7, refill)).toEqual({ ok: true, state: { remaining: 4, nextRefillAt: t0 + 5 * DAY } })
      // A balance above the amount is kept at a refill.
      await credits.add(family, 100, t0 + 4 * DAY + 8, refill)
      expect((await credits.spend(family, 1, t0 + 6 * DAY, refill)).state).toEqual({ remaining: 103, nextRefillAt: t0 + 7 * DAY })
    })

    it('adds credits, never below 0', async () => {
      const { store } = context()
      const credits = methods(store)
      const family = newFamilyId()
      await credits.set(family, 10, 1)
      expect(await credits.add(family, 5, 2)).toEqual({ remaining: 15, nextRefillAt: null })
      expect(await credits.add(family, -100, 3)).toEqual({ remaining: 0, nextRefillAt: null })
      expect(await credits.add(newFamilyId(), 7, 4)).toEqual({ remaining: 7, nextRefillAt: null })
    })

    it('accepts exactly the balance when spends race (through two clients when the store has a peer)', async () => {
      const { store, peer } = context()
      const family = newFamilyId()
      const now = 2_000_000
      await methods(store).set(family, 100, now)
      const clients = peer ? [methods(store), methods(peer)] : [methods(store)]
      const results = await Promise.all(Array.from({ length: 250 }, (_, i) => (clients[i % clients.length] as ReturnType<typeof methods>).spend(family, 1, now)))
      const accepted = results.filter((result) => result.ok).length
      expect(accepted).toBe(100)
      expect(await methods(store).read(family, now)).toEqual({ remaining: 0, nextRefillAt: null })
    })
  })
}
