import { createKeyring, FastTestHasher, StoreUnavailableError, type Keyring, type Logger } from '@keyrot/core'
import { RedisStore, type RedisStoreOptions } from '@keyrot/redis'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'

/**
 * WAIT durability: revoke and emergency rotation report success only once a
 * replica has the write (a failover can lose what only the primary had).
 */

let primary: RedisServer
let replica: RedisServer
let alone: RedisServer
let onReplica: Redis
const opened: Keyring[] = []

beforeAll(async () => {
  primary = await startRedisServer()
  replica = await startRedisServer({ replicaOf: primary.port })
  alone = await startRedisServer()
  onReplica = new Redis(replica.port, '127.0.0.1')
})

afterEach(async () => {
  for (const keyring of opened.splice(0)) await keyring.close()
})

afterAll(async () => {
  onReplica?.disconnect()
  await Promise.all([replica?.stop(), primary?.stop(), alone?.stop()])
})

function recordingLogger(): Logger & { lines: { level: string; fields: Record<string, unknown> }[] } {
  const lines: { level: string; fields: Record<string, unknown> }[] = []
  const log = (level: string) => (fields: object) => lines.push({ level, fields: fields as Record<string, unknown> })
  return { lines, info: log('info'), warn: log('warn'), error: log('error') }
}

function keyringOn(port: number, options: Partial<RedisStoreOptions> = {}): { keyring: Keyring; store: RedisStore } {
  const store = new RedisStore({ client: new Redis(port, '127.0.0.1', { lazyConnect: true }), keyPrefix: 'durable', invalidation: false, ...options })
  const keyring = createKeyring({ store, hasher: new FastTestHasher(), prefix: 'sk_test' })
  opened.push(keyring)
  return { keyring, store }
}

describe('durability: WAIT for a replica', () => {
  it('has the revocation on the replica as soon as revoke returns', async () => {
    const { keyring, store } = keyringOn(primary.port)
    for (let i = 0; i < 5; i++) {
      const { key } = await keyring.create({ tenantId: 'acme', name: `key ${i}` })
      await keyring.revoke(key.id, { reason: 'test' })
      // No polling: WAIT already made sure the replica has it.
      expect(await onReplica.hget(store.layout.record(key.id), 'r')).not.toBeNull()
      expect(await onReplica.exists(store.layout.credential(key.id))).toBe(0)
    }
  })

  it('fails revoke with StoreUnavailableError when the replica does not acknowledge in time; emergency rotation still returns its key', async () => {
    const logger = recordingLogger()
    const { keyring, store } = keyringOn(primary.port, { logger, durability: { timeout: 300 } })
    const first = await keyring.create({ tenantId: 'acme', name: 'unacknowledged' })
    const second = await keyring.create({ tenantId: 'acme', name: 'emergency' })
    replica.process.kill('SIGSTOP')
    try {
      const started = performance.now()
      await expect(keyring.revoke(first.key.id)).rejects.toBeInstanceOf(StoreUnavailableError)
      expect(performance.now() - started).toBeGreaterThanOrEqual(250)
      // Applied on the primary all the same: a retry is safe (revoke is idempotent).
      expect((await store.get(first.key.id))?.revokedAt).not.toBeNull()
      const rotated = await keyring.emergencyRotate(second.key.id, { incidentId: 'INC-9' })
      expect(rotated.key.rotatedFrom).toBe(second.key.id)
      expect(logger.lines.some((line) => line.level === 'error' && line.fields.event === 'durability.shortfall')).toBe(true)
    } finally {
      replica.process.kill('SIGCONT')
    }
    await expect(keyring.revoke(first.key.id)).resolves.toMatchObject({ state: 'revoked' })
  })

  it('treats a primary with no replica attached as success, at once, and warns once', async () => {
    const logger = recordingLogger()
    const { keyring } = keyringOn(alone.port, { logger, durability: { timeout: 2_000 } })
    for (let i = 0; i < 3; i++) {
      const { key } = await keyring.create({ tenantId: 'acme', name: `alone ${i}` })
      const started = performance.now()
      await keyring.revoke(key.id)
      expect(performance.now() - started).toBeLessThan(1_000)
    }
    expect(logger.lines.filter((line) => line.fields.event === 'durability.no_replica')).toHaveLength(1)
  })
})
