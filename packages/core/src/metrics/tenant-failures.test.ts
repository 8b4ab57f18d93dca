import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { FastTestHasher } from '../hash/hasher.js'
import { createKeyring } from '../lifecycle/keyring.js'
import { MemoryStore } from '../store/memory-store.js'
import { generateToken, newKeyId } from '../token/format.js'
import { createMetrics } from './metrics.js'

async function series(registry: Registry): Promise<Record<string, number>> {
  const metric = registry.getSingleMetric('keyrot_tenant_failures_total')
  if (!metric) return {}
  return Object.fromEntries((await metric.get()).values.map((sample) => [String(sample.labels.tenant), sample.value]))
}

describe('keyrot_tenant_failures_total', () => {
  it("counts failures of a tenant's keys by tenant, none without a tenant, and folds tenants past maxTenants into _other", async () => {
    const keyring = createKeyring({ store: new MemoryStore(), hasher: new FastTestHasher(), rateLimit: false })
    const registry = new Registry()
    const metrics = createMetrics({ keyring, registry, tenantFailures: true, maxTenants: 2 })
    try {
      const keys = await Promise.all(['acme', 'globex', 'initech'].map((tenantId) => keyring.create({ tenantId, name: 'ci' })))
      for (const key of keys) {
        // A well-formed token of the same key id with another secret.
        expect((await keyring.verify(generateToken(key.key.prefix, key.key.id))).ok).toBe(false)
      }
      await keyring.revoke(keys[0]!.key.id, { reason: 'test' })
      expect((await keyring.verify(keys[0]!.token)).ok).toBe(false)
      // An unknown key id has no tenant: not in this metric.
      expect((await keyring.verify(generateToken(keys[0]!.key.prefix, newKeyId()))).ok).toBe(false)
      expect(await series(registry)).toEqual({ acme: 2, globex: 1, _other: 1 })
    } finally {
      metrics.close()
      await keyring.close()
    }
  })

  it('is not registered unless asked for', async () => {
    const keyring = createKeyring({ store: new MemoryStore(), hasher: new FastTestHasher() })
    const registry = new Registry()
    const metrics = createMetrics({ keyring, registry })
    expect(registry.getSingleMetric('keyrot_tenant_failures_total')).toBeUndefined()
    metrics.close()
    await keyring.close()
  })
})
