import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Argon2Hasher, createKeyring, FastTestHasher, type Keyring } from '@keyrot/core'
import { RedisStore } from '@keyrot/redis'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'
import { bin, ensureBuilt, root } from '../cli/keyrot-bin.js'

/**
 * A store written by the release at c44bd26 (record format 1; see
 * fixtures/make-legacy-redis.mjs) keeps working with this release, before
 * and after `keyrot store migrate` converts it to format 2.
 */

interface FixtureKey {
  key: string
  type: 'string' | 'hash' | 'zset' | 'set'
  expireAt: number
  value: string | Record<string, string> | string[]
}
interface Fixture {
  keyPrefix: string
  proofKey: string
  tokens: Record<string, { token: string; id: string }>
  keys: FixtureKey[]
}

const fixture = JSON.parse(readFileSync(join(root, 'test/integration/fixtures/legacy-redis-c44bd26.json'), 'utf8')) as Fixture
const token = (label: string) => (fixture.tokens[label] as { token: string }).token
const id = (label: string) => (fixture.tokens[label] as { id: string }).id

let redis: RedisServer
let raw: Redis
const opened: { keyring: Keyring; client: Redis }[] = []

/** Writes the fixture's keys as the old release left them. A record whose retention ended since the fixture was made gets one more hour (its credential, if any, is kept as is). */
async function loadFixture(): Promise<void> {
  await raw.flushall()
  const floor = Date.now() + 3_600_000
  for (const { key, type, expireAt, value } of fixture.keys) {
    if (type === 'string') await raw.set(key, value as string)
    else if (type === 'hash') await raw.hset(key, value as Record<string, string>)
    else if (type === 'zset') await raw.zadd(key, ...(value as string[]).flatMap((_, i, all) => (i % 2 === 0 ? [all[i + 1] as string, all[i] as string] : [])))
    else await raw.sadd(key, ...(value as string[]))
    if (expireAt > 0) await raw.pexpireat(key, key.includes(':rec:') ? Math.max(expireAt, floor) : expireAt)
  }
}

function open(hasher: 'fast' | 'argon2' = 'fast'): Keyring {
  const client = new Redis(redis.url)
  const store = new RedisStore({ client, keyPrefix: fixture.keyPrefix })
  const keyring = createKeyring({
    store,
    hasher: hasher === 'fast' ? new FastTestHasher() : new Argon2Hasher(),
    prefix: 'sk_test',
    proofKey: hasher === 'fast' ? Buffer.from(fixture.proofKey, 'hex') : null,
    cache: { maxEntries: 0 },
    rateLimit: false,
  })
  opened.push({ keyring, client })
  return keyring
}

async function code(keyring: Keyring, label: string): Promise<string> {
  const result = await keyring.verify(token(label))
  return result.ok ? 'ok' : result.error.code
}

/** What every fixture key answers, and what the store says about it. */
async function expectFixtureBehaviour(fast: Keyring, argon: Keyring): Promise<void> {
  expect(await code(fast, 'plain')).toBe('ok')
  expect(await fast.verify(token('rich'), { scopes: ['write'] })).toMatchObject({ ok: true, key: { metadata: { team: 'billing', n: 3 }, rateLimit: { limit: 50, windowMs: 60000 } } })
  expect(await code(fast, 'expiring')).toBe('ok')
  expect((await fast.get(id('expiring')))?.expiresAt).toBe(Date.parse('2036-01-01T00:00:00Z'))
  expect(await code(fast, 'graceOld')).toBe('ok')
  expect((await fast.get(id('graceOld')))?.state).toBe('grace')
  expect(await code(fast, 'graceNew')).toBe('ok')
  expect(await code(fast, 'revoked')).toBe('KEYROT_KEY_REVOKED')
  expect((await fast.get(id('revoked')))?.revokedReason).toBe('left the company')
  expect(await code(fast, 'leaked')).toBe('KEYROT_KEY_REVOKED')
  expect((await fast.get(id('leaked')))).toMatchObject({ incidentId: 'INC-7', rotatedTo: id('leakedNew') })
  expect(await code(fast, 'leakedNew')).toBe('ok')
  expect(await code(fast, 'used')).toBe('ok')
  expect(await code(argon, 'argon2')).toBe('ok')
  expect(await code(fast, 'expired')).toBe('KEYROT_KEY_EXPIRED')
  expect((await fast.list({ tenantId: 'acme' })).map((key) => key.name).sort()).toEqual(['argon2', 'expired', 'plain', 'revoked', 'rich'])
}

async function recordFormats(): Promise<{ legacy: number; current: number }> {
  const names = await raw.keys(`${fixture.keyPrefix}:{*}:rec:*`)
  let legacy = 0
  for (const name of names) if ((await raw.hexists(name, 'v')) === 0) legacy++
  return { legacy, current: names.length - legacy }
}

function migrate(...args: string[]): { status: number | null; report: Record<string, unknown> } {
  const result = spawnSync(process.execPath, [bin, 'store', 'migrate', '--redis', redis.url, '--key-prefix', fixture.keyPrefix, '--json', ...args], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
  })
  if (result.status !== 0) throw new Error(`keyrot store migrate failed: ${result.stderr}`)
  return { status: result.status, report: JSON.parse(result.stdout) as Record<string, unknown> }
}

beforeAll(async () => {
  ensureBuilt()
  redis = await startRedisServer()
  raw = new Redis(redis.url)
}, 240_000)

/** Closes the keyrings a test opened: an open one would write its revocations back to the reloaded store (a reset, to it). */
async function closeAll(): Promise<void> {
  for (const { keyring, client } of opened.splice(0)) {
    await keyring.close()
    client.disconnect()
  }
}

afterAll(async () => {
  await closeAll()
  raw?.disconnect()
  await redis?.stop()
})

describe('a store written by the release at c44bd26 (record format 1)', () => {
  it('is read transparently: every key answers as before, and writes keep format 1 records in their own format', async () => {
    await loadFixture()
    const fast = open()
    const argon = open('argon2')
    expect(await recordFormats()).toEqual({ legacy: 11, current: 0 })
    await expectFixtureBehaviour(fast, argon)
    // The shared proof the old release stored is used.
    expect((await fast.get(id('used')))?.usageCount).toBe(3)

    // Writes on format 1 records: rotate, revoke, setExpiry, usage.
    const rotated = await fast.rotate(id('plain'), { gracePeriod: '1h' })
    expect(await code(fast, 'plain')).toBe('ok')
    expect((await fast.verify(rotated.token)).ok).toBe(true)
    const deadline = Number(await raw.hget(`${fixture.keyPrefix}:{${id('plain').slice(0, 10)}}:rec:${id('plain')}`, 'expiresAt'))
    expect(deadline).toBeGreaterThan(Date.now())
    expect(Number(await raw.call('PEXPIRETIME', `${fixture.keyPrefix}:{${id('plain').slice(0, 10)}}:cred:${id('plain')}`))).toBe(deadline)
    await fast.revoke(id('rich'), { reason: 'test' })
    expect(await code(fast, 'rich')).toBe('KEYROT_KEY_REVOKED')
    await fast.setExpiry(id('expired'), Date.now() + 86_400_000)
    expect(await code(fast, 'expired')).toBe('ok')
    await fast.setExpiry(id('expired'), Date.now() - 1)
    expect(await code(fast, 'expired')).toBe('KEYROT_KEY_EXPIRED')
    await (fast.store as RedisStore).flushUsage()
    expect(Number(await raw.hget(`${fixture.keyPrefix}:{${id('used').slice(0, 10)}}:rec:${id('used')}`, 'usageCount'))).toBe(4)
    // The successor is format 2; the old records are still format 1.
    expect(await recordFormats()).toEqual({ legacy: 11, current: 1 })
    // The successor is indexed in the tenant's hash; list() reads it and the old sorted set together.
    expect(await raw.hexists(`${fixture.keyPrefix}:tenant:{acme}:ids`, rotated.key.id)).toBe(1)
    expect((await fast.list({ tenantId: 'acme' })).map((key) => key.id)).toContain(rotated.key.id)
  })

  it('keyrot store migrate --dry-run counts and changes nothing; migrate converts every record, idempotently', async () => {
    await closeAll()
    await loadFixture()
    const credentialTtl = Number(await raw.call('PEXPIRETIME', `${fixture.keyPrefix}:{${id('graceOld').slice(0, 10)}}:cred:${id('graceOld')}`))
    expect(credentialTtl).toBeGreaterThan(Date.now())

    expect(migrate('--dry-run').report).toEqual({ scanned: 11, converted: 11, current: 0, skipped: 0, indexEntries: 11, dryRun: true })
    expect(await recordFormats()).toEqual({ legacy: 11, current: 0 })

    expect(migrate('--batch', '3').report).toEqual({ scanned: 11, converted: 11, current: 0, skipped: 0, indexEntries: 11, dryRun: false })
    expect(await recordFormats()).toEqual({ legacy: 0, current: 11 })
    expect(migrate().report).toEqual({ scanned: 11, converted: 0, current: 11, skipped: 0, indexEntries: 0, dryRun: false })
    // The tenant indexes are hashes now (key id = creation time); the sorted sets are gone.
    expect(await raw.keys(`${fixture.keyPrefix}:tenant:*`)).toEqual(expect.arrayContaining([`${fixture.keyPrefix}:tenant:{acme}:ids`]))
    expect(await raw.exists(`${fixture.keyPrefix}:tenant:{acme}`)).toBe(0)
    expect(Number(await raw.hget(`${fixture.keyPrefix}:tenant:{acme}:ids`, id('plain')))).toBe(1796329601932)

    // Credentials: kept with the same deadline for keys that have one, dropped otherwise; no hash text left anywhere.
    const credentials = await raw.keys(`${fixture.keyPrefix}:{*}:cred:*`)
    expect(credentials.map((name) => name.slice(name.lastIndexOf(':') + 1)).sort()).toEqual([id('expiring'), id('graceOld')].sort())
    for (const name of credentials) expect(await raw.get(name)).toBe('1')
    expect(Number(await raw.call('PEXPIRETIME', `${fixture.keyPrefix}:{${id('graceOld').slice(0, 10)}}:cred:${id('graceOld')}`))).toBe(credentialTtl)
    for (const name of await raw.keys(`${fixture.keyPrefix}:{*}:rec:*`)) {
      expect(await raw.object('ENCODING', name)).toBe('listpack')
      expect(await raw.hexists(name, 'hash')).toBe(0)
    }

    // Everything answers as before the migration, and keeps working.
    const fast = open()
    const argon = open('argon2')
    await expectFixtureBehaviour(fast, argon)
    expect(await fast.get(id('used'))).toMatchObject({ usageCount: 3 })
    const rotated = await fast.rotate(id('plain'), { gracePeriod: '1h' })
    expect(await code(fast, 'plain')).toBe('ok')
    expect((await fast.verify(rotated.token)).ok).toBe(true)
    await fast.revoke(id('plain'))
    expect(await code(fast, 'plain')).toBe('KEYROT_KEY_REVOKED')
    const leaked = await fast.emergencyRotate(id('graceNew'), { incidentId: 'INC-8' })
    expect(await code(fast, 'graceNew')).toBe('KEYROT_KEY_REVOKED')
    expect((await fast.verify(leaked.token)).ok).toBe(true)
    await fast.setExpiry(id('expired'), Date.now() + 86_400_000)
    expect(await code(fast, 'expired')).toBe('ok')
  })
})
