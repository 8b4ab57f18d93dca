import { randomBytes } from 'node:crypto'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createKeyring, FastTestHasher, ManualClock, MemoryStore, signWebhook } from '@keyrot/core'
import { afterEach, describe, expect, it } from 'vitest'
// @ts-expect-error: a plain JavaScript example without type declarations
import { createReceiver } from './receiver.mjs'

const servers: Server[] = []
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
})

async function receiver(secrets: string[]) {
  const messages: { message: unknown; id: string }[] = []
  const server: Server = createReceiver({ secrets, onMessage: (message: unknown, id: string) => messages.push({ message, id }) })
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`, messages }
}

describe('the plain Node webhook receiver example', () => {
  it('keeps receiving from a keyrot sender through a rotation, with the old secret only or the new one only', async () => {
    // The receiver checks timestamps against the real clock.
    const clock = new ManualClock(Date.now())
    const keyring = createKeyring({ store: new MemoryStore(), clock, hasher: new FastTestHasher(), signing: { masterKeys: [{ id: 'm', key: randomBytes(32) }] } })
    const { secret, key } = await keyring.createSigningSecret({ tenantId: 'acme', name: 'hooks' })
    const deliver = async (url: string, id: string, event: object) => {
      const payload = JSON.stringify(event)
      const headers = await signWebhook(keyring, { secretId: key.id, id, payload })
      return (await fetch(url, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: payload })).status
    }

    const onOld = await receiver([secret])
    expect(await deliver(onOld.url, 'msg_1', { n: 1 })).toBe(204)
    const rotated = await keyring.rotate(key.id)
    const onNew = await receiver([rotated.token])
    expect(await deliver(onOld.url, 'msg_2', { n: 2 })).toBe(204)
    expect(await deliver(onNew.url, 'msg_2', { n: 2 })).toBe(204)
    // A retry of one message is accepted and handed over once.
    expect(await deliver(onOld.url, 'msg_2', { n: 2 })).toBe(204)
    await keyring.endGrace(key.id)
    expect(await deliver(onNew.url, 'msg_3', { n: 3 })).toBe(204)
    expect(await deliver(onOld.url, 'msg_3', { n: 3 })).toBe(400)

    expect(onOld.messages).toEqual([
      { message: { n: 1 }, id: 'msg_1' },
      { message: { n: 2 }, id: 'msg_2' },
    ])
    expect(onNew.messages.map((m) => m.id)).toEqual(['msg_2', 'msg_3'])
  })

  it('refuses a stale delivery and a tampered body', async () => {
    const clock = new ManualClock(Date.now() - 10 * 60_000)
    const keyring = createKeyring({ store: new MemoryStore(), clock, hasher: new FastTestHasher(), signing: { masterKeys: [{ id: 'm', key: randomBytes(32) }] } })
    const { secret, key } = await keyring.createSigningSecret({ tenantId: 'acme', name: 'hooks' })
    const { url, messages } = await receiver([secret])
    const stale = await signWebhook(keyring, { secretId: key.id, id: 'old', payload: '{}' })
    const response = await fetch(url, { method: 'POST', headers: stale, body: '{}' })
    expect([response.status, await response.text()]).toEqual([400, 'stale timestamp'])
    clock.set(Date.now())
    const fresh = await signWebhook(keyring, { secretId: key.id, id: 'new', payload: '{"a":1}' })
    const tampered = await fetch(url, { method: 'POST', headers: fresh, body: '{"a":2}' })
    expect([tampered.status, await tampered.text()]).toEqual([400, 'no matching signature'])
    expect(messages).toEqual([])
  })
})
