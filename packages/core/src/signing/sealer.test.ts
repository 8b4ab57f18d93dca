import { randomBytes } from 'node:crypto'
import { inspect } from 'node:util'
import { describe, expect, it } from 'vitest'
import { SecretUnreadableError } from './errors.js'
import { isSealedSecret, masterKeysFromEnv, SecretSealer } from './sealer.js'
import { generateSigningSecret } from './secret.js'

const keyA = randomBytes(32)
const keyB = randomBytes(32)

describe('SecretSealer', () => {
  it('opens what it sealed, and the sealed form holds no trace of the secret', () => {
    const sealer = new SecretSealer({ masterKeys: [{ id: 'a', key: keyA }] })
    const secret = generateSigningSecret()
    const sealed = sealer.seal(secret, 'key1')
    expect(isSealedSecret(sealed)).toBe(true)
    expect(sealed.startsWith('$keyrot-sealed$v1$a$')).toBe(true)
    const body = secret.slice('whsec_'.length)
    expect(sealed).not.toContain(body)
    expect(sealed).not.toContain(Buffer.from(body, 'base64').toString('base64url'))
    expect(sealed).not.toContain(Buffer.from(body, 'base64').toString('hex'))
    expect(sealer.open(sealed, 'key1')).toBe(secret)
  })

  it('uses a fresh nonce for every encryption of the same secret', () => {
    const sealer = new SecretSealer({ masterKeys: [{ id: 'a', key: keyA }] })
    const secret = generateSigningSecret()
    const seen = new Set(Array.from({ length: 50 }, () => sealer.seal(secret, 'key1').split('$')[4]))
    expect(seen.size).toBe(50)
  })

  it('refuses a sealed secret moved onto another key id (the key id is associated data)', () => {
    const sealer = new SecretSealer({ masterKeys: [{ id: 'a', key: keyA }] })
    const sealed = sealer.seal(generateSigningSecret(), 'key1')
    expect(() => sealer.open(sealed, 'key2')).toThrow(SecretUnreadableError)
  })

  it('refuses altered ciphertext', () => {
    const sealer = new SecretSealer({ masterKeys: [{ id: 'a', key: keyA }] })
    const sealed = sealer.seal(generateSigningSecret(), 'key1')
    const parts = sealed.split('$')
    const body = Buffer.from(parts[5] as string, 'base64url')
    body[0] = (body[0] as number) ^ 1
    parts[5] = body.toString('base64url')
    expect(() => sealer.open(parts.join('$'), 'key1')).toThrow(/authentication failed/)
  })

  it('encrypts with the first master key and decrypts with any configured one', () => {
    const old = new SecretSealer({ masterKeys: [{ id: 'a', key: keyA }] })
    const both = new SecretSealer({ masterKeys: [{ id: 'b', key: keyB }, { id: 'a', key: keyA.toString('base64') }] })
    const secret = generateSigningSecret()
    const sealedOld = old.seal(secret, 'k')
    expect(both.open(sealedOld, 'k')).toBe(secret)
    const sealedNew = both.seal(secret, 'k')
    expect(both.masterKeyIdOf(sealedNew)).toBe('b')
    expect(() => old.open(sealedNew, 'k')).toThrow(/master key "b" is not configured/)
  })

  it('refuses master keys that are not 32 bytes, naming the option and never the value', () => {
    const short = randomBytes(16).toString('base64')
    expect(() => new SecretSealer({ masterKeys: [{ id: 'a', key: short }] })).toThrow(TypeError)
    try {
      new SecretSealer({ masterKeys: [{ id: 'a', key: short }] })
    } catch (error) {
      expect((error as Error).message).toContain('signing.masterKeys[0].key')
      expect((error as Error).message).not.toContain(short)
    }
    expect(() => new SecretSealer({ masterKeys: [] })).toThrow(/signing.masterKeys must be a non-empty array/)
    expect(() => new SecretSealer({ masterKeys: [{ id: 'a', key: keyA }, { id: 'a', key: keyB }] })).toThrow(/appears twice/)
    expect(() => new SecretSealer({ masterKeys: [{ id: 'a$b', key: keyA }] })).toThrow(/\.id must be/)
    expect(() => new SecretSealer({ masterKeys: [{ id: 'a', key: 'not base64!' }] })).toThrow(/not base64/)
  })

  it('never prints key material when inspected or serialised', () => {
    const sealer = new SecretSealer({ masterKeys: [{ id: 'a', key: keyA }] })
    const printed = inspect(sealer, { depth: 10, showHidden: true }) + JSON.stringify(sealer)
    expect(printed).toContain('"a"')
    expect(printed).not.toContain(keyA.toString('base64'))
    expect(printed).not.toContain(keyA.toString('hex'))
  })
})

describe('masterKeysFromEnv', () => {
  it('reads id:base64 pairs, newest first', () => {
    const keys = masterKeysFromEnv({ KEYROT_MASTER_KEYS: `2025-06:${keyB.toString('base64')}, 2025-01:${keyA.toString('base64url')}` })
    expect(keys.map((key) => key.id)).toEqual(['2025-06', '2025-01'])
    const sealer = new SecretSealer({ masterKeys: keys })
    expect(sealer.currentKeyId).toBe('2025-06')
    expect(Buffer.from(keys[1]?.key as Uint8Array).equals(keyA)).toBe(true)
  })

  it('names the variable when it is missing or malformed, without echoing key material', () => {
    expect(() => masterKeysFromEnv({})).toThrow(/KEYROT_MASTER_KEYS is not set/)
    expect(() => masterKeysFromEnv({ MY_KEYS: 'nocolon' }, 'MY_KEYS')).toThrow(/MY_KEYS entry 1/)
    const short = randomBytes(31).toString('base64')
    let message = ''
    try {
      masterKeysFromEnv({ KEYROT_MASTER_KEYS: `k1:${short}` })
    } catch (error) {
      message = (error as Error).message
    }
    expect(message).toMatch(/KEYROT_MASTER_KEYS key "k1" must be exactly 32 bytes; got 31/)
    expect(message).not.toContain(short)
  })
})
