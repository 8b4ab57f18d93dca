import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createKeyring, type Keyring } from '@keyrot/core'
import { RedisStore } from '@keyrot/redis'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'
import { ensureBuilt, killChildren, runKeyrot } from './keyrot-bin.js'

const importKey = randomBytes(32)
const env = { KEYROT_IMPORT_KEY: importKey.toString('base64') }
let redis: RedisServer
let client: Redis
let observer: Keyring
let dir: string

beforeAll(async () => {
  ensureBuilt()
  redis = await startRedisServer()
  client = new Redis(redis.url, { lazyConnect: true })
  await client.connect()
  // Verifies what the CLI wrote, as an application sharing the store and the import key would.
  observer = createKeyring({ store: new RedisStore({ client }), cache: { maxEntries: 0 }, importKey, importedPrefixes: ['old_'], rateLimit: false })
  dir = mkdtempSync(join(tmpdir(), 'keyrot-import-'))
}, 240_000)

afterAll(async () => {
  await observer?.close()
  client?.disconnect()
  await redis?.stop()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

afterEach(() => killChildren())

const store = () => ['--redis', redis.url]

describe('keyrot create --allowed-ip and keyrot update', () => {
  it('creates a key bound to networks, changes the list and lifts it', async () => {
    const created = await runKeyrot(['create', '--tenant', 'acme', '--name', 'ci', '--allowed-ip', '203.0.113.0/24', '--allowed-ip', '2001:db8::/32', '--json', ...store()])
    expect(created.code, created.stderr).toBe(0)
    const { token, key } = JSON.parse(created.stdout) as { token: string; key: { id: string; allowedIps: string[] } }
    expect(key.allowedIps).toEqual(['203.0.113.0/24', '2001:db8::/32'])
    expect((await observer.verify(token, { clientIp: '203.0.113.1' })).ok).toBe(true)
    const outside = await observer.verify(token, { clientIp: '198.51.100.1' })
    expect(!outside.ok && outside.error.code).toBe('KEYROT_IP_NOT_ALLOWED')

    const updated = await runKeyrot(['update', key.id, '--allowed-ips', '198.51.100.0/24', '--json', ...store()])
    expect(updated.code, updated.stderr).toBe(0)
    expect(JSON.parse(updated.stdout).key.allowedIps).toEqual(['198.51.100.0/24'])
    expect((await observer.verify(token, { clientIp: '198.51.100.1' })).ok).toBe(true)

    const lifted = await runKeyrot(['update', key.id, '--any-ip', ...store()])
    expect(lifted.code, lifted.stderr).toBe(0)
    expect(lifted.stderr).toContain('any IP')
    expect((await observer.verify(token, { clientIp: '192.0.2.1' })).ok).toBe(true)
  })

  it('refuses an invalid CIDR with exit code 2 and a message naming it', async () => {
    const result = await runKeyrot(['create', '--tenant', 'acme', '--name', 'ci', '--allowed-ip', '10.0.0.0/33', ...store()])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('10.0.0.0/33')
    expect(result.stdout).toBe('')
  })
})

describe('keyrot import --file', () => {
  it('imports each line, reports per line, is idempotent, and exits 1 when a line failed, printing no token', async () => {
    const plain = `old_${randomBytes(20).toString('hex')}`
    const legacy = `old_${randomBytes(20).toString('hex')}`
    const sha256 = createHash('sha256').update(legacy).digest('hex')
    const file = join(dir, 'keys.jsonl')
    writeFileSync(
      file,
      [
        JSON.stringify({ tenantId: 'acme', name: 'plain', scopes: ['read'], token: plain }),
        '',
        JSON.stringify({ tenantId: 'acme', name: 'legacy', allowedIps: ['203.0.113.0/24'], legacy: { sha256, tokenPrefix: 'old_' } }),
        `{"tenantId":"acme","name":"broken","token":"${plain}"`,
        JSON.stringify({ tenantId: 'acme', name: 'bad prefix', token: 'new_abcdef' }),
      ].join('\n'),
    )
    const first = await runKeyrot(['import', '--file', file, '--prefixes', 'old_', '--json', ...store()], { env })
    expect(first.code).toBe(1)
    const report = JSON.parse(first.stdout) as { lines: Array<{ line: number; status: string; keyId?: string; error?: { code: string } }>; failed: number }
    expect(report.lines.map(({ line, status }) => [line, status])).toEqual([
      [1, 'imported'],
      [3, 'imported'],
      [4, 'failed'],
      [5, 'failed'],
    ])
    expect(report.lines[3]?.error?.code).toBe('KEYROT_INVALID_INPUT')
    for (const output of [first.stdout, first.stderr]) {
      expect(output).not.toContain(plain)
      expect(output).not.toContain(legacy)
      expect(output).not.toContain(sha256)
    }

    expect((await observer.verify(plain)).ok).toBe(true)
    const fromNetwork = await observer.verify(legacy, { clientIp: '203.0.113.8' })
    expect(fromNetwork.ok && fromNetwork.key.id).toBe(report.lines[1]?.keyId)

    // Again: the same keys are found, nothing is added.
    const again = await runKeyrot(['import', '--file', file, '--prefixes', 'old_', ...store()], { env })
    expect(again.code).toBe(1)
    expect(again.stdout).toContain(`line 1: exists ${report.lines[0]?.keyId}`)
    expect(again.stdout).toContain(`line 3: exists ${report.lines[1]?.keyId}`)
    expect(again.stdout).toMatch(/line 4: failed KEYROT_CLI_IMPORT_LINE: not valid JSON/)
    expect(again.stderr).toContain('0 imported, 2 already there, 2 failed')
    expect((await observer.list({ tenantId: 'acme' })).filter((key) => key.name === 'plain' || key.name === 'legacy')).toHaveLength(2)

    // A file of good lines only exits 0.
    const good = join(dir, 'good.jsonl')
    writeFileSync(good, `${JSON.stringify({ tenantId: 'acme', name: 'more', token: `old_${randomBytes(8).toString('hex')}` })}\n`)
    const ok = await runKeyrot(['import', '--file', good, '--prefixes', 'old_', ...store()], { env })
    expect(ok.code, ok.stderr).toBe(0)
    expect(ok.stdout).toMatch(/^line 1: imported [0-9A-Za-z]{16}\n$/)
  })

  it('needs an import key', async () => {
    const file = join(dir, 'one.jsonl')
    writeFileSync(file, `${JSON.stringify({ tenantId: 'acme', name: 'x', token: 'old_x' })}\n`)
    const result = await runKeyrot(['import', '--file', file, '--prefixes', 'old_', ...store()], { env: { KEYROT_PROOF_KEY: '', KEYROT_MASTER_KEYS: '' } })
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('KEYROT_IMPORT_KEY')
  })
})
