import { readFileSync } from 'node:fs'
import { createKeyring, createMetrics, FastTestHasher } from '@keyrot/core'
import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'

const doc = readFileSync(new URL('../../docs/observability.md', import.meta.url), 'utf8')

describe('docs/observability.md', () => {
  it('documents every metric createMetrics registers, and no other', async () => {
    const keyring = createKeyring({ hasher: new FastTestHasher() })
    const registry = new Registry()
    const metrics = createMetrics({ keyring, registry, tenantStates: true, tenantFailures: true })
    try {
      const registered = registry.getMetricsAsArray().map((metric) => metric.name).sort()
      const documented = [...doc.matchAll(/^\| `(keyrot_[a-z0-9_]+)` \| (counter|gauge|histogram) \|/gm)].map((m) => m[1]).sort()
      expect(documented).toEqual(registered)
      for (const metric of registry.getMetricsAsArray()) {
        const row = new RegExp(`^\\| \`${metric.name}\` \\| ${metric.type} \\|`, 'm')
        expect(doc, `${metric.name} documented as ${metric.type}`).toMatch(row)
      }
    } finally {
      metrics.close()
      await keyring.close()
    }
  })
})
