import { describe, expect, it } from 'vitest'
import { OverloadedError } from '../errors.js'
import { errorResponse } from '../http/respond.js'
import { createKeyring } from '../lifecycle/keyring.js'
import { MemoryStore } from '../store/memory-store.js'
import { Argon2Queue } from './argon2-queue.js'
import { FastTestHasher, type Hasher } from './hasher.js'

function deferred(): { promise: Promise<boolean>; resolve(value: boolean): void } {
  let resolve!: (value: boolean) => void
  const promise = new Promise<boolean>((r) => (resolve = r))
  return { promise, resolve }
}

describe('Argon2Queue', () => {
  it('runs at most `concurrency` tasks at once, first come first served', async () => {
    const queue = new Argon2Queue({ concurrency: 2, maxWaitMs: 0 })
    const gates = [deferred(), deferred(), deferred()]
    const order: number[] = []
    const runs = gates.map((gate, i) => queue.run(async () => (order.push(i), gate.promise)))
    await new Promise((resolve) => setImmediate(resolve))
    expect(queue.running).toBe(2)
    expect(queue.length).toBe(1)
    gates[0]!.resolve(true)
    await runs[0]
    await new Promise((resolve) => setImmediate(resolve))
    expect(order).toEqual([0, 1, 2])
    gates[1]!.resolve(true)
    gates[2]!.resolve(true)
    await Promise.all(runs)
    expect(queue.running).toBe(0)
  })

  it('refuses a run that cannot start within maxWait with OverloadedError (503, Retry-After >= 1 s)', async () => {
    const queue = new Argon2Queue({ concurrency: 1, maxWaitMs: 30 })
    const gate = deferred()
    const first = queue.run(() => gate.promise)
    const error = await queue.run(async () => true).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(OverloadedError)
    expect(queue.refused).toBe(1)
    expect(queue.length).toBe(0)
    const response = errorResponse(error as OverloadedError)
    expect(response.status).toBe(503)
    expect(response.body.error.code).toBe('KEYROT_OVERLOADED')
    expect(Number(response.headers['retry-after'])).toBeGreaterThanOrEqual(1)
    gate.resolve(true)
    await first
  })

  it('with maxWait 0 never refuses', async () => {
    const queue = new Argon2Queue({ concurrency: 1, maxWaitMs: 0 })
    const gate = deferred()
    const first = queue.run(() => gate.promise)
    const second = queue.run(async () => 'ran')
    await new Promise((resolve) => setTimeout(resolve, 50))
    gate.resolve(true)
    expect(await second).toBe('ran')
    await first
  })

  it('rejects impossible settings', () => {
    expect(() => new Argon2Queue({ concurrency: 0 })).toThrow(/argon2.concurrency/)
    expect(() => createKeyring({ argon2: { concurrency: 1.5 } })).toThrow(/argon2.concurrency must be a positive integer/)
    expect(() => createKeyring({ argon2: { maxWait: -1 } })).toThrow(/argon2.maxWait/)
  })
})

describe('verify() under a long Argon2 queue', () => {
  it('answers KEYROT_OVERLOADED for new tokens and still serves proven ones', async () => {
    const inner = new FastTestHasher()
    let hold: Promise<boolean> | null = null
    const hasher: Hasher = { hash: (token) => inner.hash(token), verify: (hash, token) => hold ?? inner.verify(hash, token) }
    const keyring = createKeyring({ store: new MemoryStore(), hasher, rateLimit: false, proofKey: null, argon2: { concurrency: 1, maxWait: 20 } })
    const known = await keyring.create({ tenantId: 'acme', name: 'known' })
    expect((await keyring.verify(known.token)).ok).toBe(true)
    const fresh = await Promise.all([1, 2].map((i) => keyring.create({ tenantId: 'acme', name: `new${i}` })))
    const gate = deferred()
    hold = gate.promise
    const stuck = keyring.verify(fresh[0]!.token)
    const refused = await keyring.verify(fresh[1]!.token)
    expect(refused.ok).toBe(false)
    if (!refused.ok) expect(refused.error.code).toBe('KEYROT_OVERLOADED')
    expect((await keyring.verify(known.token)).ok).toBe(true)
    expect(keyring.proofStats().argon2Refused).toBe(1)
    hold = null
    gate.resolve(true)
    expect((await stuck).ok).toBe(true)
    expect((await keyring.verify(fresh[1]!.token)).ok).toBe(true)
  })
})
