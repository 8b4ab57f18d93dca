import { createHash, createHmac, randomBytes } from 'node:crypto'
import { createKeyring, FastTestHasher, generateToken, SharedProofs, type Hasher, type Keyring } from '@keyrot/core'
import { RedisStore } from '@keyrot/redis'
import fc from 'fast-check'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { dumpRedis } from '../contract/redis-checks.js'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'

/**
 * The security properties of the fleet-wide proof cache, on a real Redis
 * shared by several keyrings (replicas). A counting hasher tells when a
 * replica fell back to hashing (Argon2 in production).
 */

class CountingHasher implements Hasher {
  readonly #inner = new FastTestHasher()
  verifies = 0
  hash(token: string): Promise<string> {
    return this.#inner.hash(token)
  }
  verify(hash: string, token: string): Promise<boolean> {
    this.verifies++
    return this.#inner.verify(hash, token)
  }
}

let server: RedisServer
let raw: Redis
let prefixes = 0
const open: Keyring[] = []
const proofKeyA = randomBytes(32)
const proofKeyB = randomBytes(32)

beforeAll(async () => {
  server = await startRedisServer()
  raw = new Redis(server.port, '127.0.0.1')
})

afterAll(async () => {
  await Promise.all(open.map((keyring) => keyring.close()))
  raw?.disconnect()
  await server?.stop()
})

/** A fleet: replicas sharing one key prefix on the Redis. */
function fleet(): { keyPrefix: string; replica(proofKey: Buffer | null): { keyring: Keyring; hasher: CountingHasher; store: RedisStore } } {
  const keyPrefix = `sp${++prefixes}`
  return {
    keyPrefix,
    replica(proofKey) {
      const hasher = new CountingHasher()
      // A generous timeout: this suite is about proofs, not outages, and shares a loaded machine.
      const store = new RedisStore({ client: new Redis(server.port, '127.0.0.1', { lazyConnect: true }), keyPrefix, timeout: '5s' })
      const keyring = createKeyring({ store, hasher, prefix: 'sk_test', proofKey, rateLimit: false })
      open.push(keyring)
      return { keyring, hasher, store }
    },
  }
}

async function waitForProof(store: RedisStore, keyId: string): Promise<string> {
  for (let i = 0; i < 200; i++) {
    const proof = await raw.hget(store.layout.record(keyId), 'x')
    if (proof) return proof
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error(`no shared proof appeared for ${keyId}`)
}

describe('shared proofs on Redis', () => {
  it('lets a fresh replica accept a token proven elsewhere without hashing, and a wrong secret never matches', async () => {
    const { replica } = fleet()
    const a = replica(proofKeyA)
    const { token, key } = await a.keyring.create({ tenantId: 'acme', name: 'ci' })
    expect((await a.keyring.verify(token)).ok).toBe(true)
    expect(a.hasher.verifies).toBe(1)
    await waitForProof(a.store, key.id)

    const b = replica(proofKeyA)
    const result = await b.keyring.verify(token)
    expect(result.ok).toBe(true)
    expect(b.hasher.verifies).toBe(0)
    expect(b.keyring.proofStats().sharedProofs?.hit).toBe(1)

    // Same key id, another secret: the proof does not match, the hasher decides (and refuses).
    const c = replica(proofKeyA)
    const wrong = generateToken('sk_test', key.id)
    const refused = await c.keyring.verify(wrong)
    expect(refused.ok).toBe(false)
    if (!refused.ok) expect(refused.error.code).toBe('KEYROT_INVALID_SECRET')
    expect(c.keyring.proofStats().sharedProofs?.mismatch).toBe(1)
    expect(c.hasher.verifies).toBe(1)
  })

  it('a wrong secret with a valid key id never matches a shared proof (property)', async () => {
    const proofs = new SharedProofs(proofKeyA)
    const keyId = 'k1a2b3c4d5e6f7g8'
    const token = generateToken('sk_test', keyId)
    const record = { id: keyId, sharedProof: proofs.make(keyId, token) } as Parameters<SharedProofs['check']>[0]
    expect(proofs.check(record, token)).toBe('hit')
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 80 }), (secret) => {
        const guess = `sk_test_${keyId}_${secret}`
        fc.pre(guess !== token)
        return proofs.check(record, guess) !== 'hit' && proofs.check(record, generateToken('sk_test', keyId)) !== 'hit'
      }),
      { numRuns: 500 },
    )
  })

  it('makes a proof written under one proof key useless under another: the replica hashes, answers right, and re-shares', async () => {
    const { replica } = fleet()
    const a = replica(proofKeyA)
    const { token, key } = await a.keyring.create({ tenantId: 'acme', name: 'ci' })
    await a.keyring.verify(token)
    const underA = await waitForProof(a.store, key.id)

    const b = replica(proofKeyB)
    const result = await b.keyring.verify(token)
    expect(result.ok).toBe(true)
    expect(b.hasher.verifies).toBe(1)
    expect(b.keyring.proofStats().sharedProofs?.stale).toBe(1)
    // Under key B, A's proof is not even checked as a MAC; forged with B's fingerprint it mismatches.
    const proofsB = new SharedProofs(proofKeyB)
    const forged = `${proofsB.fingerprint}.${underA.split('.')[1]}`
    expect(proofsB.check({ ...(await a.store.get(key.id))!, sharedProof: forged }, token)).toBe('mismatch')
    // B re-shares under its own key: the fleet converges on the new proof key.
    let underB = underA
    for (let i = 0; i < 200 && underB === underA; i++) {
      underB = (await raw.hget(a.store.layout.record(key.id), 'x')) ?? underA
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    expect(underB.startsWith(`${proofsB.fingerprint}.`)).toBe(true)
    expect(underB).not.toBe(underA)
  })

  it("refuses a revoked key's token on a fresh replica even when its shared proof is still there", async () => {
    const { replica } = fleet()
    const a = replica(proofKeyA)
    const { token, key } = await a.keyring.create({ tenantId: 'acme', name: 'ci' })
    await a.keyring.verify(token)
    const proof = await waitForProof(a.store, key.id)
    await a.keyring.revoke(key.id, { reason: 'leaked' })
    expect(await raw.hget(a.store.layout.record(key.id), 'x')).toBeNull()
    // Put the proof back by hand: as if a proof had survived the revocation.
    await raw.hset(a.store.layout.record(key.id), 'x', proof)

    const fresh = replica(proofKeyA)
    const result = await fresh.keyring.verify(token)
    expect(result.ok).toBe(false)
    if (!result.ok) expect(result.error.code).toBe('KEYROT_KEY_REVOKED')
    expect(fresh.keyring.proofStats().sharedProofs?.hit).toBe(1)
    expect(fresh.hasher.verifies).toBe(0)
  })

  it('a rotated key in its grace period still verifies, by hashing: rotation dropped its proof', async () => {
    const { replica } = fleet()
    const a = replica(proofKeyA)
    const { token, key } = await a.keyring.create({ tenantId: 'acme', name: 'ci' })
    await a.keyring.verify(token)
    await waitForProof(a.store, key.id)
    await a.keyring.rotate(key.id, { gracePeriod: '1h' })
    expect(await raw.hget(a.store.layout.record(key.id), 'x')).toBeNull()
    const fresh = replica(proofKeyA)
    const result = await fresh.keyring.verify(token)
    expect(result.ok && result.key.state).toBe('grace')
    expect(fresh.hasher.verifies).toBe(1)
    expect(fresh.keyring.proofStats().sharedProofs?.absent).toBe(1)
  })

  it('puts no token and no unkeyed hash of one anywhere in Redis (every key and value scanned)', async () => {
    const { replica } = fleet()
    const a = replica(proofKeyA)
    const b = replica(proofKeyA)
    const tokens: string[] = []
    const ids: string[] = []
    for (let i = 0; i < 30; i++) {
      const { token, key } = await a.keyring.create({ tenantId: `t${i % 3}`, name: `k${i}` })
      tokens.push(token)
      ids.push(key.id)
      await a.keyring.verify(token)
      await waitForProof(a.store, key.id)
      expect((await b.keyring.verify(token)).ok).toBe(true)
    }
    expect(b.hasher.verifies).toBe(0)
    const dump = (await dumpRedis([raw])).join('\n')
    for (const id of ids) expect(await raw.hget(a.store.layout.record(id), 'x')).toMatch(/^[\w-]{4}\.[\w-]{22}$/)
    for (const token of tokens) {
      const secret = token.slice(token.lastIndexOf('_') + 1)
      for (const value of [token, secret]) {
        const needles = [value]
        for (const algorithm of ['md5', 'sha1', 'sha256', 'sha512', 'sha3-256']) {
          const digest = createHash(algorithm).update(value).digest()
          needles.push(digest.toString('hex'), digest.toString('base64'), digest.toString('base64url'))
          // A MAC under an empty or public key is as good as an unkeyed hash.
          const mac = createHmac(algorithm, '').update(value).digest()
          needles.push(mac.toString('hex'), mac.toString('base64url'))
        }
        for (const needle of needles) expect(dump.includes(needle), 'a token or an unkeyed hash of one reached Redis').toBe(false)
      }
    }
    // And the proof key itself never reaches it.
    for (const encoding of ['hex', 'base64', 'base64url'] as const) expect(dump.includes(proofKeyA.toString(encoding))).toBe(false)
  })

  it('costs at most 80 bytes of Redis memory per key (MEMORY USAGE of the record, with and without its proof)', async () => {
    const { replica } = fleet()
    const a = replica(proofKeyA)
    const without: number[] = []
    const withProof: number[] = []
    for (let i = 0; i < 20; i++) {
      const { token, key } = await a.keyring.create({ tenantId: `tenant-${i % 10}`, name: `bench ${i}`, scopes: ['read'] })
      const record = a.store.layout.record(key.id)
      without.push(Number(await raw.memory('USAGE', record, 'SAMPLES', 0)))
      await a.keyring.verify(token)
      await waitForProof(a.store, key.id)
      withProof.push(Number(await raw.memory('USAGE', record, 'SAMPLES', 0)))
    }
    const mean = (values: number[]) => values.reduce((x, y) => x + y, 0) / values.length
    const encoding = await raw.object('ENCODING', a.store.layout.record((await a.keyring.list({ limit: 1 }))[0]!.id))
    console.log(
      `[shared-proofs] MEMORY USAGE of a record (${encoding}): ${mean(without).toFixed(0)} B without its proof, ${mean(withProof).toFixed(0)} B with it ` +
        `(+${(mean(withProof) - mean(without)).toFixed(0)} B per key; ${(((mean(withProof) - mean(without)) * 1e6) / 2 ** 20).toFixed(0)} MiB at 1,000,000 keys)`,
    )
    expect(mean(withProof) - mean(without)).toBeGreaterThan(0)
    expect(mean(withProof) - mean(without)).toBeLessThanOrEqual(80)
  })

  it('without a proof key, shares nothing and every replica hashes', async () => {
    const { replica } = fleet()
    const a = replica(null)
    const { token, key } = await a.keyring.create({ tenantId: 'acme', name: 'ci' })
    await a.keyring.verify(token)
    const b = replica(null)
    expect((await b.keyring.verify(token)).ok).toBe(true)
    expect(b.hasher.verifies).toBe(1)
    expect(await raw.hget(a.store.layout.record(key.id), 'x')).toBeNull()
    expect(b.keyring.proofStats().sharedProofs).toBeNull()
  })
})
