import { createKeyring, type Keyring } from '@keyrot/core'
import { RedisStore } from '@keyrot/redis'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'
import { ensureBuilt, killChildren, runKeyrot } from './keyrot-bin.js'

/** `keyrot create --credits/--refill` and `keyrot credits show|set|add`, the built CLI on a real redis-server. */

let redis: RedisServer
let client: Redis
let observer: Keyring

beforeAll(async () => {
  ensureBuilt()
  redis = await startRedisServer()
  client = new Redis(redis.url, { lazyConnect: true })
  await client.connect()
  observer = createKeyring({ store: new RedisStore({ client }), cache: { maxEntries: 0 }, rateLimit: false })
}, 240_000)

afterAll(async () => {
  await observer?.close()
  client?.disconnect()
  await redis?.stop()
})

afterEach(() => killChildren())

const store = () => ['--redis', redis.url]

describe('keyrot credits', () => {
  it('creates a key with credits and a refill, shows, adds and sets them; verifies spend from the same balance', async () => {
    const created = await runKeyrot(['create', '--tenant', 'acme', '--name', 'metered', '--credits', '2', '--refill', '100/1d', '--json', ...store()])
    expect(created.code, created.stderr).toBe(0)
    const { token, key } = JSON.parse(created.stdout) as { token: string; key: { id: string; credits: unknown } }
    expect(key.credits).toEqual({ refill: { amount: 100, intervalMs: 86_400_000 } })
    expect((await observer.verify(token)).ok).toBe(true)

    const shown = await runKeyrot(['credits', 'show', key.id, '--json', ...store()])
    expect(shown.code, shown.stderr).toBe(0)
    expect(JSON.parse(shown.stdout).credits).toMatchObject({ keyId: key.id, remaining: 1, refill: { amount: 100, intervalMs: 86_400_000 } })
    const text = await runKeyrot(['credits', 'show', key.id, ...store()])
    expect(text.stdout).toMatch(new RegExp(`^Key ${key.id}: 1 credit\\(s\\) left \\(shared by key family ${key.id.slice(0, 10)}\\), refilled to 100 every 1d, next `))

    const added = await runKeyrot(['credits', 'add', key.id, '9', '--json', ...store()])
    expect(JSON.parse(added.stdout).credits.remaining).toBe(10)
    const taken = await runKeyrot(['credits', 'add', key.id, '-4', '--json', ...store()])
    expect(JSON.parse(taken.stdout).credits.remaining).toBe(6)
    const set = await runKeyrot(['credits', 'set', key.id, '0', ...store()])
    expect(set.code, set.stderr).toBe(0)
    const refused = await observer.verify(token)
    expect(!refused.ok && refused.error.code).toBe('KEYROT_CREDITS_EXHAUSTED')
  }, 60_000)

  it('refuses bad numbers as usage errors (exit 2), and a change of a key without credits as invalid input (exit 2)', async () => {
    const plain = JSON.parse((await runKeyrot(['create', '--tenant', 'acme', '--name', 'plain', '--json', ...store()])).stdout) as { key: { id: string } }
    for (const args of [
      ['credits', 'set', plain.key.id, '-1'],
      ['credits', 'set', plain.key.id, '1.5'],
      ['credits', 'add', plain.key.id, 'lots'],
      ['create', '--tenant', 'acme', '--name', 'x', '--refill', '100'],
    ]) {
      const result = await runKeyrot([...args, ...store()])
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(2)
    }
    const unlimited = await runKeyrot(['credits', 'add', plain.key.id, '5', ...store()])
    expect(unlimited.code).toBe(2)
    expect(unlimited.stderr).toMatch(/without credits/)
    const shown = await runKeyrot(['credits', 'show', plain.key.id, ...store()])
    expect(shown.stdout).toBe(`Key ${plain.key.id} has no credits: it is unlimited.\n`)
  }, 60_000)
})
