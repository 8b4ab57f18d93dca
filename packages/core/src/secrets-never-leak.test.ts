import { afterEach, describe, expect, it, vi } from 'vitest'
import { ManualClock } from './clock.js'
import { KeyrotError } from './errors.js'
import { TypedEmitter } from './events.js'
import { Argon2Hasher } from './hash/hasher.js'
import { errorResponse } from './http/respond.js'
import { createKeyring } from './lifecycle/keyring.js'
import type { Logger } from './logger.js'
import { MemoryStore } from './store/memory-store.js'
import { CHECKSUM_LENGTH, generateToken } from './token/format.js'

/** Everything a secret could leak into, serialised. */
const sinks: string[] = []

function capture(value: unknown): void {
  sinks.push(JSON.stringify(value, (_key, inner: unknown) => (typeof inner === 'bigint' ? inner.toString() : inner)) ?? String(value))
}

function captureError(error: unknown): void {
  for (let current: unknown = error; current instanceof Error; current = current.cause) {
    sinks.push(String(current), current.message, current.stack ?? '')
    capture(current)
    if (current instanceof KeyrotError) {
      capture(current.toJSON())
      capture(errorResponse(current))
    }
  }
}

const logger: Required<Logger> = {
  debug: (fields, message) => capture({ level: 'debug', fields, message }),
  info: (fields, message) => capture({ level: 'info', fields, message }),
  warn: (fields, message) => capture({ level: 'warn', fields, message }),
  error: (fields, message) => capture({ level: 'error', fields, message }),
}

async function attempt(operation: Promise<unknown>): Promise<void> {
  try {
    capture(await operation)
  } catch (error) {
    captureError(error)
  }
}

afterEach(() => {
  vi.restoreAllMocks()
  sinks.length = 0
})

describe('secrets', () => {
  it('never reach events, logs, errors, HTTP answers or the store', async () => {
    // Every event the keyring emits is captured, including ones added later:
    // `has()` answers yes so no payload is skipped for want of a listener.
    vi.spyOn(TypedEmitter.prototype, 'has').mockReturnValue(true)
    const emit = TypedEmitter.prototype.emit
    const emitted = new Set<string>()
    vi.spyOn(TypedEmitter.prototype, 'emit').mockImplementation(function (this: TypedEmitter, event, payload) {
      emitted.add(event)
      capture({ event, payload })
      emit.call(this, event, payload)
    })

    const clock = new ManualClock()
    const store = new MemoryStore()
    const options = { clock, store, logger, gracePeriod: '1h', cache: { stateTtl: '1s' } } as const
    const keyring = createKeyring({ ...options, hasher: new Argon2Hasher({ memoryCost: 1024, timeCost: 1 }) })
    // A second process with other Argon2 parameters re-hashes keys it verifies.
    const upgraded = createKeyring({ ...options, hasher: new Argon2Hasher({ memoryCost: 2048, timeCost: 1 }) })

    const tokens: string[] = []
    const ids: string[] = []
    for (let i = 0; i < 6; i++) {
      const issued = await keyring.create({ tenantId: i % 2 ? 'acme' : 'globex', name: `key ${i}`, scopes: ['read'], expiresAt: clock.now() + 86_400_000 })
      capture(issued.key)
      tokens.push(issued.token)
      ids.push(issued.key.id)
    }
    const [a, b, c, d, e, f] = ids as [string, string, string, string, string, string]
    for (const [keyId, rotate] of [
      [a, () => keyring.rotate(a)],
      [b, () => keyring.rotate(b, { gracePeriod: 0, scopes: ['write'] })],
      [c, () => keyring.emergencyRotate(c, { incidentId: 'INC-9' })],
    ] as const) {
      const rotated = await rotate()
      tokens.push(rotated.token)
      ids.push(rotated.key.id)
      capture({ keyId, key: rotated.key })
    }
    await attempt(keyring.revoke(d, { reason: 'left' }))
    await attempt(keyring.setExpiry(e, clock.now() + 60_000))
    await attempt(keyring.extendGrace(a, '10m'))
    await attempt(keyring.endGrace(f))

    // Failing lifecycle calls: their errors are captured too.
    await attempt(keyring.rotate(a))
    await attempt(keyring.rotate(d))
    await attempt(keyring.emergencyRotate(a, { incidentId: 'INC-10' }))
    await attempt(keyring.setExpiry(d, null))
    await attempt(keyring.create({ tenantId: 'bad tenant', name: 'x' }))

    for (const token of tokens) {
      for (const verifier of [keyring, upgraded]) {
        const context = { clientIp: '127.0.0.1', userAgent: 'leak-test' }
        for (const result of [
          await verifier.verify(token, context),
          await verifier.verify(token, { ...context, scopes: ['admin'] }),
          await verifier.verify(token.slice(0, -1) + (token.endsWith('x') ? 'y' : 'x'), context),
          await verifier.verify(generateToken('sk_live', token.split('_')[2] as string), context),
          await verifier.verify(`${token} `, context),
        ]) {
          capture(result)
          if (!result.ok) captureError(result.error)
        }
      }
    }
    clock.advance(3_600_001)
    for (const token of tokens) {
      const result = await keyring.verify(token)
      capture(result)
      if (!result.ok) captureError(result.error)
    }
    // Let background re-hashes finish and log.
    await vi.waitFor(() => expect(sinks.some((sink) => sink.includes('key.rehashed'))).toBe(true), { timeout: 5_000, interval: 10 })

    capture(await keyring.list())
    capture(await keyring.expiringWithin('30d'))
    capture(await keyring.unusedSince(clock.now()))
    capture(keyring.cacheStats())
    for (const id of ids) capture(await keyring.get(id))
    const stored = await store.list({})
    capture(stored)
    for (const id of ids) capture(await store.get(id))

    // The scenario reached what it meant to cover.
    for (const event of ['key.created', 'key.rotated', 'key.revoked', 'key.emergency_rotated', 'key.expiry_changed', 'key.expired', 'key.used_in_grace', 'verification.succeeded', 'verification.failed']) {
      expect(emitted).toContain(event)
    }
    expect(stored).toHaveLength(9)
    expect(sinks.length).toBeGreaterThan(300)

    const everything = sinks.join('\n')
    for (const token of tokens) {
      const secret = token.slice(token.lastIndexOf('_') + 1, token.length - CHECKSUM_LENGTH)
      expect(everything).not.toContain(token)
      expect(everything).not.toContain(secret)
      // Nor any large piece of it.
      for (let at = 0; at + 16 <= secret.length; at += 9) expect(everything).not.toContain(secret.slice(at, at + 16))
    }
    // The key ids, which are public, do appear: the capture works.
    for (const id of ids) expect(everything).toContain(id)
  })
})
