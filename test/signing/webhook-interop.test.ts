import { randomBytes } from 'node:crypto'
import { createKeyring, createWebhookVerifier, FastTestHasher, ManualClock, MemoryStore, signWebhook } from '@keyrot/core'
import { Webhook, WebhookVerificationError } from 'standardwebhooks'
import { describe, expect, it } from 'vitest'

// `standardwebhooks` (the specification's reference library) checks timestamps
// against the real clock, so the keyring's clock starts at the real time.
function setup() {
  const clock = new ManualClock(Date.now())
  const keyring = createKeyring({
    store: new MemoryStore(),
    clock,
    hasher: new FastTestHasher(),
    gracePeriod: '10m',
    signing: { masterKeys: [{ id: 'm1', key: randomBytes(32) }] },
  })
  return { clock, keyring }
}

const payload = JSON.stringify({ type: 'invoice.paid', data: { id: 'in_1', amount: 4200, note: 'café ✓' } })

function accepts(receiver: Webhook, headers: Record<string, string>): boolean {
  try {
    receiver.verify(payload, headers)
    return true
  } catch (error) {
    if (error instanceof WebhookVerificationError) return false
    throw error
  }
}

describe('webhooks interoperate with the standardwebhooks library across a rotation', () => {
  it('before, during and after a rotation, receivers holding the old secret only or the new secret only', async () => {
    const { keyring, clock } = setup()
    const first = await keyring.createSigningSecret({ tenantId: 'acme', name: 'webhooks' })
    const oldReceiver = new Webhook(first.secret)

    const before = await signWebhook(keyring, { secretId: first.key.id, id: 'msg_before', payload })
    expect(accepts(oldReceiver, before)).toBe(true)
    expect(oldReceiver.verify(payload, before)).toEqual(JSON.parse(payload))

    const rotated = await keyring.rotate(first.key.id)
    const newReceiver = new Webhook(rotated.token)
    expect(accepts(newReceiver, before)).toBe(false)

    // Grace period: the sender signs with both secrets, so neither receiver notices the rotation.
    for (const secretId of [first.key.id, rotated.key.id]) {
      const during = await signWebhook(keyring, { secretId, id: `msg_during_${secretId}`, payload })
      expect(during['webhook-signature'].split(' ')).toHaveLength(2)
      expect(accepts(oldReceiver, during)).toBe(true)
      expect(accepts(newReceiver, during)).toBe(true)
    }

    // Grace over: only the new secret signs; a receiver still on the old one is refused.
    // (Ended now rather than by moving the clock ten minutes on, which the library would see as a future timestamp.)
    await keyring.endGrace(first.key.id)
    const after = await signWebhook(keyring, { secretId: first.key.id, id: 'msg_after', payload })
    expect(after['webhook-signature'].split(' ')).toHaveLength(1)
    expect(accepts(newReceiver, after)).toBe(true)
    expect(accepts(oldReceiver, after)).toBe(false)
  })

  it('after an emergency rotation only the new secret signs', async () => {
    const { keyring } = setup()
    const first = await keyring.createSigningSecret({ tenantId: 'acme', name: 'webhooks' })
    const next = await keyring.emergencyRotate(first.key.id, { incidentId: 'INC-42' })
    const headers = await signWebhook(keyring, { secretId: first.key.id, id: 'msg_x', payload })
    expect(accepts(new Webhook(next.token), headers)).toBe(true)
    expect(accepts(new Webhook(first.secret), headers)).toBe(false)
  })

  it('our receiver verifies what the library signs, and refuses its stale and future messages', () => {
    const secret = `whsec_${randomBytes(32).toString('base64')}`
    const sender = new Webhook(secret)
    const verify = createWebhookVerifier({ secrets: [secret] })
    const headersAt = (date: Date) => ({
      'webhook-id': 'msg_lib',
      'webhook-timestamp': String(Math.floor(date.getTime() / 1000)),
      'webhook-signature': sender.sign('msg_lib', date, payload),
    })
    expect(verify({ payload, headers: headersAt(new Date()) })).toMatchObject({ ok: true, id: 'msg_lib' })
    expect(verify({ payload: Buffer.from(payload), headers: headersAt(new Date()) }).ok).toBe(true)
    expect(verify({ payload, headers: headersAt(new Date(Date.now() - 6 * 60_000)) })).toMatchObject({ ok: false, error: { code: 'KEYROT_STALE_TIMESTAMP' } })
    expect(verify({ payload, headers: headersAt(new Date(Date.now() + 6 * 60_000)) })).toMatchObject({ ok: false, error: { code: 'KEYROT_STALE_TIMESTAMP' } })
    expect(verify({ payload: payload.replace('4200', '4201'), headers: headersAt(new Date()) })).toMatchObject({ ok: false, error: { code: 'KEYROT_INVALID_SIGNATURE' } })
  })
})
