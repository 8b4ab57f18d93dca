import argon2 from 'argon2'
import { describe, expect, it } from 'vitest'
import { createKeyring } from '../lifecycle/keyring.js'
import { MemoryStore } from '../store/memory-store.js'
import { Argon2Hasher, FastTestHasher, OWASP_ARGON2 } from './hasher.js'

/** `$argon2id$v=19$m=<m>,t=<t>,p=<p>$<salt>$<hash>`, parameters in the order the PHC string format requires. */
function phcPattern(m: number, t: number, p: number): RegExp {
  return new RegExp(`^\\$argon2id\\$v=19\\$m=${m},t=${t},p=${p}\\$[A-Za-z0-9+/]{22}\\$[A-Za-z0-9+/]{43}$`)
}

const small = { memoryCost: 1024, timeCost: 1 }

describe('Argon2Hasher', () => {
  it('defaults to the OWASP parameters: Argon2id, 19 MiB, 2 iterations, 1 lane', () => {
    expect(OWASP_ARGON2).toEqual({ memoryCost: 19_456, timeCost: 2, parallelism: 1 })
    expect(new Argon2Hasher().options).toEqual(OWASP_ARGON2)
  })

  it('stores an OWASP Argon2id PHC string for a key made by a default keyring', async () => {
    const store = new MemoryStore()
    const keyring = createKeyring({ store })
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const hash = (await store.get(key.id))?.hash as string
    expect(hash).toMatch(phcPattern(19_456, 2, 1))
    expect(hash).not.toContain(token)
    expect((await keyring.verify(token)).ok).toBe(true)
  })

  it('writes parameters in PHC order whatever the argon2 package emits', async () => {
    const hasher = new Argon2Hasher({ ...small, parallelism: 2 })
    expect(await hasher.hash('token')).toMatch(phcPattern(1024, 1, 2))
  })

  it('still verifies hashes stored with parameters in the argon2 package’s own order', async () => {
    const legacy = await argon2.hash('token', { type: argon2.argon2id, ...small, parallelism: 1 })
    const hasher = new Argon2Hasher(small)
    expect(await hasher.verify(legacy, 'token')).toBe(true)
    expect(await hasher.verify(legacy, 'other')).toBe(false)
    expect(hasher.needsRehash(legacy)).toBe(false)
  })

  it('salts every hash, verifies the right token only, and matches nothing with a broken hash', async () => {
    const hasher = new Argon2Hasher(small)
    const [a, b] = await Promise.all([hasher.hash('token'), hasher.hash('token')])
    expect(a).not.toBe(b)
    expect(await hasher.verify(a, 'token')).toBe(true)
    expect(await hasher.verify(b, 'token')).toBe(true)
    expect(await hasher.verify(a, 'tokem')).toBe(false)
    for (const broken of ['', 'not a hash', '$argon2id$v=19$m=1024,t=1,p=1$$', a.slice(0, -5)]) {
      expect(await hasher.verify(broken, 'token')).toBe(false)
    }
    expect(await hasher.verify(await new FastTestHasher().hash('token'), 'token')).toBe(false)
  })

  it('asks for a re-hash when the parameters changed, never for a hash it cannot read', async () => {
    const hash = await new Argon2Hasher(small).hash('token')
    expect(new Argon2Hasher(small).needsRehash(hash)).toBe(false)
    expect(new Argon2Hasher({ ...small, memoryCost: 2048 }).needsRehash(hash)).toBe(true)
    expect(new Argon2Hasher({ ...small, timeCost: 2 }).needsRehash(hash)).toBe(true)
    expect(new Argon2Hasher(small).needsRehash('garbage')).toBe(false)
  })

  it.each([
    [{ memoryCost: 0 }, /memoryCost/],
    [{ memoryCost: 1024.5 }, /memoryCost/],
    [{ timeCost: 0 }, /timeCost/],
    [{ parallelism: -1 }, /parallelism/],
    [{ timeCost: Number.NaN }, /timeCost/],
    [{ memoryCost: 8, parallelism: 2 }, /memoryCost/],
  ])('refuses %j with a TypeError naming the parameter', (options, name) => {
    expect(() => new Argon2Hasher(options)).toThrow(TypeError)
    expect(() => new Argon2Hasher(options)).toThrow(name)
  })
})

describe('FastTestHasher', () => {
  it('marks its hashes as test-only, salts them and verifies the right token only', async () => {
    const hasher = new FastTestHasher()
    const [a, b] = await Promise.all([hasher.hash('token'), hasher.hash('token')])
    expect(a.startsWith('$keyrot-test-sha256$')).toBe(true)
    expect(a).not.toBe(b)
    expect(await hasher.verify(a, 'token')).toBe(true)
    expect(await hasher.verify(a, 'other')).toBe(false)
    expect(await hasher.verify('$keyrot-test-sha256$x', 'token')).toBe(false)
    expect(await hasher.verify(await new Argon2Hasher(small).hash('token'), 'token')).toBe(false)
  })
})
