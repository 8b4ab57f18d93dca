import { createKeyring, FastTestHasher, ManualClock, MemoryStore } from '@keyrot/core'
import { describe, expect, it } from 'vitest'
import { UsageTracker } from './usage-tracker.js'

const T0 = Date.UTC(2030, 0, 1, 12, 0, 0)
const MINUTE = 60_000

describe('UsageTracker', () => {
  it('counts requests per minute, oldest first, with 0 for quiet minutes and the current minute last', () => {
    const tracker = new UsageTracker(T0)
    tracker.record('k1', T0 + 5_000, false)
    tracker.record('k1', T0 + 59_999, false)
    tracker.record('k1', T0 + 2 * MINUTE, false)
    tracker.record('k2', T0 + 2 * MINUTE, false)
    const usage = tracker.perMinute('k1', 4, T0 + 2 * MINUTE + 30_000)
    expect(usage).toEqual({ from: T0 - MINUTE, bucketMs: MINUTE, counts: [0, 2, 0, 1] })
  })

  it('answers zeros for a key it never saw', () => {
    const tracker = new UsageTracker(T0)
    expect(tracker.perMinute('nobody', 3, T0).counts).toEqual([0, 0, 0])
  })

  it('keeps only retentionMinutes: an old minute is not read back when its slot is reused', () => {
    const tracker = new UsageTracker(T0, { retentionMinutes: 3 })
    tracker.record('k1', T0, false)
    tracker.record('k1', T0, false)
    // Three minutes later the same slot holds a new minute.
    tracker.record('k1', T0 + 3 * MINUTE, false)
    expect(tracker.perMinute('k1', 3, T0 + 3 * MINUTE).counts).toEqual([0, 0, 1])
    // Asking for more than the retention gives the retention.
    expect(tracker.perMinute('k1', 1000, T0 + 3 * MINUTE).counts).toHaveLength(3)
    // A request stamped before the slot's minute (late, out of retention) is dropped, not added.
    tracker.record('k1', T0, false)
    expect(tracker.perMinute('k1', 3, T0 + 3 * MINUTE).counts).toEqual([0, 0, 1])
  })

  it('forgets the key used least recently beyond maxKeys', () => {
    const tracker = new UsageTracker(T0, { maxKeys: 2 })
    tracker.record('a', T0, false)
    tracker.record('b', T0, false)
    tracker.record('a', T0 + MINUTE, false) // a is now the most recent
    tracker.record('c', T0 + MINUTE, false)
    expect(tracker.size).toBe(2)
    expect(tracker.perMinute('b', 2, T0 + MINUTE).counts).toEqual([0, 0])
    expect(tracker.perMinute('a', 2, T0 + MINUTE).counts).toEqual([1, 1])
    expect(tracker.perMinute('c', 2, T0 + MINUTE).counts).toEqual([0, 1])
  })

  it('lists the clients of grace-period requests only, one row per IP and user agent, most recent first', () => {
    const tracker = new UsageTracker(T0)
    tracker.record('old', T0, false, '10.0.0.9', 'before-rotation')
    tracker.record('old', T0 + 1_000, true, '10.0.0.1', 'curl/8')
    tracker.record('old', T0 + 2_000, true, '10.0.0.2', 'node')
    tracker.record('old', T0 + 3_000, true, '10.0.0.1', 'curl/8')
    tracker.record('old', T0 + 4_000, true, undefined, undefined)
    const { clients, omittedClients } = tracker.graceClients('old')
    expect(omittedClients).toBe(0)
    expect(clients).toEqual([
      { clientIp: null, userAgent: null, requests: 1, firstSeenAt: T0 + 4_000, lastSeenAt: T0 + 4_000 },
      { clientIp: '10.0.0.1', userAgent: 'curl/8', requests: 2, firstSeenAt: T0 + 1_000, lastSeenAt: T0 + 3_000 },
      { clientIp: '10.0.0.2', userAgent: 'node', requests: 1, firstSeenAt: T0 + 2_000, lastSeenAt: T0 + 2_000 },
    ])
    expect(tracker.graceClients('unknown')).toEqual({ clients: [], omittedClients: 0 })
  })

  it('bounds clients per key (counting the ones it drops) and the length of a user agent', () => {
    const tracker = new UsageTracker(T0, { maxClientsPerKey: 2, maxUserAgentLength: 5 })
    tracker.record('old', T0, true, '10.0.0.1', 'agent-one')
    tracker.record('old', T0 + 1, true, '10.0.0.2', 'agent-two')
    tracker.record('old', T0 + 2, true, '10.0.0.3', 'agent-three')
    const { clients, omittedClients } = tracker.graceClients('old')
    expect(omittedClients).toBe(1)
    expect(clients.map((client) => [client.clientIp, client.userAgent])).toEqual([
      ['10.0.0.3', 'agent'],
      ['10.0.0.2', 'agent'],
    ])
  })

  it('returns copies: a caller cannot change what it keeps', () => {
    const tracker = new UsageTracker(T0)
    tracker.record('old', T0, true, '10.0.0.1', 'curl')
    tracker.graceClients('old').clients[0]!.requests = 99
    expect(tracker.graceClients('old').clients[0]!.requests).toBe(1)
  })

  it('refuses impossible options with a TypeError naming the option', () => {
    expect(() => new UsageTracker(T0, { maxKeys: 0 })).toThrow(/maxKeys must be a positive integer/)
    expect(() => new UsageTracker(T0, { retentionMinutes: 1.5 })).toThrow(/retentionMinutes/)
    expect(() => new UsageTracker(T0, { maxClientsPerKey: -1 })).toThrow(/maxClientsPerKey/)
  })

  it("counts a keyring's successful verifications, and its grace-period clients, once attached", async () => {
    const clock = new ManualClock(T0)
    const keyring = createKeyring({ store: new MemoryStore(), hasher: new FastTestHasher(), clock, rateLimit: false })
    const tracker = new UsageTracker(clock.now())
    const detach = tracker.attach(keyring)
    const issued = await keyring.create({ tenantId: 'acme', name: 'ci' })
    await keyring.verify(issued.token, { clientIp: '10.0.0.1', userAgent: 'curl/8' })
    await keyring.verify('sk_live_wrong', { clientIp: '10.0.0.1' })
    clock.advance(MINUTE)
    const rotated = await keyring.rotate(issued.key.id, { gracePeriod: '1h' })
    await keyring.verify(issued.token, { clientIp: '10.0.0.2', userAgent: 'legacy-client' })
    await keyring.verify(rotated.token, { clientIp: '10.0.0.3', userAgent: 'new-client' })
    expect(tracker.perMinute(issued.key.id, 2, clock.now()).counts).toEqual([1, 1])
    expect(tracker.perMinute(rotated.key.id, 2, clock.now()).counts).toEqual([0, 1])
    expect(tracker.graceClients(issued.key.id).clients.map((client) => client.userAgent)).toEqual(['legacy-client'])
    expect(tracker.graceClients(rotated.key.id).clients).toEqual([])
    detach()
    await keyring.verify(rotated.token)
    expect(tracker.perMinute(rotated.key.id, 1, clock.now()).counts).toEqual([1])
    await keyring.close()
  })
})
