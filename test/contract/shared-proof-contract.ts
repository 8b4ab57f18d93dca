import { newKeyId, type KeyRecord, type KeyStore } from '@keyrot/core'
import { describe, expect, it } from 'vitest'

/** What the shared-proof part of the store contract needs from the main suite. */
export interface SharedProofContext {
  store(): KeyStore
  makeRecord(overrides?: Partial<KeyRecord>): Promise<KeyRecord>
  successorOf(old: KeyRecord, overrides?: Partial<KeyRecord>): Promise<KeyRecord>
}

/** Shaped like a real proof (4-character fingerprint, dot, 22 base64url characters); stores treat it as opaque. */
function proofLike(seed: string): string {
  return `${seed.padEnd(4, 'x').slice(0, 4)}.${seed.padEnd(22, 'A').slice(0, 22)}`
}

/**
 * `putProof` and the rule that rotation and revocation drop a key's shared
 * proof atomically. Run inside `describeStoreContract` for every store that
 * implements `putProof`.
 */
export function describeSharedProofContract(context: SharedProofContext): void {
  describe('shared proofs', () => {
    async function put(keyId: string, proof: string): Promise<boolean> {
      const store = context.store()
      return (store.putProof as NonNullable<KeyStore['putProof']>).call(store, keyId, proof)
    }

    it('keeps a proof on an active key and returns it with the record', async () => {
      const record = await context.makeRecord()
      await context.store().insert(record)
      expect((await context.store().get(record.id))?.sharedProof).toBeUndefined()
      expect(await put(record.id, proofLike('first'))).toBe(true)
      expect(await context.store().get(record.id)).toEqual({ ...record, sharedProof: proofLike('first') })
      // A newer proof key replaces the proof.
      expect(await put(record.id, proofLike('second'))).toBe(true)
      expect((await context.store().get(record.id))?.sharedProof).toBe(proofLike('second'))
    })

    it('never stores a proof that arrives with a new record', async () => {
      const record = await context.makeRecord({ sharedProof: proofLike('smuggled') })
      await context.store().insert(record)
      expect((await context.store().get(record.id))?.sharedProof).toBeUndefined()
      const next = await context.successorOf(record, { sharedProof: proofLike('smuggled') })
      const now = Date.now()
      const { next: stored } = await context.store().rotate({ oldKeyId: record.id, newKey: next, graceDeadline: now + 60_000, now })
      expect(stored.sharedProof).toBeUndefined()
      expect((await context.store().get(next.id))?.sharedProof).toBeUndefined()
    })

    it('refuses a proof for an unknown key', async () => {
      expect(await put(newKeyId(), proofLike('ghost'))).toBe(false)
    })

    it('drops the proof when the key is rotated, and refuses a new one during its grace period', async () => {
      const old = await context.makeRecord()
      await context.store().insert(old)
      await put(old.id, proofLike('old'))
      const now = Date.now()
      const { previous } = await context.store().rotate({ oldKeyId: old.id, newKey: await context.successorOf(old), graceDeadline: now + 60_000, now })
      expect(previous.sharedProof).toBeUndefined()
      expect((await context.store().get(old.id))?.sharedProof).toBeUndefined()
      expect(await put(old.id, proofLike('late'))).toBe(false)
      expect((await context.store().get(old.id))?.sharedProof).toBeUndefined()
    })

    it('drops the proof when the key is revoked, and refuses a late one', async () => {
      const record = await context.makeRecord()
      await context.store().insert(record)
      await put(record.id, proofLike('live'))
      const revoked = await context.store().revoke({ keyId: record.id, at: Date.now(), reason: 'leaked' })
      expect(revoked.sharedProof).toBeUndefined()
      expect(await put(record.id, proofLike('late'))).toBe(false)
      expect((await context.store().get(record.id))?.sharedProof).toBeUndefined()
    })

    it('drops the proof on an emergency rotation', async () => {
      const old = await context.makeRecord()
      await context.store().insert(old)
      await put(old.id, proofLike('live'))
      const { revoked } = await context.store().emergencyRotate({
        oldKeyId: old.id,
        newKey: await context.successorOf(old),
        at: Date.now(),
        reason: 'leaked',
        incidentId: 'INC-9',
      })
      expect(revoked.sharedProof).toBeUndefined()
      expect((await context.store().get(old.id))?.sharedProof).toBeUndefined()
      expect(await put(old.id, proofLike('late'))).toBe(false)
    })

    it('keeps the proof through usage counts, a re-hash and a new expiry', async () => {
      const record = await context.makeRecord()
      await context.store().insert(record)
      await put(record.id, proofLike('kept'))
      context.store().recordUsage(record.id, Date.now(), false)
      await context.store().updateHash(record.id, record.hash)
      await context.store().setExpiry(record.id, Date.now() + 3_600_000)
      expect((await context.store().get(record.id))?.sharedProof).toBe(proofLike('kept'))
    })
  })
}
