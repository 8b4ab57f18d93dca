import { createKeyring, FastTestHasher, ManualClock, MemoryStore, type Keyring } from '@keyrot/core'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createServer, listen, type RunningServer } from '../../packages/cli/src/index.js'

/** The admin API's credits routes (GET/POST /v1/keys/:id/credits) and create's `credits`, in process. */

async function call(base: string, method: string, path: string, token: string, body?: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  return { status: response.status, body: await response.json() }
}

describe('admin API: credits', () => {
  let keyring: Keyring
  let running: RunningServer
  let admin: string
  const DAY = 86_400_000
  const START = Date.UTC(2030, 0, 1)

  beforeEach(async () => {
    keyring = createKeyring({ store: new MemoryStore(), hasher: new FastTestHasher(), clock: new ManualClock(START), rateLimit: false })
    admin = (await keyring.create({ tenantId: 'ops', name: 'admin', scopes: ['admin', 'admin:*'] })).token
    running = await listen(createServer({ keyring }), { port: 0, onClose: () => keyring.close() })
  })

  afterEach(async () => {
    await running.close()
  })

  it('creates a key with credits, shows what is left after verifies, and sets and adds credits', async () => {
    const created = await call(running.url, 'POST', '/v1/keys', admin, { tenantId: 'acme', name: 'metered', credits: { remaining: 3, refill: { amount: 10, interval: '1d' } } })
    expect(created.status).toBe(201)
    expect(created.body.key.credits).toEqual({ refill: { amount: 10, intervalMs: DAY } })
    const id = created.body.key.id as string
    expect((await keyring.verify(created.body.token)).ok).toBe(true)
    const shown = await call(running.url, 'GET', `/v1/keys/${id}/credits`, admin)
    expect(shown).toEqual({ status: 200, body: { credits: { keyId: id, familyId: id.slice(0, 10), remaining: 2, nextRefillAt: START + DAY, refill: { amount: 10, intervalMs: DAY } } } })
    expect((await call(running.url, 'POST', `/v1/keys/${id}/credits`, admin, { add: 40 })).body.credits.remaining).toBe(42)
    expect((await call(running.url, 'POST', `/v1/keys/${id}/credits`, admin, { set: 0 })).body.credits.remaining).toBe(0)
    const refused = await keyring.verify(created.body.token)
    expect(!refused.ok && refused.error.code).toBe('KEYROT_CREDITS_EXHAUSTED')
  })

  it.each([
    ['both set and add', { set: 1, add: 1 }],
    ['neither', {}],
    ['a negative set', { set: -1 }],
    ['a fraction', { add: 1.5 }],
    ['a string', { set: '5' }],
    ['an unknown field', { set: 1, refill: 5 }],
  ])('answers 400 KEYROT_INVALID_INPUT to %s', async (_label, body) => {
    const { key } = await keyring.create({ tenantId: 'acme', name: 'metered', credits: { remaining: 1 } })
    const answer = await call(running.url, 'POST', `/v1/keys/${key.id}/credits`, admin, body)
    expect({ status: answer.status, code: answer.body.error.code }).toEqual({ status: 400, code: 'KEYROT_INVALID_INPUT' })
    expect((await keyring.credits(key.id))?.remaining).toBe(1)
  })

  it('answers null for a key without credits, 400 to a change of it, and 400 to bad credits at create', async () => {
    const { key } = await keyring.create({ tenantId: 'acme', name: 'plain' })
    expect(await call(running.url, 'GET', `/v1/keys/${key.id}/credits`, admin)).toEqual({ status: 200, body: { credits: null } })
    const change = await call(running.url, 'POST', `/v1/keys/${key.id}/credits`, admin, { add: 5 })
    expect({ status: change.status, code: change.body.error.code }).toEqual({ status: 400, code: 'KEYROT_INVALID_INPUT' })
    for (const credits of [{ remaining: -1 }, { remaining: 5, refill: { amount: 5, interval: '10s' } }, { remaining: 1.5 }]) {
      const answer = await call(running.url, 'POST', '/v1/keys', admin, { tenantId: 'acme', name: 'bad', credits })
      expect({ status: answer.status, code: answer.body.error.code }).toEqual({ status: 400, code: 'KEYROT_INVALID_INPUT' })
    }
  })
})
