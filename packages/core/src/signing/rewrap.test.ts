import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { ManualClock } from '../clock.js'
import { FastTestHasher } from '../hash/hasher.js'
import { createKeyring } from '../lifecycle/keyring.js'
import { MemoryStore } from '../store/memory-store.js'
import { rewrapSigningSecrets } from './rewrap.js'
import { signWebhook } from './webhook.js'

const oldMaster = { id: 'm-2025-01', key: randomBytes(32) }
const newMaster = { id: 'm-2025-06', key: randomBytes(32) }

describe('rewrapSigningSecrets', () => {
  it('moves every secret to the newest master key with nothing lost: after dropping the old key, each still signs identically', async () => {
    const clock = new ManualClock()
    const store = new MemoryStore()
    const base = { store, clock, hasher: new FastTestHasher(), gracePeriod: '1h' }
    const before = createKeyring({ ...base, signing: { masterKeys: [oldMaster] } })
    const created = []
    for (let i = 0; i < 5; i++) created.push(await before.createSigningSecret({ tenantId: `t${i}`, name: 'webhooks' }))
    const rotated = await before.rotate(created[0]!.key.id)
    await before.revoke(created[1]!.key.id)
    const apiKey = await before.create({ tenantId: 't0', name: 'api' })
    const apiHashBefore = (await store.get(apiKey.key.id))?.hash
    const payload = '{"n":1}'
    const signedBefore = await Promise.all(
      [...created.slice(2), rotated].map((issued) => signWebhook(before, { secretId: issued.key.id, id: 'msg', payload })),
    )

    const during = createKeyring({ ...base, signing: { masterKeys: [newMaster, oldMaster] } })
    const report = await rewrapSigningSecrets(during)
    expect(report).toEqual({ rewrapped: 6, current: 0, failed: [], masterKeyId: 'm-2025-06' })
    expect(await rewrapSigningSecrets(during)).toEqual({ rewrapped: 0, current: 6, failed: [], masterKeyId: 'm-2025-06' })

    const after = createKeyring({ ...base, signing: { masterKeys: [newMaster] } })
    for (const record of await store.list({})) {
      if (record.id === apiKey.key.id) continue
      expect(after.options.signing?.masterKeyIdOf(record.hash)).toBe('m-2025-06')
    }
    for (const issued of [...created, rotated]) {
      const record = await store.get(issued.key.id)
      const secret = 'secret' in issued ? issued.secret : issued.token
      expect(after.options.signing?.open(record?.hash as string, issued.key.id)).toBe(secret)
    }
    const signedAfter = await Promise.all(
      [...created.slice(2), rotated].map((issued) => signWebhook(after, { secretId: issued.key.id, id: 'msg', payload })),
    )
    expect(signedAfter).toEqual(signedBefore)
    expect((await store.get(apiKey.key.id))?.hash).toBe(apiHashBefore)
  })

  it('reports secrets it cannot open and leaves them unchanged', async () => {
    const store = new MemoryStore()
    const lost = createKeyring({ store, hasher: new FastTestHasher(), signing: { masterKeys: [{ id: 'lost', key: randomBytes(32) }] } })
    const { key } = await lost.createSigningSecret({ tenantId: 'acme', name: 'w' })
    const sealed = (await store.get(key.id))?.hash
    const warnings: object[] = []
    const keyring = createKeyring({
      store,
      hasher: new FastTestHasher(),
      signing: { masterKeys: [newMaster] },
      logger: { info() {}, error() {}, warn: (fields) => warnings.push(fields) },
    })
    const report = await rewrapSigningSecrets(keyring)
    expect(report.rewrapped).toBe(0)
    expect(report.failed).toEqual([{ keyId: key.id, reason: `The signing secret of key ${key.id} cannot be decrypted: master key "lost" is not configured.` }])
    expect((await store.get(key.id))?.hash).toBe(sealed)
    expect(warnings).toMatchObject([{ event: 'signing.rewrap_failed', keyId: key.id }])
  })
})
