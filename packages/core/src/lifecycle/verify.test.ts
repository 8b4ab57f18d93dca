import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ManualClock } from '../clock.js'
import { InsufficientScopeError, publicCodeOf } from '../errors.js'
import type { KeyringEvents } from '../events.js'
import { FastTestHasher } from '../hash/hasher.js'
import type { KeyringOptions } from '../options.js'
import { generateToken } from '../token/format.js'
import { createKeyring, type VerifyResult } from './keyring.js'

function setup(options: KeyringOptions = {}) {
  const clock = new ManualClock()
  const keyring = createKeyring({ clock, hasher: new FastTestHasher(), gracePeriod: '1h', ...options })
  return { clock, keyring }
}

function codeOf(result: VerifyResult): string {
  return result.ok ? 'ok' : result.error.code
}

describe.each([
  ['with the verification cache', {}],
  ['without the verification cache', { cache: { maxEntries: 0 } }],
] as const)('verify is no oracle %s', (_label, cacheOptions) => {
  it('answers KEYROT_INVALID_SECRET, not revoked or expired, to a wrong secret for a revoked, expired or ended key', async () => {
    const { clock, keyring } = setup(cacheOptions)
    const revoked = await keyring.create({ tenantId: 'acme', name: 'revoked' })
    const expired = await keyring.create({ tenantId: 'acme', name: 'expired', expiresAt: clock.now() + 1_000 })
    const rotated = await keyring.create({ tenantId: 'acme', name: 'rotated' })
    // The right tokens are proven (and cached) first: a cached proof must not leak the state either.
    for (const issued of [revoked, expired, rotated]) expect(codeOf(await keyring.verify(issued.token))).toBe('ok')
    await keyring.revoke(revoked.key.id)
    await keyring.rotate(rotated.key.id, { gracePeriod: 0 })
    clock.advance(1_000)

    for (const issued of [revoked, expired, rotated]) {
      const forged = generateToken(issued.key.prefix, issued.key.id)
      const result = await keyring.verify(forged)
      expect(codeOf(result)).toBe('KEYROT_INVALID_SECRET')
      expect(!result.ok && result.keyId).toBe(issued.key.id)
    }
    expect(codeOf(await keyring.verify(revoked.token))).toBe('KEYROT_KEY_REVOKED')
    expect(codeOf(await keyring.verify(expired.token))).toBe('KEYROT_KEY_EXPIRED')
    expect(codeOf(await keyring.verify(rotated.token))).toBe('KEYROT_KEY_EXPIRED')
  })

  it('answers KEYROT_INVALID_SECRET to a wrong secret for an active key and to the right id under another prefix', async () => {
    const { keyring } = setup(cacheOptions)
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    expect(codeOf(await keyring.verify(generateToken('sk_live', key.id)))).toBe('KEYROT_INVALID_SECRET')
    expect(codeOf(await keyring.verify(generateToken('sk_test', key.id)))).toBe('KEYROT_INVALID_SECRET')
  })

  it('answers KEYROT_KEY_NOT_FOUND to an unknown id and KEYROT_MALFORMED_TOKEN to garbage, both public as KEYROT_INVALID_KEY', async () => {
    const { keyring } = setup(cacheOptions)
    const unknown = await keyring.verify(generateToken('sk_live', 'AAAAAAAAAAAAAAAA'))
    expect(codeOf(unknown)).toBe('KEYROT_KEY_NOT_FOUND')
    expect(!unknown.ok && unknown.keyId).toBe('AAAAAAAAAAAAAAAA')
    const garbage = await keyring.verify('sk_live_not-a-token')
    expect(codeOf(garbage)).toBe('KEYROT_MALFORMED_TOKEN')
    expect(!garbage.ok && garbage.keyId).toBeUndefined()
    for (const code of ['KEYROT_KEY_NOT_FOUND', 'KEYROT_MALFORMED_TOKEN', 'KEYROT_INVALID_SECRET'] as const) {
      expect(publicCodeOf(code)).toBe('KEYROT_INVALID_KEY')
    }
  })

  it('checks scopes only after the secret is proven', async () => {
    const { keyring } = setup(cacheOptions)
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci', scopes: ['read'] })
    const forged = await keyring.verify(generateToken(key.prefix, key.id), { scopes: ['admin'] })
    expect(codeOf(forged)).toBe('KEYROT_INVALID_SECRET')
    const lacking = await keyring.verify(token, { scopes: ['read', 'admin', 'billing'] })
    expect(codeOf(lacking)).toBe('KEYROT_INSUFFICIENT_SCOPE')
    expect(!lacking.ok && (lacking.error as InsufficientScopeError).missing).toEqual(['admin', 'billing'])
    expect(codeOf(await keyring.verify(token, { scopes: ['read'] }))).toBe('ok')
  })
})

describe('verify', () => {
  it('never throws and never accepts, whatever it is given', async () => {
    const { keyring } = setup()
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.anything(), fc.string({ maxLength: 200 }), fc.constant(token.slice(0, -1))), async (input) => {
        const result = await keyring.verify(input as string)
        expect(result.ok).toBe(false)
        expect(['KEYROT_MALFORMED_TOKEN', 'KEYROT_KEY_NOT_FOUND', 'KEYROT_INVALID_SECRET']).toContain(codeOf(result))
      }),
      { numRuns: 300 },
    )
  })

  it('accepts, once a token is proven and cached, that exact token and no edit of it', async () => {
    const { keyring } = setup()
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    expect(codeOf(await keyring.verify(token))).toBe('ok')
    const edit = fc.oneof(
      fc.tuple(fc.nat(token.length - 1), fc.integer({ min: 0x20, max: 0x7e })).map(([at, code]) => token.slice(0, at) + String.fromCharCode(code) + token.slice(at + 1)),
      fc.tuple(fc.nat(token.length), fc.integer({ min: 0x20, max: 0x7e })).map(([at, code]) => token.slice(0, at) + String.fromCharCode(code) + token.slice(at)),
      fc.nat(token.length - 1).map((at) => token.slice(0, at) + token.slice(at + 1)),
    )
    await fc.assert(
      fc.asyncProperty(edit.filter((edited) => edited !== token), async (edited) => {
        expect(codeOf(await keyring.verify(edited))).not.toBe('ok')
      }),
      { numRuns: 500 },
    )
    expect(await keyring.verify(token)).toMatchObject({ ok: true, cached: true })
  })

  it('reports each failure to verification.failed listeners with the precise code and no token', async () => {
    const { keyring } = setup()
    const failures: KeyringEvents['verification.failed'][] = []
    keyring.on('verification.failed', (event) => failures.push(event))
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const forged = generateToken(key.prefix, key.id)
    await keyring.verify(forged, { clientIp: '127.0.0.1' })
    await keyring.verify('garbage')
    expect(failures).toEqual([
      expect.objectContaining({ code: 'KEYROT_INVALID_SECRET', keyId: key.id, tenantId: 'acme', clientIp: '127.0.0.1' }),
      expect.objectContaining({ code: 'KEYROT_MALFORMED_TOKEN', keyId: undefined }),
    ])
    expect(JSON.stringify(failures)).not.toContain(forged)
  })

  it('counts usage and tells listeners of keys still used in grace, at most once per interval', async () => {
    const { clock, keyring } = setup({ graceUsageEventInterval: '1m' })
    const graceUses: KeyringEvents['key.used_in_grace'][] = []
    keyring.on('key.used_in_grace', (event) => graceUses.push(event))
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const { key: next } = await keyring.rotate(key.id)
    for (let i = 0; i < 3; i++) expect(codeOf(await keyring.verify(token))).toBe('ok')
    clock.advance(60_000)
    expect(codeOf(await keyring.verify(token, { clientIp: '127.0.0.1' }))).toBe('ok')
    expect(graceUses).toHaveLength(2)
    expect(graceUses[1]).toMatchObject({ keyId: key.id, rotatedTo: next.id, clientIp: '127.0.0.1' })
    const used = await keyring.get(key.id)
    expect(used).toMatchObject({ usageCount: 4, lastUsedAt: clock.now(), lastUsedInGraceAt: clock.now() })
  })
})
