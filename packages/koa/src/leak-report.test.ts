import { generateKeyPairSync, sign } from 'node:crypto'
import { createKeyring, createLeakReportHandler, FastTestHasher, MemoryStore, tokenHash } from '@keyrot/core'
import Koa3 from 'koa'
import Koa2 from 'koa2'
import { describe, expect, it } from 'vitest'
import { loopbackTestServers } from '../../../test/support/listen.js'
import { leakReportRoute } from './leak-report.js'

const { serve, cleanups } = loopbackTestServers()

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const document = { public_keys: [{ key_identifier: 'kid', key: publicKey.export({ type: 'spki', format: 'pem' }) as string, is_current: true }] }

describe.each([
  ['Koa 3', Koa3],
  ['Koa 2', Koa2 as unknown as typeof Koa3],
])('leakReportRoute on %s', (_name, Koa) => {
  async function start() {
    const keyring = createKeyring({ store: new MemoryStore(), hasher: new FastTestHasher(), rateLimit: false })
    const handler = createLeakReportHandler({ keyring, provider: 'gitlab', keys: async () => document, maxBodyBytes: 4_096 })
    const app = new Koa()
    app.use(leakReportRoute(handler))
    // Pushed first, closed last: after the server.
    cleanups.push(() => keyring.close())
    return { keyring, url: await serve(app.callback()) }
  }

  it('verifies the raw body, revokes the leaked key and answers the labels', async () => {
    const { keyring, url } = await start()
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'leaked' })
    const body = JSON.stringify([{ token, type: 'keyrot', url: 'https://gitlab.example/p/-/blob/main/a' }])
    const signature = sign('sha256', Buffer.from(body), { key: privateKey, dsaEncoding: 'der' }).toString('base64')
    const headers = { 'content-type': 'application/json', 'gitlab-public-key-identifier': 'kid', 'gitlab-public-key-signature': signature }
    const tampered = await fetch(url, { method: 'POST', headers, body: body.replace('main', 'dev') })
    expect(tampered.status).toBe(401)
    expect((await keyring.get(key.id))?.state).toBe('active')
    const answer = await fetch(url, { method: 'POST', headers, body })
    expect(answer.status).toBe(200)
    expect(await answer.json()).toEqual([{ token_hash: tokenHash(token), token_type: 'keyrot', label: 'true_positive' }])
    expect((await keyring.get(key.id))?.state).toBe('revoked')
  })

  it('refuses a body over the limit with 413 before reading it', async () => {
    const { url } = await start()
    const answer = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: 'x'.repeat(5_000) })
    expect(answer.status).toBe(413)
    expect(((await answer.json()) as { error: { code: string } }).error.code).toBe('KEYROT_PAYLOAD_TOO_LARGE')
  })
})
