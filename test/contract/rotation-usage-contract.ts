import { ROTATION_USAGE_LIMITS, type KeyRecord, type KeyStore } from '@keyrot/core'
import { describe, expect, it } from 'vitest'

const MINUTE = 60_000

/**
 * Rotation telemetry (`recordUsage`'s 4th argument, `rotationUsage`), for a
 * store that implements it: what one process records is what any process
 * reads once flushed, bounded in clients and lengths, with no trace of
 * uses that belong to no rotation.
 */
export function describeRotationUsageContract(
  context: () => { store: KeyStore; reopen?: () => Promise<KeyStore> },
  makeRecord: (overrides?: Partial<KeyRecord>) => Promise<KeyRecord>,
): void {
  describe('rotationUsage', () => {
    async function flushed(): Promise<KeyStore> {
      const { store, reopen } = context()
      return reopen ? reopen() : store
    }

    it('counts rotation uses per minute, and the clients of uses in grace, most recent first', async () => {
      const { store } = context()
      const record = await makeRecord()
      await store.insert(record)
      const now = Date.now()
      const minute = Math.floor(now / MINUTE)
      const twoMinutesAgo = (minute - 2) * MINUTE + 5
      store.recordUsage(record.id, twoMinutesAgo, false, { clientIp: '10.0.0.1', userAgent: 'successor/2' })
      store.recordUsage(record.id, twoMinutesAgo + 1, true, { clientIp: '10.0.0.1', userAgent: 'legacy/1' })
      for (let i = 0; i < 3; i++) store.recordUsage(record.id, now - i, true, { clientIp: '10.0.0.2', userAgent: undefined })
      // A use outside any rotation is no rotation figure.
      store.recordUsage(record.id, now, false)
      const reader = await flushed()
      if (!reader.rotationUsage) throw new Error('the store under test has no rotationUsage')
      const usage = await reader.rotationUsage(record.id, { minutes: 5, now })
      expect(usage).toMatchObject({ keyId: record.id, bucketMs: MINUTE, from: (minute - 4) * MINUTE, lastUsedAt: now, omittedClients: 0 })
      expect(usage.counts).toEqual([0, 0, 2, 0, 3])
      expect(usage.clients).toEqual([
        { clientIp: '10.0.0.2', userAgent: null, requests: 3, lastSeenAt: now },
        { clientIp: '10.0.0.1', userAgent: 'legacy/1', requests: 1, lastSeenAt: twoMinutesAgo + 1 },
      ])
      // A key without rotation uses reads empty.
      const quiet = await makeRecord()
      await store.insert(quiet)
      expect(await reader.rotationUsage(quiet.id, { minutes: 2, now })).toMatchObject({ counts: [0, 0], clients: [], omittedClients: 0, lastUsedAt: null })
    })

    it(`keeps at most ${ROTATION_USAGE_LIMITS.maxClientsPerKey} clients (the least recent dropped and counted), cut to length, without control characters`, async () => {
      const { store } = context()
      const record = await makeRecord()
      await store.insert(record)
      const now = Date.now()
      const extra = 7
      const total = ROTATION_USAGE_LIMITS.maxClientsPerKey + extra
      for (let i = 0; i < total; i++) store.recordUsage(record.id, now - total + i, true, { clientIp: `10.1.0.${i}`, userAgent: `agent/${i}` })
      store.recordUsage(record.id, now, true, { clientIp: `${'f'.repeat(100)}\n`, userAgent: `evil\r\nX-Forged: 1${'a'.repeat(1000)}` })
      const reader = await flushed()
      const usage = await reader.rotationUsage!(record.id, { minutes: 1, now })
      expect(usage.clients).toHaveLength(ROTATION_USAGE_LIMITS.maxClientsPerKey)
      expect(usage.omittedClients).toBe(extra + 1)
      const newest = usage.clients[0]!
      expect(newest.clientIp).toBe('f'.repeat(ROTATION_USAGE_LIMITS.maxClientIpLength))
      expect(newest.userAgent).toHaveLength(ROTATION_USAGE_LIMITS.maxUserAgentLength)
      expect(newest.userAgent).toMatch(/^evilX-Forged: 1a+$/)
      // The oldest ones went: agent/0 .. agent/7.
      expect(usage.clients.map((client) => client.userAgent)).not.toContain('agent/0')
      expect(usage.clients.map((client) => client.userAgent)).toContain(`agent/${total - 1}`)
      expect(usage.counts).toEqual([total + 1])
    })
  })
}
