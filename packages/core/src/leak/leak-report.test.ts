import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { MemoryHistoryLog } from '../audit/memory-history-log.js'
import { ManualClock } from '../clock.js'
import { FastTestHasher } from '../hash/hasher.js'
import { createKeyring } from '../lifecycle/keyring.js'
import { MemoryStore } from '../store/memory-store.js'
import { generateToken, newKeyId } from '../token/format.js'
import { createLeakReportHandler } from './handler.js'
import type { LeakReportHandlerOptions } from './options.js'
import type { PublicKeysDocument } from './public-keys.js'
import { tokenHash } from './report.js'

/** A provider's signing key pair and the document it publishes. */
function provider(keyId = 'kid-1') {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const document: PublicKeysDocument = {
    public_keys: [{ key_identifier: keyId, key: publicKey.export({ type: 'spki', format: 'pem' }) as string, is_current: true }],
  }
  return { keyId, privateKey, document }
}

function signed(body: string, signer: { keyId: string; privateKey: KeyObject }, prefix = 'github') {
  const bytes = Buffer.from(body)
  const signature = sign('sha256', bytes, { key: signer.privateKey, dsaEncoding: 'der' }).toString('base64')
  return { headers: { [`${prefix}-public-key-identifier`]: signer.keyId, [`${prefix}-public-key-signature`]: signature }, body: bytes }
}

async function setup(options: Partial<LeakReportHandlerOptions> = {}) {
  const clock = new ManualClock()
  const history = new MemoryHistoryLog()
  const keyring = createKeyring({ store: new MemoryStore(), hasher: new FastTestHasher(), clock, history, rateLimit: false })
  const github = provider()
  let fetches = 0
  const handler = createLeakReportHandler({
    keyring,
    provider: 'github',
    keys: async () => {
      fetches++
      return github.document
    },
    ...options,
  })
  const leaked: unknown[] = []
  keyring.on('key.leaked', (event) => leaked.push(event))
  return { clock, keyring, history, github, handler, leaked, fetches: () => fetches }
}

describe('leak report handler', () => {
  it('labels a live key, a revoked key, a random pattern match and a bad checksum, and revokes only the live key', async () => {
    const { keyring, github, handler, leaked } = await setup()
    const live = await keyring.create({ tenantId: 'acme', name: 'live' })
    const revoked = await keyring.create({ tenantId: 'acme', name: 'old' })
    await keyring.revoke(revoked.key.id, { reason: 'retired' })
    const random = generateToken('sk_live', newKeyId())
    const badChecksum = live.token.slice(0, -1) + (live.token.endsWith('A') ? 'B' : 'A')
    const url = 'https://github.com/acme/app/blob/main/.env'
    const report = JSON.stringify([live.token, revoked.token, random, badChecksum].map((token) => ({ token, type: 'keyrot_api_key', url, source: 'content' })))

    const answer = await handler.handle(signed(report, github))

    expect(answer.status).toBe(200)
    expect(answer.body).toEqual([
      { token_hash: tokenHash(live.token), token_type: 'keyrot_api_key', label: 'true_positive' },
      { token_hash: tokenHash(revoked.token), token_type: 'keyrot_api_key', label: 'true_positive' },
      { token_hash: tokenHash(random), token_type: 'keyrot_api_key', label: 'false_positive' },
      { token_hash: tokenHash(badChecksum), token_type: 'keyrot_api_key', label: 'false_positive' },
    ])
    const after = await keyring.get(live.key.id)
    expect(after?.state).toBe('revoked')
    expect(after?.incidentId).toBe('leak:github')
    expect(after?.revokedReason).toBe(`public leak reported by github (revoke): ${url}`)
    expect((await keyring.get(revoked.key.id))?.revokedReason).toBe('retired')
    expect(leaked).toEqual([expect.objectContaining({ provider: 'github', sourceUrl: url, action: 'revoke', newKeyId: null })])
    expect((await keyring.verify(live.token)).ok).toBe(false)
    const entries = await keyring.history(live.key.id)
    expect(entries.map((entry) => entry.action)).toEqual(['key.created', 'key.revoked', 'key.leaked'])
    expect(entries[2]).toMatchObject({ incidentId: 'leak:github', reason: `public leak reported by github (revoke): ${url}` })
    expect((await keyring.verifyHistory()).ok).toBe(true)
    // No secret in the answer.
    expect(JSON.stringify(answer)).not.toContain(live.token)
  })

  it('answers a redelivered report the same and changes nothing', async () => {
    const { keyring, github, handler, leaked, history } = await setup()
    const live = await keyring.create({ tenantId: 'acme', name: 'live' })
    const delivery = signed(JSON.stringify([{ token: live.token, type: 'x', url: 'https://example.test/a' }]), github)
    const first = await handler.handle(delivery)
    const record = await keyring.get(live.key.id)
    const entries = history.snapshot().entries.length
    const second = await handler.handle(delivery)
    expect(second).toEqual(first)
    expect(await keyring.get(live.key.id)).toEqual(record)
    expect(history.snapshot().entries.length).toBe(entries)
    expect(leaked).toHaveLength(1)
  })

  it('refuses a forged signature, an unknown key id, an altered body and missing headers with 401, reading no token', async () => {
    const { keyring, clock, github, handler, fetches } = await setup({ minRefreshInterval: '1m' })
    const live = await keyring.create({ tenantId: 'acme', name: 'live' })
    const body = JSON.stringify([{ token: live.token }])
    const forger = provider('kid-1')
    const stranger = provider('kid-unknown')
    const genuine = signed(body, github)
    const attempts = [
      signed(body, forger),
      signed(body, stranger),
      { headers: genuine.headers, body: Buffer.from(body.replace('}', ',"x":1}')) },
      { headers: {}, body: Buffer.from(body) },
      { headers: { ...genuine.headers, 'github-public-key-signature': 'not base64!' }, body: Buffer.from(body) },
    ]
    for (const attempt of attempts) {
      const answer = await handler.handle(attempt)
      expect(answer.status).toBe(401)
      expect(answer.body).toEqual({ error: { code: 'KEYROT_LEAK_SIGNATURE_INVALID', message: expect.any(String) } })
    }
    expect((await keyring.get(live.key.id))?.state).toBe('active')
    // Fetched once; within the refresh limit an unknown key id fetches nothing more.
    expect(fetches()).toBe(1)
    clock.advance(60_000)
    expect((await handler.handle(signed(body, provider('kid-other')))).status).toBe(401)
    expect(fetches()).toBe(2)
    expect((await handler.handle(signed(body, provider('kid-third')))).status).toBe(401)
    expect(fetches()).toBe(2)
  })

  it('answers 503 with Retry-After and revokes nothing while the keys cannot be fetched, then works once they can', async () => {
    let up = false
    const github = provider()
    const { keyring, clock, handler } = await setup({
      keys: async () => {
        if (!up) throw new Error('connect ECONNREFUSED 127.0.0.1:1')
        return github.document
      },
    })
    const live = await keyring.create({ tenantId: 'acme', name: 'live' })
    const delivery = signed(JSON.stringify([{ token: live.token }]), github)
    const refused = await handler.handle(delivery)
    expect(refused.status).toBe(503)
    expect(refused.headers['retry-after']).toBe('60')
    expect(refused.body).toMatchObject({ error: { code: 'KEYROT_LEAK_KEYS_UNAVAILABLE' } })
    expect((await keyring.get(live.key.id))?.state).toBe('active')
    up = true
    expect((await handler.handle(delivery)).status).toBe(503) // within the refetch limit: the last failure again
    clock.advance(60_000)
    const accepted = await handler.handle(delivery)
    expect(accepted.status).toBe(200)
    expect((await keyring.get(live.key.id))?.state).toBe('revoked')
  })

  it('refuses oversized and malformed reports before acting', async () => {
    const { github, handler } = await setup({ maxBodyBytes: 1_000, maxTokens: 3 })
    expect((await handler.handle(signed('x'.repeat(1_001), github))).status).toBe(413)
    for (const body of ['{', '{"token":"a"}', '[1]', '[{"token":5}]', JSON.stringify(Array(4).fill({ token: 'a' }))]) {
      const answer = await handler.handle(signed(body, github))
      expect(answer.status).toBe(400)
      expect(answer.body).toMatchObject({ error: { code: 'KEYROT_LEAK_REPORT_INVALID' } })
    }
  })

  it('proves at most maxProofs tokens per answer, acts on those, and lets the retry finish', async () => {
    const { keyring, github, handler } = await setup({ maxProofs: 2 })
    const keys = await Promise.all([1, 2, 3].map((i) => keyring.create({ tenantId: 'acme', name: `k${i}` })))
    const delivery = signed(JSON.stringify(keys.map(({ token }) => ({ token }))), github)
    const first = await handler.handle(delivery)
    expect(first.status).toBe(503)
    expect(first.headers['retry-after']).toBe('1')
    const states = await Promise.all(keys.map(({ key }) => keyring.get(key.id)))
    expect(states.map((key) => key?.state).sort()).toEqual(['active', 'revoked', 'revoked'])
    const second = await handler.handle(delivery)
    expect(second.status).toBe(200)
    expect((second.body as Array<{ label: string }>).map((entry) => entry.label)).toEqual(['true_positive', 'true_positive', 'true_positive'])
    for (const { key } of keys) expect((await keyring.get(key.id))?.state).toBe('revoked')
  })

  it('applies the action per tenant and prefix: notify leaves the key working, emergencyRotate hands over the successor', async () => {
    const successors: string[] = []
    const { keyring, github, handler, leaked } = await setup({
      action: { default: 'revoke', tenants: { ops: 'emergencyRotate' }, prefixes: { sk_test: 'notify' } },
      onEmergencyRotation: ({ key }) => void successors.push(key.id),
    })
    const test = await keyring.create({ tenantId: 'acme', name: 'test', prefix: 'sk_test' })
    const ops = await keyring.create({ tenantId: 'ops', name: 'ops', prefix: 'sk_test' })
    const delivery = signed(JSON.stringify([{ token: test.token }, { token: ops.token }]), github)
    expect((await handler.handle(delivery)).status).toBe(200)
    expect((await keyring.get(test.key.id))?.state).toBe('active')
    const rotated = await keyring.get(ops.key.id)
    expect(rotated?.state).toBe('revoked')
    expect(successors).toEqual([rotated?.rotatedTo])
    expect(leaked).toEqual([
      expect.objectContaining({ action: 'notify', newKeyId: null }),
      expect.objectContaining({ action: 'emergencyRotate', newKeyId: rotated?.rotatedTo }),
    ])
    await handler.handle(delivery)
    expect(leaked).toHaveLength(2) // notified once
  })

  it('throws TypeError for impossible settings', async () => {
    const { keyring } = await setup()
    expect(() => createLeakReportHandler({ keyring, provider: 'gitlab' })).toThrow(/keys is required/)
    expect(() => createLeakReportHandler({ keyring, provider: 'bitbucket' as 'github' })).toThrow(/provider must be/)
    expect(() => createLeakReportHandler({ keyring, provider: 'github', action: 'emergencyRotate' })).toThrow(/onEmergencyRotation/)
    expect(() => createLeakReportHandler({ keyring, provider: 'github', action: 'delete' as 'revoke' })).toThrow(/action must be/)
    expect(() => createLeakReportHandler({ keyring, provider: 'github', maxProofs: 0 })).toThrow(/maxProofs/)
    expect(() => createLeakReportHandler({ keyring, provider: 'github', keys: 'ftp://x' })).toThrow(/keys must be/)
  })
})
