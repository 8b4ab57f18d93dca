import { DAY_MS, type KeyRecord, type KeyStore } from '@keyrot/core'
import { describe, expect, it } from 'vitest'

/**
 * Rotation policies and evidence (docs/policies.md), for a store that
 * implements them: tenant overrides shared by every process, the fleet-wide
 * once-only marker of `key.rotation-due`, and uses per UTC day.
 */
export function describePolicyContract(
  context: () => { store: KeyStore; peer?: KeyStore; reopen?: () => Promise<KeyStore> },
  makeRecord: (overrides?: Partial<KeyRecord>) => Promise<KeyRecord>,
): void {
  describe('rotation policies', () => {
    it('keeps a tenant policy override for every process, and removes it with null', async () => {
      const { store, peer } = context()
      if (!store.setTenantPolicy || !store.getTenantPolicy) throw new Error('the store under test keeps no tenant policies')
      const tenant = `t-${Math.random().toString(36).slice(2)}`
      expect(await store.getTenantPolicy(tenant)).toBeNull()
      await store.setTenantPolicy(tenant, { maxAgeMs: 30 * DAY_MS, enforce: true })
      const reader = peer ?? store
      expect(await reader.getTenantPolicy?.(tenant)).toEqual({ maxAgeMs: 30 * DAY_MS, enforce: true })
      expect(await store.getTenantPolicy('other-tenant')).toBeNull()
      await store.setTenantPolicy(tenant, null)
      expect(await reader.getTenantPolicy?.(tenant)).toBeNull()
    })

    it('marks a key due for rotation once: the first caller wins, on any process', async () => {
      const { store, peer } = context()
      if (!store.markRotationDue) throw new Error('the store under test has no markRotationDue')
      const record = await makeRecord()
      const now = Date.now()
      const results = await Promise.all([store.markRotationDue(record.id, now, now + DAY_MS), (peer ?? store).markRotationDue?.(record.id, now, now + DAY_MS), store.markRotationDue(record.id, now, now + DAY_MS)])
      expect(results.filter((first) => first === true)).toHaveLength(1)
    })

    it('counts uses per UTC day and sums the days from the one holding `since`', async () => {
      const { store, reopen } = context()
      const record = await makeRecord()
      const quiet = await makeRecord()
      await store.insert(record)
      await store.insert(quiet)
      const today = Math.floor(Date.now() / DAY_MS) * DAY_MS
      store.recordUsage(record.id, today + 1_000, false)
      store.recordUsage(record.id, today + 2_000, false)
      const reader = reopen ? await reopen() : store
      if (!reader.usageSince) throw new Error('the store under test has no usageSince')
      const usage = await reader.usageSince([record.id, quiet.id], today - 29 * DAY_MS)
      expect(usage.get(record.id)).toBe(2)
      expect(usage.has(quiet.id)).toBe(false)
      // Days before `since` are not counted.
      expect((await reader.usageSince([record.id], today + DAY_MS)).has(record.id)).toBe(false)
    })
  })
}
