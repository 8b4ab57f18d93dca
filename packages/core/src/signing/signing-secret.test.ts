import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { ManualClock } from '../clock.js'
import { Argon2Hasher, FastTestHasher } from '../hash/hasher.js'
import { createKeyring } from '../lifecycle/keyring.js'
import { MemoryStore } from '../store/memory-store.js'
import { generateToken } from '../token/format.js'
import { isSealedSecret } from './sealer.js'
import { isSigningSecret, signingKeyBytes } from './secret.js'

const masterKeys = [{ id: 'm1', key: randomBytes(32) }]

function setup() {
  const clock = new ManualClock()
  const store = new MemoryStore()
  const keyring = createKeyring({ store, clock, hasher: new FastTestHasher(), gracePeriod: '1h', signing: { masterKeys } })
  return { clock, store, keyring }
}

describe('keyring.createSigningSecret', () => {
  it('returns a Standard Webhooks secret once and stores it only sealed', async () => {
    const { keyring, store } = setup()
    const { secret, key } = await keyring.createSigningSecret({ tenantId: 'acme', name: 'webhooks' })
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/)
    expect(signingKeyBytes(secret)).toHaveLength(32)
    expect(isSigningSecret(key)).toBe(true)
    expect(key.state).toBe('active')
    expect('hash' in key).toBe(false)
    const record = await store.get(key.id)
    expect(isSealedSecret(record?.hash as string)).toBe(true)
    expect(JSON.stringify(record)).not.toContain(secret.slice('whsec_'.length))
    expect(keyring.options.signing?.open(record?.hash as string, key.id)).toBe(secret)
  })

  it('refuses to create one without master keys, and refuses the reserved prefix for API keys', async () => {
    const keyring = createKeyring({ hasher: new FastTestHasher() })
    await expect(keyring.createSigningSecret({ tenantId: 'acme', name: 'w' })).rejects.toThrow(/signing secrets need master keys/)
    await expect(setup().keyring.create({ tenantId: 'acme', name: 'k', prefix: 'whsec' })).rejects.toMatchObject({ code: 'KEYROT_INVALID_INPUT', field: 'prefix' })
  })

  it('validates its input like create()', async () => {
    const { keyring } = setup()
    await expect(keyring.createSigningSecret({ tenantId: '', name: 'w' })).rejects.toMatchObject({ field: 'tenantId' })
    await expect(keyring.createSigningSecret({ tenantId: 'acme', name: '' })).rejects.toMatchObject({ field: 'name' })
    await expect(keyring.createSigningSecret(null as never)).rejects.toMatchObject({ code: 'KEYROT_INVALID_INPUT' })
  })

  it('rotates into a new sealed secret with a grace period on the old one', async () => {
    const { keyring, store, clock } = setup()
    const first = await keyring.createSigningSecret({ tenantId: 'acme', name: 'webhooks' })
    const rotated = await keyring.rotate(first.key.id)
    expect(rotated.token).toMatch(/^whsec_/)
    expect(rotated.token).not.toBe(first.secret)
    expect(rotated.key.prefix).toBe('whsec')
    expect(rotated.key.rotatedFrom).toBe(first.key.id)
    expect(rotated.previous.state).toBe('grace')
    expect(rotated.previous.expiresAt).toBe(clock.now() + 3_600_000)
    const next = await store.get(rotated.key.id)
    expect(keyring.options.signing?.open(next?.hash as string, rotated.key.id)).toBe(rotated.token)
  })

  it('emergency-rotates (old revoked at once) and revokes', async () => {
    const { keyring } = setup()
    const first = await keyring.createSigningSecret({ tenantId: 'acme', name: 'webhooks' })
    const emergency = await keyring.emergencyRotate(first.key.id, { incidentId: 'INC-7' })
    expect(emergency.revoked.state).toBe('revoked')
    expect(emergency.token).toMatch(/^whsec_/)
    const revoked = await keyring.revoke(emergency.key.id)
    expect(revoked.state).toBe('revoked')
  })

  it('never verifies as an API key, even with a well-formed token for its id', async () => {
    for (const hasher of [new FastTestHasher(), new Argon2Hasher({ memoryCost: 64, timeCost: 1 })]) {
      const keyring = createKeyring({ hasher, signing: { masterKeys } })
      const { secret, key } = await keyring.createSigningSecret({ tenantId: 'acme', name: 'w' })
      expect((await keyring.verify(secret)).ok).toBe(false)
      const forged = await keyring.verify(generateToken('whsec', key.id))
      expect(forged).toMatchObject({ ok: false, error: { code: 'KEYROT_INVALID_SECRET' } })
    }
  })
})
