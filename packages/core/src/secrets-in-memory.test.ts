import { getHeapSnapshot } from 'node:v8'
import { describe, expect, it } from 'vitest'
import type { KeyringEvents } from './events.js'
import { FastTestHasher } from './hash/hasher.js'
import { authenticate } from './http/authenticate.js'
import { createKeyring } from './lifecycle/keyring.js'
import { MemoryStore } from './store/memory-store.js'
import { CHECKSUM_LENGTH, SECRET_LENGTH } from './token/format.js'

/** Whether a heap snapshot of this process (taken after a full GC) holds `needle` anywhere. */
async function heapHolds(needle: Buffer): Promise<boolean> {
  // V8's legacy RegExp statics (RegExp.input) keep the last string a regular expression matched (here the Bearer
  // header, which the credential check matches) until the next match anywhere in the process (in an HTTP server, the
  // next header name Node validates): not something keyrot keeps. A match moves them on here.
  /x/.test('x')
  let tail = Buffer.alloc(0)
  for await (const chunk of getHeapSnapshot()) {
    const joined = Buffer.concat([tail, chunk as Buffer])
    if (joined.includes(needle)) return true
    tail = joined.subarray(Math.max(0, joined.length - needle.length))
  }
  return false
}

describe('a verified token', () => {
  it('leaves no copy of its secret in memory: not in a rate limiter, the proof pacer, the cache, or an event a listener keeps', async () => {
    const keyring = createKeyring({ store: new MemoryStore(), hasher: new FastTestHasher(), proofKey: null })
    const kept: unknown[] = []
    const keep = (payload: unknown) => kept.push(payload)
    for (const event of ['verification.succeeded', 'verification.failed', 'key.used_in_grace'] as const) {
      keyring.on(event, keep as (payload: KeyringEvents[typeof event]) => void)
    }
    // The token is held as bytes only: any string of it found in the heap is one the keyring kept.
    const { tokenBytes, secretBytes } = await (async () => {
      const { token } = await keyring.create({ tenantId: 'acme', name: 'ci', scopes: ['read'] })
      const secretAt = token.length - SECRET_LENGTH - CHECKSUM_LENGTH
      return { tokenBytes: Buffer.from(token), secretBytes: Buffer.from(token.slice(secretAt, secretAt + SECRET_LENGTH)) }
    })()
    const client = { clientIp: '198.51.100.7', userAgent: 'test' }
    // First use (store read and proof), cache hits, a refusal for a missing scope, a use in grace, authenticate().
    expect((await keyring.verify(tokenBytes.toString(), client)).ok).toBe(true)
    expect((await keyring.verify(tokenBytes.toString(), client)).ok).toBe(true)
    expect((await keyring.verify(tokenBytes.toString(), { ...client, scopes: ['write'] })).ok).toBe(false)
    await keyring.rotate(keyIdOf(kept))
    expect((await keyring.verify(tokenBytes.toString(), client)).ok).toBe(true) // in grace
    // The adapters' path: the credential header, with its rate-limit headers in the outcome.
    expect((await authenticate(keyring, { authorization: `Bearer ${tokenBytes.toString()}`, ...client })).ok).toBe(true)
    expect(kept.length).toBeGreaterThanOrEqual(4)

    expect(await heapHolds(secretBytes)).toBe(false)
    expect(kept.length).toBeGreaterThanOrEqual(4)

    // The check can fail: a string of the token that is still referenced is found.
    const control = tokenBytes.toString()
    expect(await heapHolds(secretBytes)).toBe(true)
    expect(control.length).toBe(tokenBytes.length)
    await keyring.close()
  }, 60_000)
})

function keyIdOf(events: unknown[]): string {
  return (events[0] as { keyId: string }).keyId
}
