import { createKeyring, TOKEN_PATTERN, type Keyring } from '@keyrot/core'
import { RedisStore } from '@keyrot/redis'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { freePort, startRedisCluster, startRedisServer, type RedisServer } from '../helpers/redis-server.js'
import { ensureBuilt, ensureDemoBuilt, killChildren, runKeyrot } from './keyrot-bin.js'

const COMMANDS = ['create', 'list', 'inspect', 'rotate', 'revoke', 'emergency-rotate', 'expiring', 'rewrap-secrets', 'demo', 'serve', 'scan']
const WHOLE_TOKEN = new RegExp(`^${TOKEN_PATTERN.source}\\n$`)

let redis: RedisServer
let client: Redis
/** An in-process keyring on the same Redis, to check what the CLI did: tokens verify, usage counts. */
let observer: Keyring

beforeAll(async () => {
  ensureBuilt()
  redis = await startRedisServer()
  client = new Redis(redis.url, { lazyConnect: true })
  await client.connect()
  observer = createKeyring({ store: new RedisStore({ client }), cache: { maxEntries: 0 } })
}, 240_000)

afterAll(async () => {
  await observer?.close()
  client?.disconnect()
  await redis?.stop()
})

afterEach(() => killChildren())

const store = () => ['--redis', redis.url]

function json<T = Record<string, any>>(text: string): T {
  return JSON.parse(text) as T
}

async function createKey(tenant: string, extra: string[] = []): Promise<{ token: string; id: string }> {
  const result = await runKeyrot(['create', '--tenant', tenant, '--name', 'ci', '--json', ...store(), ...extra])
  expect(result.code, result.stderr).toBe(0)
  const body = json(result.stdout)
  return { token: body.token as string, id: body.key.id as string }
}

describe('keyrot --help', () => {
  it('lists every command and the exit codes, exit 0', async () => {
    const result = await runKeyrot(['--help'])
    expect(result.code).toBe(0)
    for (const command of COMMANDS) expect(result.stdout).toMatch(new RegExp(`^  ${command} `, 'm'))
    expect(result.stdout).toContain('Exit codes: 0 ok, 1 error')
  })

  it.each(COMMANDS)('keyrot %s --help prints its usage, exit 0', async (command) => {
    const result = await runKeyrot([command, '--help'])
    expect(result.code).toBe(0)
    expect(result.stdout).toContain(`Usage: keyrot ${command}`)
    expect(result.stderr).toBe('')
  })
})

describe('keyrot usage errors exit 2', () => {
  it.each([
    ['an unknown command', ['bogus'], /unknown command 'bogus'/],
    ['an unknown option', ['list', '--bogus'], /unknown option '--bogus'/],
    ['a missing required option', ['create', '--tenant', 'acme'], /required option '--name <name>' not specified/],
    ['a missing argument', ['inspect'], /missing required argument 'keyId'/],
    ['a malformed duration', ['create', '--tenant', 'a', '--name', 'b', '--expires', '9x'], /'--expires <when>' argument '9x' is invalid/],
    ['a malformed rate limit', ['create', '--tenant', 'a', '--name', 'b', '--rate-limit', 'fast'], /'--rate-limit <rate>' argument 'fast' is invalid/],
    ['an unknown state', ['list', '--state', 'sleeping'], /argument 'sleeping' is invalid. Allowed choices are active, grace, expired, revoked/],
  ])('%s', async (_case, args, message) => {
    const result = await runKeyrot(args)
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(message)
    expect(result.stdout).toBe('')
  })

  it('no --redis and no REDIS_URL: explains why a shared store is needed', async () => {
    const result = await runKeyrot(['create', '--tenant', 'acme', '--name', 'ci'])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('keyrot create needs a shared key store: pass --redis redis://host:6379 or set REDIS_URL')
    expect(result.stderr).toContain('in-memory store would forget')
    expect(result.stdout).toBe('')
  })

  it('a value the keyring refuses (tenant id with a space) is a usage error too', async () => {
    const result = await runKeyrot(['create', '--tenant', 'ac me', '--name', 'ci', ...store()])
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/^keyrot: Invalid tenantId: /)
  })
})

describe('keyrot with Redis unreachable', () => {
  it('exits 1 naming the URL with its password masked', async () => {
    const port = await freePort()
    const result = await runKeyrot(['list', '--redis', `redis://:hunter2@127.0.0.1:${port}`])
    expect(result.code).toBe(1)
    expect(result.stderr).toContain(`cannot reach Redis at redis://:***@127.0.0.1:${port}`)
    expect(result.stderr).not.toContain('hunter2')
  })

  it('reads REDIS_URL when --redis is not given', async () => {
    const port = await freePort()
    const result = await runKeyrot(['list'], { env: { REDIS_URL: `redis://127.0.0.1:${port}` } })
    expect(result.code).toBe(1)
    expect(result.stderr).toContain(`cannot reach Redis at redis://127.0.0.1:${port}`)
  })
})

describe('keyrot create', () => {
  it('prints the token alone on stdout; the notice goes to stderr; the token works', async () => {
    const result = await runKeyrot(['create', '--tenant', 'create-human', '--name', 'ci', '--scopes', 'read,write', '--expires', '90d', ...store()])
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toMatch(WHOLE_TOKEN)
    const token = result.stdout.trim()
    expect(result.stderr).toContain('shown only this once')
    expect(result.stderr).not.toContain(token)
    const verified = await observer.verify(token, { scopes: ['read', 'write'] })
    expect(verified.ok).toBe(true)
  })

  it('--json prints one JSON document and nothing else on stdout, so `| jq -r .token` works', async () => {
    const result = await runKeyrot(['create', '--tenant', 'create-json', '--name', 'ci', '--rate-limit', '100/min', '--json', ...store()])
    expect(result.code).toBe(0)
    expect(result.stderr).toBe('')
    const body = json(result.stdout)
    expect(Object.keys(body).sort()).toEqual(['key', 'token'])
    expect(body.token).toMatch(new RegExp(`^${TOKEN_PATTERN.source}$`))
    expect(body.key).toMatchObject({ tenantId: 'create-json', name: 'ci', state: 'active', rateLimit: { limit: 100, windowMs: 60_000 } })
    expect(body.key).not.toHaveProperty('hash')
    expect((await observer.verify(body.token)).ok).toBe(true)
  })
})

describe('keyrot create -> rotate -> inspect -> revoke', () => {
  it('runs the lifecycle with the output and exit codes of each step', async () => {
    const tenant = 'lifecycle'
    const first = await createKey(tenant, ['--expires', '30d'])

    // Destructive without --yes and without a terminal: refused, nothing changed.
    const refused = await runKeyrot(['rotate', first.id, ...store()])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toContain('no terminal is attached to confirm it: nothing was changed. Pass --yes')
    expect((await observer.get(first.id))?.state).toBe('active')

    const rotated = await runKeyrot(['rotate', first.id, '--grace', '2h', '--yes', ...store()])
    expect(rotated.code, rotated.stderr).toBe(0)
    expect(rotated.stdout).toMatch(WHOLE_TOKEN)
    const second = { token: rotated.stdout.trim(), id: '' }
    expect(rotated.stderr).toMatch(new RegExp(`Rotated ${first.id} -> (\\w{16})\\. The old key keeps working until \\S+ \\(in (1h 59m|2h)\\)`))
    second.id = /-> (\w{16})\./.exec(rotated.stderr)?.[1] as string
    expect(second.token).toContain(`_${second.id}_`)

    // Both tokens work during the grace period.
    expect((await observer.verify(first.token)).ok).toBe(true)
    expect((await observer.verify(second.token)).ok).toBe(true)
    await (observer.store as RedisStore).flushUsage()

    const inspected = await runKeyrot(['inspect', first.id, ...store()])
    expect(inspected.code).toBe(0)
    expect(inspected.stdout).toMatch(/^State\s+grace$/m)
    expect(inspected.stdout).toMatch(new RegExp(`^Grace\\s+(1h 59m|2h) left \\(rotated to ${second.id} `, 'm'))
    expect(inspected.stdout).toMatch(/^Expires\s+\S+ \(in (1h 59m|2h)\)$/m)
    expect(inspected.stdout).toMatch(new RegExp(`^Lineage\\s+\\[${first.id}\\] -> ${second.id}$`, 'm'))
    expect(inspected.stdout).toMatch(/^Usage\s+1 request$/m)
    expect(inspected.stdout).toMatch(/^Last used\s+\S+ \((now|\d+s ago)\)$/m)
    // The rotation as every process sharing the store counted it (the verifies above ran in this test process).
    expect(inspected.stdout).toMatch(new RegExp(`^Old key\\s+${first.id}: 1 request, last (now|\\d+s ago)$`, 'm'))
    expect(inspected.stdout).toMatch(new RegExp(`^New key\\s+${second.id}: 1 request, last (now|\\d+s ago)$`, 'm'))
    expect(inspected.stdout).toMatch(new RegExp(`^End grace\\s+Key ${first.id} was served 1 times in the last 15 minutes`, 'm'))
    expect(inspected.stdout).toMatch(/^\(unknown\)\s+\(none\)\s+1\s+(now|\d+s ago)$/m)

    const inspectedJson = await runKeyrot(['inspect', second.id, '--json', ...store()])
    expect(inspectedJson.code).toBe(0)
    const detail = json(inspectedJson.stdout)
    expect(detail.lineage).toEqual([first.id, second.id])
    expect(detail.key).toMatchObject({ id: second.id, state: 'active', rotatedFrom: first.id })
    expect(detail.graceRemainingMs).toBeNull()
    expect(detail.rotationUsage).toMatchObject({ keyId: second.id, oldKey: { keyId: first.id }, newKey: { keyId: second.id }, oldKeyUsedRecently: true })
    // The successor keeps the 30-day lifetime.
    expect(detail.key.expiresAt - detail.key.createdAt).toBe(30 * 86_400_000)

    const again = await runKeyrot(['rotate', first.id, '--yes', '--json', ...store()])
    expect(again.code).toBe(1)
    expect(json(again.stderr).error.code).toBe('KEYROT_ALREADY_ROTATED')
    expect(again.stdout).toBe('')

    const revoked = await runKeyrot(['revoke', second.id, '--reason', 'leaked in a log', '--yes', ...store()])
    expect(revoked.code).toBe(0)
    expect(revoked.stdout).toBe(`Revoked ${second.id} (leaked in a log).\n`)
    const afterRevoke = await runKeyrot(['inspect', second.id, ...store()])
    expect(afterRevoke.stdout).toMatch(/^State\s+revoked$/m)
    expect(afterRevoke.stdout).toMatch(/^Revoked\s+\S+ \((now|\d+s ago)\): leaked in a log$/m)
    const refusedToken = await observer.verify(second.token)
    expect(refusedToken.ok).toBe(false)
    if (!refusedToken.ok) expect(refusedToken.error.code).toBe('KEYROT_KEY_REVOKED')

    const listed = await runKeyrot(['list', '--tenant', tenant, ...store()])
    expect(listed.code).toBe(0)
    const lines = listed.stdout.trimEnd().split('\n')
    expect(lines[0]).toMatch(/^ID\s+TENANT\s+NAME\s+STATE\s+SCOPES\s+EXPIRES\s+LAST USED$/)
    expect(lines).toHaveLength(3)
    expect(listed.stdout).toMatch(new RegExp(`^${second.id}  lifecycle\\s+ci\\s+revoked\\s+-\\s+revoked (now|\\d+s ago)\\s+(now|\\d+s ago)$`, 'm'))
    expect(listed.stdout).toMatch(new RegExp(`^${first.id}  lifecycle\\s+ci\\s+grace\\s+-\\s+in (1h 59m|2h)\\s+(now|\\d+s ago)$`, 'm'))
    // Columns line up: every row starts its STATE column where the header does.
    const stateColumn = (lines[0] as string).indexOf('STATE')
    for (const line of lines.slice(1)) expect(line.slice(stateColumn)).toMatch(/^(grace|revoked) /)
  }, 120_000)
})

describe('keyrot emergency-rotate, expiring, errors', () => {
  it('emergency-rotate revokes at once and prints the successor token', async () => {
    const leaked = await createKey('emergency')
    const result = await runKeyrot(['emergency-rotate', leaked.id, '--incident', 'INC-42', '--yes', '--json', ...store()])
    expect(result.code, result.stderr).toBe(0)
    const body = json(result.stdout)
    expect(body.revoked).toMatchObject({ id: leaked.id, state: 'revoked', incidentId: 'INC-42' })
    expect(body.key).toMatchObject({ state: 'active', rotatedFrom: leaked.id })
    expect((await observer.verify(leaked.token)).ok).toBe(false)
    expect((await observer.verify(body.token)).ok).toBe(true)
  })

  it('emergency-rotate without --yes is refused with exit 2', async () => {
    const key = await createKey('emergency-refused')
    const result = await runKeyrot(['emergency-rotate', key.id, '--incident', 'INC-1', ...store()])
    expect(result.code).toBe(2)
    expect((await observer.get(key.id))?.state).toBe('active')
  })

  it('expiring --within lists keys in grace and about to expire, not the others', async () => {
    const tenant = 'expiring'
    const soon = await createKey(tenant, ['--expires', '3d'])
    const later = await createKey(tenant, ['--expires', '30d'])
    const table = await runKeyrot(['expiring', '--within', '7d', '--tenant', tenant, ...store()])
    expect(table.code).toBe(0)
    expect(table.stdout).toMatch(new RegExp(`^${soon.id}\\s+expiring\\s+ci\\s+active\\s+-\\s+in (2d 23h|3d)\\s+never$`, 'm'))
    expect(table.stdout).not.toContain(later.id)
    const asJson = await runKeyrot(['expiring', '--within', '7d', '--tenant', tenant, '--json', ...store()])
    expect(json(asJson.stdout).keys.map((key: { id: string }) => key.id)).toEqual([soon.id])
    const none = await runKeyrot(['expiring', '--within', '1h', '--tenant', tenant, ...store()])
    expect(none.code).toBe(0)
    expect(none.stdout).toBe('')
    expect(none.stderr).toContain('No key stops working in that window.')
  })

  it('inspect of an unknown key exits 1; with --json the error is JSON on stderr', async () => {
    const human = await runKeyrot(['inspect', '0000000000000000', ...store()])
    expect(human.code).toBe(1)
    expect(human.stderr).toBe('keyrot: No key exists with id 0000000000000000.\n')
    const machine = await runKeyrot(['inspect', '0000000000000000', '--json', ...store()])
    expect(machine.code).toBe(1)
    expect(machine.stdout).toBe('')
    expect(json(machine.stderr)).toEqual({ error: { code: 'KEYROT_KEY_NOT_FOUND', message: 'No key exists with id 0000000000000000.' } })
  })

  it('revoke without --reason is a usage error', async () => {
    const key = await createKey('revoke-usage')
    const result = await runKeyrot(['revoke', key.id, '--yes', ...store()])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain("required option '--reason <text>' not specified")
  })
})

describe('keyrot demo', () => {
  beforeAll(() => ensureDemoBuilt(), 200_000)

  it('runs the rotation demo and exits 0 when every check passed', async () => {
    const result = await runKeyrot(['demo', '--grace', '1s', '--quiet'], { timeoutMs: 60_000 })
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/^PASS zero-downtime rotation held: 4\/4 checks/m)
    expect(result.stdout).not.toMatch(new RegExp(TOKEN_PATTERN.source))
  }, 90_000)

  it('passes a bad grace period on as a usage error (exit 2)', async () => {
    const result = await runKeyrot(['demo', '--grace', 'soon'])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain("'--grace <duration>' argument 'soon' is invalid")
  })
})

describe('keyrot --cluster', () => {
  it('creates, rotates and lists keys on a real 3-master Redis Cluster', async () => {
    const cluster = await startRedisCluster(3)
    try {
      const seeds = ['--cluster', '--redis', cluster.ports.map((port) => `redis://127.0.0.1:${port}`).join(',')]
      const created = await runKeyrot(['create', '--tenant', 'acme', '--name', 'ci', '--json', ...seeds])
      expect(created.code, created.stderr).toBe(0)
      const id = json(created.stdout).key.id as string
      const rotated = await runKeyrot(['rotate', id, '--yes', '--json', ...seeds])
      expect(rotated.code, rotated.stderr).toBe(0)
      const next = json(rotated.stdout).key.id as string
      const listed = await runKeyrot(['list', '--tenant', 'acme', '--json', ...seeds])
      expect(json(listed.stdout).keys.map((key: { id: string; state: string }) => `${key.id} ${key.state}`)).toEqual([`${next} active`, `${id} grace`])
    } finally {
      await cluster.stop()
    }
  }, 120_000)
})

describe('keyrot output to a closed pipe', () => {
  it('stops quietly when the reader goes away (EPIPE)', async () => {
    const { spawn } = await import('node:child_process')
    const { bin, childEnv, root } = await import('./keyrot-bin.js')
    const child = spawn(process.execPath, [bin, '--help'], { cwd: root, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    child.stdout.destroy()
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
    expect(stderr).not.toContain('EPIPE')
    expect(code).toBe(0)
  })
})
