import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { createKeyring } from '../lifecycle/keyring.js'
import { FastTestHasher } from '../hash/hasher.js'
import { MemoryStore } from '../store/memory-store.js'
import { resolveProofKey } from './proof-key.js'
import { SharedProofs } from './shared-proofs.js'

describe('resolveProofKey', () => {
  const key = randomBytes(32)

  it('accepts 32+ random bytes as a Buffer, base64 or base64url', () => {
    expect(resolveProofKey(key, {})?.equals(key)).toBe(true)
    expect(resolveProofKey(key.toString('base64'), {})?.equals(key)).toBe(true)
    expect(resolveProofKey(randomBytes(48).toString('base64url'), {})?.length).toBe(48)
  })

  it('reads KEYROT_PROOF_KEY when the option is omitted, and ignores it when the option is null', () => {
    expect(resolveProofKey(undefined, { KEYROT_PROOF_KEY: key.toString('base64') })?.equals(key)).toBe(true)
    expect(resolveProofKey(null, { KEYROT_PROOF_KEY: key.toString('base64') })).toBeNull()
    expect(resolveProofKey(undefined, {})).toBeNull()
    expect(resolveProofKey(undefined, { KEYROT_PROOF_KEY: '  ' })).toBeNull()
  })

  it('throws a TypeError naming the option or the variable for a short, non-base64 or non-random key', () => {
    expect(() => resolveProofKey(randomBytes(16), {})).toThrow(/proofKey must be at least 32 random bytes; got 16/)
    expect(() => resolveProofKey('not base64 at all!', {})).toThrow(/proofKey must be base64/)
    expect(() => resolveProofKey(42, {})).toThrow(TypeError)
    expect(() => resolveProofKey(Buffer.alloc(32), {})).toThrow(/proofKey must be random bytes/)
    expect(() => resolveProofKey(undefined, { KEYROT_PROOF_KEY: 'c2hvcnQ=' })).toThrow(/KEYROT_PROOF_KEY must be at least 32/)
    expect(() => createKeyring({ proofKey: 'c2hvcnQ=' })).toThrow(TypeError)
  })
})

describe('SharedProofs', () => {
  it('binds a proof to the proof key, the key id and the token', () => {
    const a = new SharedProofs(randomBytes(32))
    const b = new SharedProofs(randomBytes(32))
    expect(a.fingerprint).not.toBe(b.fingerprint)
    const proof = a.make('k1a2b3c4d5e6f7g8', 'sk_test_k1a2b3c4d5e6f7g8_secret')
    expect(proof).toMatch(/^[\w-]{4}\.[\w-]{22}$/)
    const record = { id: 'k1a2b3c4d5e6f7g8', sharedProof: proof } as Parameters<SharedProofs['check']>[0]
    expect(a.check(record, 'sk_test_k1a2b3c4d5e6f7g8_secret')).toBe('hit')
    expect(a.check(record, 'sk_test_k1a2b3c4d5e6f7g8_other')).toBe('mismatch')
    expect(a.check({ ...record, id: 'k1a2b3c4d5e6f7g9' }, 'sk_test_k1a2b3c4d5e6f7g8_secret')).toBe('mismatch')
    expect(b.check(record, 'sk_test_k1a2b3c4d5e6f7g8_secret')).toBe('stale')
    expect(a.check({ ...record, sharedProof: undefined }, 'x')).toBe('absent')
    expect(a.stats()).toMatchObject({ hit: 1, mismatch: 2, absent: 1 })
  })

  it('lets a second keyring on a shared store accept a proven token without hashing', async () => {
    let verifies = 0
    const inner = new FastTestHasher()
    const hasher = { hash: (token: string) => inner.hash(token), verify: (hash: string, token: string) => (verifies++, inner.verify(hash, token)) }
    const store = new MemoryStore()
    const proofKey = randomBytes(32)
    const a = createKeyring({ store, hasher, proofKey, rateLimit: false })
    const b = createKeyring({ store, hasher, proofKey, rateLimit: false })
    const { token, key } = await a.create({ tenantId: 'acme', name: 'ci' })
    expect((await a.verify(token)).ok).toBe(true)
    await new Promise((resolve) => setImmediate(resolve))
    expect((await store.get(key.id))?.sharedProof).toBeDefined()
    expect((await b.verify(token)).ok).toBe(true)
    expect(verifies).toBe(1)
    // The proof never reaches what callers see.
    expect(Object.keys((await a.get(key.id)) ?? {})).not.toContain('sharedProof')
  })
})

describe('proofKeyFromEnv', () => {
  it('prefers KEYROT_PROOF_KEY, else derives a distinct key from the newest master key, else returns null', async () => {
    const { proofKeyFromEnv } = await import('./proof-key.js')
    const master = randomBytes(32)
    const proof = randomBytes(32)
    expect(proofKeyFromEnv({ KEYROT_PROOF_KEY: proof.toString('base64'), KEYROT_MASTER_KEYS: `m1:${master.toString('base64')}` })?.equals(proof)).toBe(true)
    const derived = proofKeyFromEnv({ KEYROT_MASTER_KEYS: `m2:${master.toString('base64')}, m1:${randomBytes(32).toString('base64')}` })
    expect(derived?.length).toBe(32)
    expect(derived?.equals(master)).toBe(false)
    expect(proofKeyFromEnv({ KEYROT_MASTER_KEYS: `other:${master.toString('base64')}` })?.equals(derived as Buffer)).toBe(true)
    expect(proofKeyFromEnv({})).toBeNull()
  })
})
