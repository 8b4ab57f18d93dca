import { randomBytes } from 'node:crypto'
import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { FastTestHasher } from '../hash/hasher.js'
import { createKeyring } from '../lifecycle/keyring.js'
import { MemoryStore } from '../store/memory-store.js'
import { createMetrics } from './metrics.js'

describe('shared-proof metrics', () => {
  it('counts shared-proof outcomes by result and reports the Argon2 queue length', async () => {
    const store = new MemoryStore()
    const proofKey = randomBytes(32)
    const a = createKeyring({ store, hasher: new FastTestHasher(), proofKey, rateLimit: false })
    const b = createKeyring({ store, hasher: new FastTestHasher(), proofKey, rateLimit: false })
    const registry = new Registry()
    const metrics = createMetrics({ keyring: b, registry })
    const { token } = await a.create({ tenantId: 'acme', name: 'ci' })
    await a.verify(token)
    await new Promise((resolve) => setImmediate(resolve))
    await b.verify(token)
    const text = await registry.metrics()
    expect(text).toMatch(/^keyrot_shared_proofs_total\{result="hit"\} 1$/m)
    expect(text).toMatch(/^keyrot_shared_proofs_total\{result="absent"\} 0$/m)
    expect(text).toMatch(/^keyrot_argon2_queue_length 0$/m)
    // Counters only grow: a second scrape after another hit adds one.
    const other = await a.create({ tenantId: 'acme', name: 'two' })
    await a.verify(other.token)
    await new Promise((resolve) => setImmediate(resolve))
    await b.verify(other.token)
    expect(await registry.metrics()).toMatch(/^keyrot_shared_proofs_total\{result="hit"\} 2$/m)
    metrics.close()
    await Promise.all([a.close(), b.close()])
  })
})
