import { randomBytes } from 'node:crypto'
import { Writable } from 'node:stream'
import { inspect } from 'node:util'
import {
  attachAuditLog,
  createKeyring,
  createSignedRequestVerifier,
  createWebhookVerifier,
  FastTestHasher,
  ManualClock,
  masterKeysFromEnv,
  MemoryStore,
  rewrapSigningSecrets,
  signRequest,
  signWebhook,
  type KeyringEventName,
} from '@keyrot/core'
import pino from 'pino'
import { describe, expect, it } from 'vitest'

/** The forms a leaked secret could take: as issued, its base64 body, the key bytes in hex, base64url and latin1. */
function formsOf(secret: string): string[] {
  const body = secret.slice('whsec_'.length)
  const bytes = Buffer.from(body, 'base64')
  return [secret, body, bytes.toString('hex'), bytes.toString('base64url'), bytes.toString('latin1')]
}

function errorText(error: unknown): string {
  return [String(error), JSON.stringify(error), (error as Error)?.stack ?? '', inspect(error, { depth: 10, showHidden: true })].join('\n')
}

describe('no signing secret or master key in the store, logs, events or errors', () => {
  it('survives a full life: create, sign, verify, refuse, rotate, emergency-rotate, revoke, re-wrap, lose a master key', async () => {
    const lines: string[] = []
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString('utf8'))
        done()
      },
    })
    const logger = pino({ level: 'debug' }, sink)
    const masterOld = randomBytes(32)
    const masterNew = randomBytes(32)
    const env = { KEYROT_MASTER_KEYS: `old:${masterOld.toString('base64')}` }
    const clock = new ManualClock(Date.UTC(2031, 4, 6, 12))
    const store = new MemoryStore()
    const keyring = createKeyring({ store, clock, logger, hasher: new FastTestHasher(), gracePeriod: '1h', signing: { masterKeys: masterKeysFromEnv(env) } })
    attachAuditLog(keyring, logger)
    const events: unknown[] = []
    const names: KeyringEventName[] = ['key.created', 'key.rotated', 'key.revoked', 'key.emergency_rotated', 'key.expiry_changed', 'verification.succeeded', 'verification.failed']
    for (const name of names) keyring.on(name, (payload) => events.push({ name, payload }))
    const errors: unknown[] = []
    const outcomes: unknown[] = []
    const secrets: string[] = []

    const created = await keyring.createSigningSecret({ tenantId: 'acme', name: 'webhooks' })
    secrets.push(created.secret)
    const verifier = createSignedRequestVerifier({ keyring })
    const request = (keyId: string, secret: string, body = '{"a":1}', overrides = {}) => ({
      method: 'POST',
      pathWithQuery: '/v1/x',
      headers: signRequest({ keyId, secret, method: 'POST', url: '/v1/x', body, clock, ...overrides }),
      rawBody: body,
    })
    const ok = request(created.key.id, created.secret)
    outcomes.push(await verifier.verify(ok), await verifier.verify(ok))
    outcomes.push(await verifier.verify({ ...request(created.key.id, created.secret), rawBody: 'tampered' }))
    outcomes.push(await verifier.verify(request(created.key.id, created.secret, '{}', { timestamp: clock.now() - 3_600_000 })))
    outcomes.push(await signWebhook(keyring, { secretId: created.key.id, id: 'msg_1', payload: '{}' }))

    const rotated = await keyring.rotate(created.key.id)
    secrets.push(rotated.token)
    outcomes.push(rotated.key, rotated.previous, await signWebhook(keyring, { secretId: created.key.id, id: 'msg_2', payload: '{}' }))
    const emergency = await keyring.emergencyRotate(rotated.key.id, { incidentId: 'INC-9' })
    secrets.push(emergency.token)
    outcomes.push(await verifier.verify(request(rotated.key.id, rotated.token)))
    await keyring.revoke(emergency.key.id)
    try {
      await signWebhook(keyring, { secretId: emergency.key.id, id: 'msg_3', payload: '{}' })
    } catch (error) {
      errors.push(error)
    }
    const receiver = createWebhookVerifier({ secrets: [created.secret], clock })
    outcomes.push(receiver({ payload: '{}', headers: { 'webhook-id': 'm', 'webhook-timestamp': '1', 'webhook-signature': 'v1,AAAA' } }))
    try {
      createWebhookVerifier({ secrets: [created.secret.slice(0, 20)] })
    } catch (error) {
      errors.push(error)
    }
    try {
      signRequest({ keyId: created.key.id, secret: created.secret.slice(0, 30), method: 'GET', url: '/' })
    } catch (error) {
      errors.push(error)
    }

    // Master key rotation, then a keyring that lost the old key.
    const another = await keyring.createSigningSecret({ tenantId: 'beta', name: 'w' })
    secrets.push(another.secret)
    const rewrapping = createKeyring({ store, clock, logger, hasher: new FastTestHasher(), signing: { masterKeys: [{ id: 'new', key: masterNew }, { id: 'old', key: masterOld }] } })
    outcomes.push(await rewrapSigningSecrets(rewrapping))
    const lost = createKeyring({ store, clock, logger, hasher: new FastTestHasher(), signing: { masterKeys: [{ id: 'other', key: randomBytes(32) }] } })
    outcomes.push(await rewrapSigningSecrets(lost))
    outcomes.push(await createSignedRequestVerifier({ keyring: lost }).verify(request(another.key.id, another.secret)))
    try {
      masterKeysFromEnv({ KEYROT_MASTER_KEYS: `bad:${masterOld.toString('base64').slice(0, 30)}` })
    } catch (error) {
      errors.push(error)
    }

    expect(lines.length).toBeGreaterThan(10)
    expect(events.length).toBeGreaterThan(8)
    expect(errors).toHaveLength(4)
    const haystack = [
      lines.join(''),
      JSON.stringify(events),
      inspect(events, { depth: 20 }),
      ...errors.map(errorText),
      ...outcomes.map((outcome) => inspect(outcome, { depth: 20 })),
      JSON.stringify(await store.list({})),
      inspect(keyring, { depth: 10, showHidden: true }),
      inspect(rewrapping.options, { depth: 10, showHidden: true }),
      JSON.stringify(rewrapping.options.signing),
    ].join('\n')
    expect(haystack).toContain('$keyrot-sealed$v1$new$')
    for (const secret of secrets) {
      for (const form of formsOf(secret)) expect(haystack.includes(form), 'a signing secret leaked').toBe(false)
    }
    for (const master of [masterOld, masterNew]) {
      for (const form of [master.toString('base64'), master.toString('base64url'), master.toString('hex')]) {
        expect(haystack.includes(form), 'a master key leaked').toBe(false)
      }
    }
  })
})
