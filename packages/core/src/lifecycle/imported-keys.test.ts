import { createHash, randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { ManualClock } from '../clock.js'
import { InvalidInputError, publicCodeOf } from '../errors.js'
import { FastTestHasher } from '../hash/hasher.js'
import type { KeyringOptions } from '../options.js'
import { MemoryStore } from '../store/memory-store.js'
import { parseToken } from '../token/format.js'
import { isLegacyHash } from './imported-keys.js'
import { createKeyring, type VerifyResult } from './keyring.js'

const importKey = randomBytes(32)

function setup(options: KeyringOptions = {}) {
  const clock = new ManualClock()
  const store = new MemoryStore()
  const keyring = createKeyring({ clock, store, hasher: new FastTestHasher(), gracePeriod: '1h', importKey, importedPrefixes: ['old_'], ...options })
  return { clock, store, keyring }
}

function codeOf(result: VerifyResult): string {
  return result.ok ? 'ok' : result.error.code
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex')
}

function legacyToken(): string {
  return `old_${randomBytes(24).toString('base64url')}`
}

/** Waits until the key's stored hash satisfies `ready` (the upgrade runs after the verify answers). */
async function storedHash(store: MemoryStore, keyId: string, ready: (hash: string) => boolean): Promise<string> {
  for (let i = 0; i < 200; i++) {
    const hash = (await store.get(keyId))?.hash as string
    if (ready(hash)) return hash
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  throw new Error('the stored hash never changed')
}

describe.each([
  ['with the verification cache', {}],
  ['without the verification cache', { cache: { maxEntries: 0 } }],
] as const)('keyring.import %s', (_label, cacheOptions) => {
  it('verifies a key imported from its plaintext in its existing format, and stores no plaintext or unsalted hash', async () => {
    const { keyring, store } = setup(cacheOptions)
    const token = legacyToken()
    const { key, created } = await keyring.import({ tenantId: 'acme', name: 'old ci', scopes: ['read'], token })
    expect(created).toBe(true)
    const record = await store.get(key.id)
    expect(JSON.stringify(record)).not.toContain(token)
    expect(JSON.stringify(record)).not.toContain(sha256(token))
    expect(record?.importIndex).toMatch(/^[A-Za-z0-9_-]{43}$/)
    const result = await keyring.verify(token, { scopes: ['read'] })
    expect(codeOf(result)).toBe('ok')
    expect(result.ok && result.key.id).toBe(key.id)
    // The verification cache applies as to keyrot tokens: the second verify needs no store read and no hashing.
    const again = await keyring.verify(token, { scopes: ['read'] })
    expect(again.ok && again.cached).toBe(!('cache' in cacheOptions))
    expect(codeOf(await keyring.verify(token, { scopes: ['write'] }))).toBe('KEYROT_INSUFFICIENT_SCOPE')
  })

  it('verifies a key imported from an unsalted SHA-256 and upgrades it to the keyring hash on its first successful verify', async () => {
    const { keyring, store } = setup(cacheOptions)
    const token = legacyToken()
    const { key } = await keyring.import({ tenantId: 'acme', name: 'legacy', legacy: { sha256: sha256(token), tokenPrefix: 'old_' } })
    expect(isLegacyHash((await store.get(key.id))?.hash as string)).toBe(true)
    // A wrong token with the right prefix upgrades nothing.
    const wrong = await keyring.verify(legacyToken())
    expect(!wrong.ok && publicCodeOf(wrong.error.code)).toBe('KEYROT_INVALID_KEY')
    expect(isLegacyHash((await store.get(key.id))?.hash as string)).toBe(true)

    expect(codeOf(await keyring.verify(token))).toBe('ok')
    const upgraded = await storedHash(store, key.id, (hash) => !isLegacyHash(hash))
    expect(upgraded).not.toContain(sha256(token))
    expect(JSON.stringify(await store.get(key.id))).not.toContain(sha256(token))
    // The upgraded key still verifies, by the new hash (a fresh keyring has no cached proof).
    const fresh = createKeyring({ store, hasher: new FastTestHasher(), importKey, importedPrefixes: ['old_'] })
    expect(codeOf(await fresh.verify(token))).toBe('ok')
  })

  it('upgrades a legacy hash once under concurrent first verifies, on one replica and across replicas sharing the store', async () => {
    const { keyring, store, clock } = setup(cacheOptions)
    const token = legacyToken()
    const { key } = await keyring.import({ tenantId: 'acme', name: 'legacy', legacy: { sha256: sha256(token), tokenPrefix: 'old_' } })
    const landed: string[] = []
    const logger = { info: (fields: object) => void ((fields as { event?: string }).event === 'key.rehashed' && landed.push('x')), warn() {}, error() {} }
    const other = createKeyring({ clock, store, hasher: new FastTestHasher(), importKey, importedPrefixes: ['old_'], logger, ...cacheOptions })
    const first = createKeyring({ clock, store, hasher: new FastTestHasher(), importKey, importedPrefixes: ['old_'], logger, ...cacheOptions })
    const results = await Promise.all([first, other, first, other, first].map((replica) => replica.verify(token)))
    expect(results.map(codeOf)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok'])
    const upgraded = await storedHash(store, key.id, (hash) => !isLegacyHash(hash))
    await new Promise((resolve) => setTimeout(resolve, 50))
    // One replacement of the legacy hash; the later ones found it gone and wrote nothing.
    expect(landed).toHaveLength(1)
    expect((await store.get(key.id))?.hash).toBe(upgraded)
    expect(codeOf(await keyring.verify(token))).toBe('ok')
  })

  it('answers an unknown token with an imported prefix like any invalid key, and reads the index only once for it', async () => {
    const { keyring, store } = setup(cacheOptions)
    await keyring.import({ tenantId: 'acme', name: 'legacy', token: legacyToken() })
    let reads = 0
    const find = store.findImported.bind(store)
    store.findImported = (index: string) => {
      reads++
      return find(index)
    }
    const unknown = legacyToken()
    const first = await keyring.verify(unknown, { clientIp: '198.51.100.1' })
    expect(!first.ok && publicCodeOf(first.error.code)).toBe('KEYROT_INVALID_KEY')
    const second = await keyring.verify(unknown, { clientIp: '198.51.100.1' })
    expect(!second.ok && publicCodeOf(second.error.code)).toBe('KEYROT_INVALID_KEY')
    // The negative cache answers the second attempt without a store read.
    expect(reads).toBe(1)
    // A token with no imported prefix never reaches the index.
    expect(codeOf(await keyring.verify('zzz_nothing'))).toBe('KEYROT_MALFORMED_TOKEN')
    expect(reads).toBe(1)
  })

  it('is idempotent per token: importing again returns the existing key and writes nothing', async () => {
    const { keyring, store } = setup(cacheOptions)
    const token = legacyToken()
    const first = await keyring.import({ tenantId: 'acme', name: 'a', token })
    const again = await keyring.import({ tenantId: 'acme', name: 'a', token })
    const byHash = await keyring.import({ tenantId: 'acme', name: 'a', legacy: { sha256: sha256(token), tokenPrefix: 'old_' } })
    expect(again).toEqual({ key: first.key, created: false })
    expect(byHash.created).toBe(false)
    expect(byHash.key.id).toBe(first.key.id)
    expect(store.size).toBe(1)
  })

  it('rotates an imported key into a keyrot-format successor, while the old token works through its grace period', async () => {
    const { keyring, clock } = setup(cacheOptions)
    const token = legacyToken()
    const { key } = await keyring.import({ tenantId: 'acme', name: 'legacy', scopes: ['read'], allowedIps: ['203.0.113.0/24'], legacy: { sha256: sha256(token), tokenPrefix: 'old_' } })
    const rotated = await keyring.rotate(key.id)
    expect(parseToken(rotated.token).keyId).toBe(rotated.key.id)
    expect(rotated.key.prefix).toBe('sk_live')
    expect(rotated.key.scopes).toEqual(['read'])
    expect(rotated.key.allowedIps).toEqual(['203.0.113.0/24'])
    expect(codeOf(await keyring.verify(rotated.token, { clientIp: '203.0.113.5' }))).toBe('ok')
    expect(codeOf(await keyring.verify(token, { clientIp: '203.0.113.5' }))).toBe('ok')
    expect(codeOf(await keyring.verify(token, { clientIp: '198.51.100.5' }))).toBe('KEYROT_IP_NOT_ALLOWED')
    clock.advance(3_600_001)
    expect(codeOf(await keyring.verify(token, { clientIp: '203.0.113.5' }))).toBe('KEYROT_KEY_EXPIRED')
  })

  it('spends the credits an imported key is given, shared with its keyrot-format successor', async () => {
    const { keyring } = setup(cacheOptions)
    const token = legacyToken()
    const { key } = await keyring.import({ tenantId: 'acme', name: 'legacy', credits: { remaining: 2 }, legacy: { sha256: sha256(token), tokenPrefix: 'old_' } })
    expect(key.credits).toEqual({ refill: null })
    const first = await keyring.verify(token)
    expect(first.ok && first.credits).toEqual({ remaining: 1, nextRefillAt: null })
    const rotated = await keyring.rotate(key.id)
    expect(codeOf(await keyring.verify(rotated.token))).toBe('ok')
    expect(codeOf(await keyring.verify(token))).toBe('KEYROT_CREDITS_EXHAUSTED')
    await expect(keyring.import({ tenantId: 'acme', name: 'bad', credits: { remaining: -1 }, token: legacyToken() })).rejects.toMatchObject({ code: 'KEYROT_INVALID_INPUT', field: 'credits.remaining' })
  })

  it('verifies a legacy key whose token also starts with a longer imported prefix than the tokenPrefix given', async () => {
    const { keyring } = setup({ ...cacheOptions, importedPrefixes: ['old_', 'old_live_'] })
    const token = `old_live_${randomBytes(24).toString('base64url')}`
    await keyring.import({ tenantId: 'acme', name: 'legacy', legacy: { sha256: sha256(token), tokenPrefix: 'old_' } })
    expect(codeOf(await keyring.verify(token))).toBe('ok')
    const wrong = await keyring.verify(`old_live_${randomBytes(24).toString('base64url')}`)
    expect(!wrong.ok && publicCodeOf(wrong.error.code)).toBe('KEYROT_INVALID_KEY')
  })

  it('stops a revoked imported key', async () => {
    const { keyring } = setup(cacheOptions)
    const token = legacyToken()
    const { key } = await keyring.import({ tenantId: 'acme', name: 'legacy', token })
    expect(codeOf(await keyring.verify(token))).toBe('ok')
    await keyring.revoke(key.id)
    const result = await keyring.verify(token)
    expect(result.ok).toBe(false)
    expect(['KEYROT_KEY_REVOKED', 'KEYROT_MALFORMED_TOKEN']).toContain(codeOf(result))
    // Importing the token again (re-running an import file) finds the revoked key; it mints no live one.
    expect(await keyring.import({ tenantId: 'acme', name: 'legacy', token })).toMatchObject({ created: false, key: { id: key.id, state: 'revoked' } })
    expect((await keyring.verify(token)).ok).toBe(false)
    const legacy = legacyToken()
    const emergency = await keyring.import({ tenantId: 'acme', name: 'legacy', legacy: { sha256: sha256(legacy), tokenPrefix: 'old_' } })
    await keyring.emergencyRotate(emergency.key.id, { incidentId: 'INC-1' })
    expect(await keyring.import({ tenantId: 'acme', name: 'legacy', legacy: { sha256: sha256(legacy), tokenPrefix: 'old_' } })).toMatchObject({ created: false })
    expect((await keyring.verify(legacy)).ok).toBe(false)
  })

  it('counts failed imported tokens against the client IP like any wrong token, and blocks it', async () => {
    const { keyring } = setup({ ...cacheOptions, rateLimit: { failuresPerIp: { limit: 3, window: '1m' }, negativeCacheTtl: 0 } })
    const token = legacyToken()
    await keyring.import({ tenantId: 'acme', name: 'legacy', token })
    for (let i = 0; i < 3; i++) expect(codeOf(await keyring.verify(legacyToken(), { clientIp: '198.51.100.9' }))).toBe('KEYROT_MALFORMED_TOKEN')
    expect(codeOf(await keyring.verify(legacyToken(), { clientIp: '198.51.100.9' }))).toMatch(/^KEYROT_(RATE_LIMITED|IP_BLOCKED)$/)
    // Even the right token is refused to the blocked client, and works from another.
    expect(codeOf(await keyring.verify(token, { clientIp: '198.51.100.9' }))).toMatch(/^KEYROT_(RATE_LIMITED|IP_BLOCKED)$/)
    expect(codeOf(await keyring.verify(token, { clientIp: '198.51.100.10' }))).toBe('ok')
  })
})

describe('imported keys without a cache or an abuse guard', () => {
  it('finds each token by its own index (there is no token digest to remember lookups by)', async () => {
    const { keyring } = setup({ cache: { maxEntries: 0 }, rateLimit: false })
    const first = legacyToken()
    const second = legacyToken()
    const a = await keyring.import({ tenantId: 'acme', name: 'a', token: first })
    const b = await keyring.import({ tenantId: 'acme', name: 'b', legacy: { sha256: sha256(second), tokenPrefix: 'old_' } })
    const one = await keyring.verify(first)
    const two = await keyring.verify(second)
    expect(one.ok && one.key.id).toBe(a.key.id)
    expect(two.ok && two.key.id).toBe(b.key.id)
  })
})

describe('imported secrets', () => {
  it('never reach events, logs, errors or verify results, and the store holds neither plaintext nor unsalted hash after the upgrade', async () => {
    const sinks: string[] = []
    const capture = (value: unknown) => sinks.push(JSON.stringify(value) ?? String(value))
    const logger = { info: capture, warn: capture, error: capture, debug: capture }
    const { keyring, store } = setup({ logger })
    for (const event of ['key.created', 'verification.succeeded', 'verification.failed', 'key.revoked', 'key.rotated'] as const) {
      keyring.on(event, (payload: unknown) => capture(payload))
    }
    const plain = legacyToken()
    const legacy = legacyToken()
    const outcomes: unknown[] = []
    const a = await keyring.import({ tenantId: 'acme', name: 'a', token: plain })
    const b = await keyring.import({ tenantId: 'acme', name: 'b', legacy: { sha256: sha256(legacy), tokenPrefix: 'old_' } })
    outcomes.push(a, b, await keyring.verify(plain, { clientIp: '198.51.100.1' }), await keyring.verify(legacy, { clientIp: '198.51.100.1' }))
    outcomes.push(await keyring.verify(`${legacy}x`, { clientIp: '198.51.100.1' }), await keyring.verify(legacyToken()))
    for (const input of [{ token: `${plain} ` }, { token: plain.replace('old_', 'new_') }]) {
      try {
        await keyring.import({ tenantId: 'acme', name: 'c', ...input })
      } catch (error) {
        sinks.push(String(error), (error as Error).stack ?? '')
      }
    }
    await storedHash(store, b.key.id, (hash) => !isLegacyHash(hash))
    await keyring.rotate(a.key.id)
    await keyring.revoke(b.key.id)
    for (const outcome of outcomes) capture(outcome)
    const stored = JSON.stringify(await store.list({}))
    const everything = [...sinks, stored].join('\n')
    expect(sinks.length).toBeGreaterThan(5)
    for (const secret of [plain, legacy, sha256(plain), sha256(legacy), plain.slice(4), legacy.slice(4)]) expect(everything).not.toContain(secret)
  })
})

describe('routing', () => {
  it('verifies keyrot tokens by their key id even when an imported prefix starts them, and never reads the index for them', async () => {
    const { keyring, store } = setup({ importedPrefixes: ['sk_'] })
    let reads = 0
    const find = store.findImported.bind(store)
    store.findImported = (index: string) => {
      reads++
      return find(index)
    }
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ours' })
    expect(token.startsWith('sk_live_')).toBe(true)
    const result = await keyring.verify(token)
    expect(result.ok && result.key.id).toBe(key.id)
    expect(reads).toBe(0)
    const imported = `sk_${randomBytes(16).toString('hex')}`
    const { key: old } = await keyring.import({ tenantId: 'acme', name: 'theirs', token: imported })
    const theirs = await keyring.verify(imported)
    expect(theirs.ok && theirs.key.id).toBe(old.id)
    // One read by import() (is the token there already?), one by the first verify.
    expect(reads).toBe(2)
  })
})

describe('keyring.import input', () => {
  it('refuses tokens and hashes it cannot route, with a clear error', async () => {
    const { keyring, store } = setup()
    const cases: [object, RegExp][] = [
      [{ token: 'new_abc' }, /importedPrefixes \("old_"\)/],
      [{ legacy: { sha256: 'abc', tokenPrefix: 'old_' } }, /64 hex/],
      [{ legacy: { sha256: sha256('x'), tokenPrefix: 'new_' } }, /tokenPrefix/],
      [{ token: 'old_x', legacy: { sha256: sha256('x'), tokenPrefix: 'old_' } }, /exactly one/],
      [{}, /exactly one/],
      [{ token: 'old_has space' }, /printable/],
      [{ token: 'old_x', allowedIps: ['300.0.0.0/8'] }, /allowedIps/],
    ]
    for (const [input, message] of cases) {
      await expect(keyring.import({ tenantId: 'acme', name: 'x', ...input })).rejects.toThrow(message)
    }
    await expect(keyring.import({ tenantId: 'acme', name: 'x', token: 'old_x' } as never)).resolves.toMatchObject({ created: true })
    expect(store.size).toBe(1)
    await expect(createKeyring({ importKey }).import({ tenantId: 'acme', name: 'x', token: 'old_y' })).rejects.toThrow(InvalidInputError)
  })

  it('needs an import key: importedPrefixes without one is refused at construction', () => {
    expect(() => createKeyring({ importedPrefixes: ['old_'], proofKey: null })).toThrow(/import key/)
    // Derived from the proof key when there is one.
    expect(() => createKeyring({ importedPrefixes: ['old_'], proofKey: randomBytes(32) })).not.toThrow()
  })
})

describe('keyring.import with shared proofs', () => {
  // Shared proofs work through the verification cache: this case has no variant without it.
  it("upgrades a legacy hash on a replica that proves it by another replica's shared proof, when the first upgrade write failed", async () => {
    const { store, clock } = setup({})
    const proofKey = randomBytes(32)
    const token = legacyToken()
    const replica = () => createKeyring({ clock, store, hasher: new FastTestHasher(), importKey, importedPrefixes: ['old_'], proofKey,  })
    const a = replica()
    const { key } = await a.import({ tenantId: 'acme', name: 'legacy', legacy: { sha256: sha256(token), tokenPrefix: 'old_' } })
    const update = store.updateHash.bind(store)
    let failures = 1
    store.updateHash = (keyId: string, hash: string, replacing?: string) => (failures-- > 0 ? Promise.reject(new Error('write lost')) : update(keyId, hash, replacing))
    expect(codeOf(await a.verify(token))).toBe('ok')
    // a shared its proof; its upgrade write failed.
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect((await store.get(key.id))?.sharedProof).toBeTruthy()
    expect(isLegacyHash((await store.get(key.id))?.hash as string)).toBe(true)
    expect(codeOf(await replica().verify(token))).toBe('ok')
    await storedHash(store, key.id, (hash) => !isLegacyHash(hash))
  })
})
