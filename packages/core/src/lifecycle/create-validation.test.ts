import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { ManualClock } from '../clock.js'
import { InvalidInputError } from '../errors.js'
import { FastTestHasher } from '../hash/hasher.js'
import { MemoryStore } from '../store/memory-store.js'
import { createKeyring, type CreateKeyInput } from './keyring.js'

const clock = new ManualClock()
const now = clock.now()
const valid: CreateKeyInput = { tenantId: 'acme', name: 'ci' }

const circular: Record<string, unknown> = {}
circular['self'] = circular

const invalid: [string, string, Partial<Record<keyof CreateKeyInput, unknown>>][] = [
  ['tenantId', 'missing', { tenantId: undefined }],
  ['tenantId', 'empty', { tenantId: '' }],
  ['tenantId', 'with a space', { tenantId: 'acme corp' }],
  ['tenantId', 'starting with a dash', { tenantId: '-acme' }],
  ['tenantId', 'too long', { tenantId: 'a'.repeat(129) }],
  ['tenantId', 'non-ASCII', { tenantId: 'acmé' }],
  ['tenantId', 'a number', { tenantId: 42 }],
  ['name', 'empty', { name: '' }],
  ['name', 'blank', { name: '   ' }],
  ['name', 'with a control character', { name: 'ci\u0007' }],
  ['name', 'too long', { name: 'n'.repeat(201) }],
  ['scopes', 'not an array', { scopes: 'read' }],
  ['scopes', 'with an empty scope', { scopes: [''] }],
  ['scopes', 'with a space in a scope', { scopes: ['read all'] }],
  ['scopes', 'with a non-string scope', { scopes: [1] }],
  ['scopes', 'with 65 scopes', { scopes: Array.from({ length: 65 }, (_, i) => `s${i}`) }],
  ['metadata', 'an array', { metadata: [] }],
  ['metadata', 'null', { metadata: null }],
  ['metadata', 'a string', { metadata: 'team=infra' }],
  ['metadata', 'circular', { metadata: circular }],
  ['metadata', 'holding a BigInt', { metadata: { n: 1n } }],
  ['metadata', 'over 8 KiB', { metadata: { blob: 'x'.repeat(8_200) } }],
  ['expiresAt', 'in the past', { expiresAt: now - 1 }],
  ['expiresAt', 'now', { expiresAt: now }],
  ['expiresAt', 'not a date', { expiresAt: 'tomorrow' }],
  ['expiresAt', 'NaN', { expiresAt: Number.NaN }],
  ['expiresAt', 'infinite', { expiresAt: Number.POSITIVE_INFINITY }],
  ['expiresAt', 'an object', { expiresAt: {} }],
  ['expiresAt', 'an invalid Date', { expiresAt: new Date('nope') }],
  ['expiresIn', 'zero', { expiresIn: 0 }],
  ['expiresIn', 'negative', { expiresIn: -1 }],
  ['expiresIn', 'not a duration', { expiresIn: 'a while' }],
  ['expiresIn', 'beyond any date', { expiresIn: 9e15 }],
  ['expiresIn', 'given with expiresAt', { expiresIn: '1d', expiresAt: now + 1_000 }],
  ['prefix', 'uppercase', { prefix: 'SK_LIVE' }],
  ['prefix', 'with a dash', { prefix: 'sk-live' }],
  ['rateLimit.limit', 'zero', { rateLimit: { limit: 0, window: '1m' } }],
  ['rateLimit.window', 'under a second', { rateLimit: { limit: 10, window: '10ms' } }],
  ['rateLimit', 'a number', { rateLimit: 5 }],
]

describe('create input validation', () => {
  it.each(invalid)('refuses a %s that is %s with InvalidInputError naming it, storing nothing', async (field, _why, patch) => {
    const store = new MemoryStore()
    const keyring = createKeyring({ clock, store, hasher: new FastTestHasher() })
    const error = await keyring.create({ ...valid, ...patch } as CreateKeyInput).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(InvalidInputError)
    expect((error as InvalidInputError).field).toBe(field)
    expect((error as InvalidInputError).code).toBe('KEYROT_INVALID_INPUT')
    expect((error as InvalidInputError).status).toBe(400)
    expect(store.size).toBe(0)
  })

  it('refuses input that is not an object', async () => {
    const keyring = createKeyring({ clock, hasher: new FastTestHasher() })
    for (const input of [null, undefined, 'acme', 7]) {
      const error = await keyring.create(input as never).catch((caught: unknown) => caught)
      expect(error).toBeInstanceOf(InvalidInputError)
      expect((error as InvalidInputError).field).toBe('input')
    }
  })

  it('accepts the edges of every rule', async () => {
    const keyring = createKeyring({ clock, hasher: new FastTestHasher() })
    const { key } = await keyring.create({
      tenantId: `a${'.-_:@'.repeat(25)}bc`,
      name: 'n'.repeat(200),
      scopes: [...Array.from({ length: 63 }, (_, i) => `s${i}`), `r${'/'.repeat(63)}`],
      metadata: { blob: 'x'.repeat(8_000) },
      expiresAt: new Date(now + 1).toISOString(),
      prefix: 'a'.repeat(32),
      rateLimit: { limit: 1, window: '1s' },
    })
    expect(key.scopes).toHaveLength(64)
    expect(key.expiresAt).toBe(now + 1)
    expect(key.rateLimit).toEqual({ limit: 1, windowMs: 1_000 })
  })

  it('counts expiresIn from the key\'s createdAt, for keys and signing secrets alike', async () => {
    const keyring = createKeyring({ clock, hasher: new FastTestHasher(), signing: { masterKeys: [{ id: 'm1', key: randomBytes(32) }] } })
    const { key } = await keyring.create({ ...valid, expiresIn: '30d' })
    expect(key.expiresAt! - key.createdAt).toBe(30 * 86_400_000)
    expect((await keyring.get(key.id))?.expiresAt).toBe(key.expiresAt)
    const { key: secret } = await keyring.createSigningSecret({ ...valid, expiresIn: 60_000 })
    expect(secret.expiresAt! - secret.createdAt).toBe(60_000)
    // null expiresAt is "never", so it may come along with a lifetime.
    const { key: both } = await keyring.create({ ...valid, expiresAt: null, expiresIn: '1h' })
    expect(both.expiresAt! - both.createdAt).toBe(3_600_000)
  })

  it('folds duplicate scopes', async () => {
    const keyring = createKeyring({ clock, hasher: new FastTestHasher() })
    const { key } = await keyring.create({ ...valid, scopes: ['read', 'write', 'read'] })
    expect(key.scopes).toEqual(['read', 'write'])
  })

  it('copies metadata, so later changes by the caller do not reach the store', async () => {
    const keyring = createKeyring({ clock, hasher: new FastTestHasher() })
    const metadata = { team: 'infra' }
    const { key } = await keyring.create({ ...valid, metadata })
    metadata.team = 'changed'
    expect((await keyring.get(key.id))?.metadata).toEqual({ team: 'infra' })
  })
})
