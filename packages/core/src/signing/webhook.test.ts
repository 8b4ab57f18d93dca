import { createHmac, randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { ManualClock } from '../clock.js'
import { FastTestHasher } from '../hash/hasher.js'
import { createKeyring } from '../lifecycle/keyring.js'
import { MemoryStore } from '../store/memory-store.js'
import { generateSigningSecret } from './secret.js'
import { createWebhookVerifier, signWebhook, verifyWebhook } from './webhook.js'

function setup() {
  const clock = new ManualClock(Date.UTC(2031, 4, 6, 12))
  const keyring = createKeyring({
    store: new MemoryStore(),
    clock,
    hasher: new FastTestHasher(),
    gracePeriod: '1h',
    signing: { masterKeys: [{ id: 'm1', key: randomBytes(32) }] },
  })
  return { clock, keyring }
}

const payload = '{"type":"invoice.paid","amount":42}'

describe('signWebhook', () => {
  it('signs <id>.<timestamp>.<payload> with HMAC-SHA256 of the secret bytes, as the specification computes it', async () => {
    const { keyring, clock } = setup()
    const { secret, key } = await keyring.createSigningSecret({ tenantId: 'acme', name: 'w' })
    const headers = await signWebhook(keyring, { secretId: key.id, id: 'msg_1', payload })
    const seconds = Math.floor(clock.now() / 1000)
    const expected = createHmac('sha256', Buffer.from(secret.slice(6), 'base64')).update(`msg_1.${seconds}.${payload}`).digest('base64')
    expect(headers).toEqual({ 'webhook-id': 'msg_1', 'webhook-timestamp': String(seconds), 'webhook-signature': `v1,${expected}` })
  })

  it('signs with both secrets during grace, and with the new one only after', async () => {
    const { keyring, clock } = setup()
    const first = await keyring.createSigningSecret({ tenantId: 'acme', name: 'w' })
    const rotated = await keyring.rotate(first.key.id)
    const verifyOld = createWebhookVerifier({ secrets: [first.secret], clock })
    const verifyNew = createWebhookVerifier({ secrets: [rotated.token], clock })

    const during = await signWebhook(keyring, { secretId: first.key.id, id: 'msg_2', payload })
    expect(during['webhook-signature'].split(' ')).toHaveLength(2)
    expect(verifyOld({ payload, headers: during })).toMatchObject({ ok: true, secretIndex: 0 })
    expect(verifyNew({ payload, headers: during })).toMatchObject({ ok: true })

    clock.advance(3_600_000)
    const after = await signWebhook(keyring, { secretId: first.key.id, id: 'msg_3', payload })
    expect(after['webhook-signature'].split(' ')).toHaveLength(1)
    expect(verifyNew({ payload, headers: after }).ok).toBe(true)
    expect(verifyOld({ payload, headers: after })).toMatchObject({ ok: false, error: { code: 'KEYROT_INVALID_SIGNATURE' } })
  })

  it('signs with the new secret only after an emergency rotation', async () => {
    const { keyring, clock } = setup()
    const first = await keyring.createSigningSecret({ tenantId: 'acme', name: 'w' })
    const next = await keyring.emergencyRotate(first.key.id, { incidentId: 'INC-1' })
    const headers = await signWebhook(keyring, { secretId: first.key.id, id: 'msg_4', payload })
    expect(headers['webhook-signature'].split(' ')).toHaveLength(1)
    expect(createWebhookVerifier({ secrets: [next.token], clock })({ payload, headers }).ok).toBe(true)
    expect(createWebhookVerifier({ secrets: [first.secret], clock })({ payload, headers }).ok).toBe(false)
  })

  it('refuses to sign with a revoked secret, an API key or an unknown id', async () => {
    const { keyring } = setup()
    const { key } = await keyring.createSigningSecret({ tenantId: 'acme', name: 'w' })
    const apiKey = await keyring.create({ tenantId: 'acme', name: 'k' })
    await expect(signWebhook(keyring, { secretId: apiKey.key.id, id: 'm', payload })).rejects.toMatchObject({ code: 'KEYROT_INVALID_INPUT', field: 'secretId' })
    await expect(signWebhook(keyring, { secretId: 'AAAAAAAAAAAAAAAA', id: 'm', payload })).rejects.toMatchObject({ code: 'KEYROT_KEY_NOT_FOUND' })
    await expect(signWebhook(keyring, { secretId: key.id, id: 'has space', payload })).rejects.toMatchObject({ field: 'id' })
    await keyring.revoke(key.id)
    await expect(signWebhook(keyring, { secretId: key.id, id: 'm', payload })).rejects.toMatchObject({ code: 'KEYROT_KEY_REVOKED' })
  })

  it('signs bytes exactly as received (non-UTF-8 payloads too)', async () => {
    const { keyring, clock } = setup()
    const { secret, key } = await keyring.createSigningSecret({ tenantId: 'acme', name: 'w' })
    const bytes = Buffer.from([0xff, 0x00, 0xfe, 0x41])
    const headers = await signWebhook(keyring, { secretId: key.id, id: 'bin', payload: bytes })
    expect(verifyWebhook({ payload: bytes, headers }, { secrets: [secret], clock }).ok).toBe(true)
    expect(verifyWebhook({ payload: Buffer.from([0xff, 0x00, 0xfe, 0x42]), headers }, { secrets: [secret], clock }).ok).toBe(false)
  })
})

describe('createWebhookVerifier', () => {
  const secret = generateSigningSecret()
  const clock = new ManualClock(Date.UTC(2031, 4, 6, 12))
  const seconds = Math.floor(clock.now() / 1000)
  const sign = (id: string, ts: number, body: string, key = secret) =>
    `v1,${createHmac('sha256', Buffer.from(key.slice(6), 'base64')).update(`${id}.${ts}.${body}`).digest('base64')}`
  const verify = createWebhookVerifier({ secrets: [generateSigningSecret(), secret], clock })

  it('accepts any configured secret and reports which one matched', () => {
    const headers = { 'Webhook-Id': 'msg_1', 'Webhook-Timestamp': String(seconds), 'Webhook-Signature': sign('msg_1', seconds, payload) }
    expect(verify({ payload, headers })).toEqual({ ok: true, id: 'msg_1', timestamp: seconds * 1000, secretIndex: 1 })
  })

  it('skips unknown signature versions and finds a v1 signature among several', () => {
    const headers = {
      'webhook-id': 'msg_1',
      'webhook-timestamp': String(seconds),
      'webhook-signature': `v1a,AAAA v1,${randomBytes(32).toString('base64')} ${sign('msg_1', seconds, payload)}`,
    }
    expect(verify({ payload, headers }).ok).toBe(true)
  })

  it('refuses stale and future timestamps beyond the tolerance with KEYROT_STALE_TIMESTAMP', () => {
    for (const ts of [seconds - 301, seconds + 301]) {
      const headers = { 'webhook-id': 'm', 'webhook-timestamp': String(ts), 'webhook-signature': sign('m', ts, payload) }
      expect(verify({ payload, headers })).toMatchObject({ ok: false, error: { code: 'KEYROT_STALE_TIMESTAMP' } })
    }
    for (const ts of [seconds - 300, seconds + 300]) {
      const headers = { 'webhook-id': 'm', 'webhook-timestamp': String(ts), 'webhook-signature': sign('m', ts, payload) }
      expect(verify({ payload, headers }).ok).toBe(true)
    }
  })

  it('refuses a changed payload, id or timestamp with KEYROT_INVALID_SIGNATURE', () => {
    const signature = sign('m', seconds, payload)
    const base = { 'webhook-id': 'm', 'webhook-timestamp': String(seconds), 'webhook-signature': signature }
    expect(verify({ payload: payload + ' ', headers: base })).toMatchObject({ ok: false, error: { code: 'KEYROT_INVALID_SIGNATURE' } })
    expect(verify({ payload, headers: { ...base, 'webhook-id': 'n' } })).toMatchObject({ ok: false, error: { code: 'KEYROT_INVALID_SIGNATURE' } })
    expect(verify({ payload, headers: { ...base, 'webhook-timestamp': String(seconds + 1) } })).toMatchObject({ ok: false, error: { code: 'KEYROT_INVALID_SIGNATURE' } })
  })

  it('says which headers are missing, and refuses malformed ones with KEYROT_INVALID_REQUEST', () => {
    const missing = verify({ payload, headers: { 'webhook-id': 'm' } })
    expect(missing).toMatchObject({ ok: false, error: { code: 'KEYROT_MISSING_SIGNATURE', missing: ['webhook-timestamp', 'webhook-signature'] } })
    const badTs = verify({ payload, headers: { 'webhook-id': 'm', 'webhook-timestamp': '12.5', 'webhook-signature': 'v1,x' } })
    expect(badTs).toMatchObject({ ok: false, error: { code: 'KEYROT_INVALID_REQUEST' } })
    const twice = verify({ payload, headers: { 'webhook-id': ['a', 'b'], 'webhook-timestamp': String(seconds), 'webhook-signature': 'v1,x' } })
    expect(twice).toMatchObject({ ok: false, error: { code: 'KEYROT_INVALID_REQUEST' } })
    expect(verify(null as never)).toMatchObject({ ok: false, error: { code: 'KEYROT_INVALID_REQUEST' } })
  })

  it('reads fetch Headers', () => {
    const headers = new Headers({ 'webhook-id': 'm', 'webhook-timestamp': String(seconds), 'webhook-signature': sign('m', seconds, payload) })
    expect(verify({ payload, headers }).ok).toBe(true)
  })

  it('refuses bad options at construction, never echoing a secret', () => {
    expect(() => createWebhookVerifier({ secrets: [] })).toThrow(TypeError)
    expect(() => createWebhookVerifier({ secrets: ['whsec_short'] })).toThrow(/secrets\[0\] must be a signing secret/)
    try {
      createWebhookVerifier({ secrets: ['whsec_c2hvcnQ='] })
    } catch (error) {
      expect((error as Error).message).not.toContain('c2hvcnQ')
    }
    expect(() => createWebhookVerifier({ secrets: [secret], tolerance: 500 })).toThrow(/tolerance must be at least 1s/)
  })
})
