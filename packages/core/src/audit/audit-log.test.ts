import { Writable } from 'node:stream'
import pino from 'pino'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { ManualClock } from '../clock.js'
import { MissingKeyError, StoreUnavailableError } from '../errors.js'
import type { KeyringEventName, KeyringEvents } from '../events.js'
import { FastTestHasher } from '../hash/hasher.js'
import { watchExpiry } from '../lifecycle/expiry-watcher.js'
import { createKeyring, type Keyring } from '../lifecycle/keyring.js'
import type { Logger } from '../logger.js'
import { MemoryStore } from '../store/memory-store.js'
import type { InvalidationListener } from '../store/store.js'
import { generateToken } from '../token/format.js'
import { attachAuditLog } from './audit-log.js'

type Line = { level: 'info' | 'warn' | 'error'; obj: Record<string, unknown>; msg: string | undefined }

function capturingLogger(): Logger & { lines: Line[] } {
  const lines: Line[] = []
  return {
    lines,
    info: (obj, msg) => lines.push({ level: 'info', obj: obj as Record<string, unknown>, msg }),
    warn: (obj, msg) => lines.push({ level: 'warn', obj: obj as Record<string, unknown>, msg }),
    error: (obj, msg) => lines.push({ level: 'error', obj: obj as Record<string, unknown>, msg }),
  }
}

const EVENT_NAMES: KeyringEventName[] = [
  'key.created',
  'key.rotated',
  'key.revoked',
  'key.emergency_rotated',
  'key.expiry_changed',
  'key.expired',
  'key.used_in_grace',
  'verification.succeeded',
  'verification.failed',
  'ratelimit.blocked',
  'cache.reset',
  'invalidation.received',
  'key.grace_ending_soon',
  'key.expiring_soon',
]

const keyrings: Keyring[] = []
afterEach(async () => {
  for (const keyring of keyrings.splice(0)) await keyring.close()
})

function setup() {
  const clock = new ManualClock()
  const listeners = new Set<InvalidationListener>()
  const store = Object.assign(new MemoryStore(), {
    subscribe(listener: InvalidationListener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
  })
  const keyring = createKeyring({ store, hasher: new FastTestHasher(), clock, gracePeriod: '2h' })
  keyrings.push(keyring)
  const events: Array<{ name: KeyringEventName; payload: unknown }> = []
  for (const name of EVENT_NAMES) keyring.on(name, (payload: KeyringEvents[typeof name]) => events.push({ name, payload }))
  const feed = (event: Parameters<InvalidationListener>[0]) => listeners.forEach((listener) => listener(event))
  return { clock, store, keyring, events, feed }
}

/** Runs every kind of verification and admin action once. Returns the tokens and stored hashes that must never leak. */
async function exercise(keyring: Keyring, store: MemoryStore, clock: ManualClock, feed: (event: Parameters<InvalidationListener>[0]) => void) {
  const ua = { clientIp: '127.0.0.1', userAgent: 'billing-client/2.1' }
  const main = await keyring.create({ tenantId: 'acme', name: 'billing', scopes: ['read'], expiresAt: clock.now() + 3 * 86_400_000 })
  const spare = await keyring.create({ tenantId: 'acme', name: 'spare' })
  await keyring.verify(main.token, ua)
  await keyring.verify(main.token, { ...ua, scopes: ['write'] })
  await keyring.verify(generateToken(main.key.prefix, main.key.id), ua)
  keyring.noteRequestFailure(new MissingKeyError(), ua)
  const rotated = await keyring.rotate(main.key.id)
  await keyring.verify(main.token, ua) // old key, in grace
  await keyring.extendGrace(main.key.id, '1h')
  const emergency = await keyring.emergencyRotate(spare.key.id, { incidentId: 'INC-7' })
  await keyring.revoke(emergency.key.id, { reason: 'customer left' })
  keyring.emit('ratelimit.blocked', { code: 'KEYROT_IP_BLOCKED', policy: 'ip-block', scope: 'ip', keyId: undefined, clientIp: '127.0.0.1', retryAfterMs: 30_000, at: clock.now() })
  feed({ type: 'reset', reason: 'reconnected' })
  feed({ type: 'key', keyId: spare.key.id, sentAt: clock.now() - 40 })
  const watcher = watchExpiry(keyring, { graceEndingWithin: '4h', expiringWithin: '7d', interval: 0 })
  await watcher.tick()
  clock.advance(4 * 3_600_000)
  await keyring.verify(main.token, ua) // grace over: expired
  const get = store.get.bind(store)
  store.get = async () => {
    throw new StoreUnavailableError('down for the test')
  }
  await keyring.verify(rotated.token, ua).catch(() => undefined)
  store.get = get
  const secrets = [main.token, spare.token, rotated.token, emergency.token]
  for (const id of [main.key.id, spare.key.id, rotated.key.id, emergency.key.id]) secrets.push(((await store.get(id))?.hash as string).split('$').pop() as string)
  return { main, spare, rotated, emergency, secrets }
}

describe('attachAuditLog', () => {
  it('logs every verification attempt, admin action and notice with the right level and fields', async () => {
    const { keyring, store, clock, feed } = setup()
    const logger = capturingLogger()
    attachAuditLog(keyring, logger)
    const { main, spare, rotated, emergency } = await exercise(keyring, store, clock, feed)
    const byEvent = (event: string) => logger.lines.filter((line) => line.obj['event'] === event)

    const ok = byEvent('verification.succeeded')
    expect(ok).toHaveLength(2)
    expect(ok[0]).toMatchObject({
      level: 'info',
      obj: { audit: 'verification', outcome: 'ok', keyId: main.key.id, tenantId: 'acme', state: 'active', cached: false, clientIp: '127.0.0.1', userAgent: 'billing-client/2.1' },
    })
    expect(ok[0]?.obj['durationMs']).toBeGreaterThan(0)
    expect(ok[1]?.obj).toMatchObject({ state: 'grace', keyId: main.key.id })

    const failed = byEvent('verification.failed')
    expect(failed.map((line) => [line.level, line.obj['code']])).toEqual([
      ['warn', 'KEYROT_INSUFFICIENT_SCOPE'],
      ['warn', 'KEYROT_INVALID_SECRET'],
      ['warn', 'KEYROT_MISSING_KEY'],
      ['warn', 'KEYROT_KEY_EXPIRED'],
      ['error', 'KEYROT_STORE_UNAVAILABLE'],
    ])
    expect(failed[1]?.obj).toMatchObject({ audit: 'verification', outcome: 'error', keyId: main.key.id, tenantId: 'acme', clientIp: '127.0.0.1', userAgent: 'billing-client/2.1' })
    expect(failed[2]?.obj).toMatchObject({ keyId: undefined, durationMs: undefined })

    expect(byEvent('ratelimit.blocked')).toMatchObject([{ level: 'warn', obj: { audit: 'verification', code: 'KEYROT_IP_BLOCKED', policy: 'ip-block', scope: 'ip', clientIp: '127.0.0.1', retryAfterMs: 30_000 } }])

    expect(byEvent('key.created').map((line) => line.obj['keyId'])).toEqual([main.key.id, spare.key.id])
    expect(byEvent('key.created')[0]).toMatchObject({ level: 'info', obj: { audit: 'admin', tenantId: 'acme', name: 'billing', scopes: ['read'] } })
    expect(byEvent('key.rotated')).toMatchObject([{ level: 'info', obj: { audit: 'admin', keyId: main.key.id, newKeyId: rotated.key.id, gracePeriodMs: 7_200_000 } }])
    expect(byEvent('key.expiry_changed')).toMatchObject([{ obj: { audit: 'admin', keyId: main.key.id, expiresAt: main.key.createdAt + 3 * 3_600_000 } }])
    expect(byEvent('key.emergency_rotated')).toMatchObject([{ level: 'warn', obj: { audit: 'admin', keyId: spare.key.id, newKeyId: emergency.key.id, incidentId: 'INC-7' } }])
    expect(byEvent('key.revoked')).toMatchObject([{ level: 'info', obj: { audit: 'admin', keyId: emergency.key.id, reason: 'customer left' } }])

    expect(byEvent('key.used_in_grace')).toMatchObject([{ level: 'warn', obj: { audit: 'notice', keyId: main.key.id, rotatedTo: rotated.key.id, clientIp: '127.0.0.1', userAgent: 'billing-client/2.1' } }])
    expect(byEvent('key.expired')).toMatchObject([{ obj: { audit: 'notice', keyId: main.key.id } }])
    expect(byEvent('cache.reset')).toMatchObject([{ level: 'warn', obj: { audit: 'notice', reason: 'reconnected' } }])
    expect(byEvent('key.grace_ending_soon')).toMatchObject([{ level: 'warn', obj: { audit: 'notice', keyId: main.key.id, remainingMs: 3 * 3_600_000 } }])
    expect(byEvent('key.expiring_soon')).toMatchObject([{ level: 'warn', obj: { audit: 'notice', keyId: rotated.key.id } }])

    for (const line of logger.lines) {
      expect(line.obj['audit']).toMatch(/^(verification|admin|notice)$/)
      expect(typeof line.obj['at']).toBe('number')
      expect(line.msg).toMatch(/^keyrot /)
    }
  })

  it('puts no token, secret or hash in any log line or event payload', async () => {
    const { keyring, store, clock, feed, events } = setup()
    const logger = capturingLogger()
    attachAuditLog(keyring, logger)
    const { secrets, main } = await exercise(keyring, store, clock, feed)
    const logged = JSON.stringify(logger.lines)
    const emitted = JSON.stringify(events)
    // The search works: what may appear does appear.
    expect(logged).toContain(main.key.id)
    expect(emitted).toContain(main.key.id)
    expect(new Set(events.map((e) => e.name))).toEqual(new Set(EVENT_NAMES))
    for (const secret of secrets) {
      expect(secret.length).toBeGreaterThan(20)
      expect(logged).not.toContain(secret)
      expect(emitted).not.toContain(secret)
    }
    for (const { payload } of events) expect(JSON.stringify(payload)).not.toMatch(/"(hash|token|secret)"/)
  })

  it('writes JSON lines through pino without any token', async () => {
    const { keyring } = setup()
    const chunks: string[] = []
    const destination = new Writable({
      write(chunk, _encoding, done) {
        chunks.push(String(chunk))
        done()
      },
    })
    attachAuditLog(keyring, pino({ base: undefined }, destination))
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    await keyring.verify(token, { clientIp: '::1', userAgent: 'curl/8.5' })
    await keyring.verify(token.slice(0, -2) + 'zz', { clientIp: '::1' })
    const lines = chunks.join('').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>)
    expect(lines.map((line) => [line['level'], line['event']])).toEqual([
      [30, 'key.created'],
      [30, 'verification.succeeded'],
      [40, 'verification.failed'],
    ])
    expect(lines[1]).toMatchObject({ audit: 'verification', clientIp: '::1', userAgent: 'curl/8.5', msg: 'keyrot verification succeeded' })
    expect(chunks.join('')).not.toContain(token.slice(-40))
  })

  it('honours successes, adminActions and notices switches, and detaches', async () => {
    const { keyring } = setup()
    const logger = capturingLogger()
    const detach = attachAuditLog(keyring, logger, { successes: false, adminActions: false, notices: false })
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    await keyring.rotate(key.id)
    await keyring.verify(token)
    await keyring.verify('sk_live_nope')
    expect(logger.lines.map((line) => line.obj['event'])).toEqual(['verification.failed'])
    detach()
    detach()
    await keyring.verify('sk_live_nope')
    expect(logger.lines).toHaveLength(1)
  })

  it('rejects a logger without pino methods', () => {
    const { keyring } = setup()
    expect(() => attachAuditLog(keyring, { info() {} } as unknown as Logger)).toThrow(/logger/)
  })
})

describe('verification events cost nothing when nobody listens', () => {
  it('reads the high-resolution timer only while a verification event has a listener', async () => {
    const clock = new ManualClock()
    const keyring = createKeyring({ hasher: new FastTestHasher(), clock })
    keyrings.push(keyring)
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const now = vi.spyOn(performance, 'now')
    try {
      await keyring.verify(token)
      await keyring.verify('sk_live_nope')
      expect(now).not.toHaveBeenCalled()
      const durations: number[] = []
      keyring.on('verification.succeeded', (e) => durations.push(e.durationMs))
      await keyring.verify(token)
      expect(now).toHaveBeenCalled()
      expect(durations).toHaveLength(1)
      expect(durations[0]).toBeGreaterThanOrEqual(0)
    } finally {
      now.mockRestore()
    }
  })
})
