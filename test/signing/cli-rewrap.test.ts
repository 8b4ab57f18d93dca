import { randomBytes } from 'node:crypto'
import { PassThrough } from 'node:stream'
import { createKeyring, FastTestHasher, signWebhook, type MasterKey } from '@keyrot/core'
import { RedisStore } from '@keyrot/redis'
import { Redis } from 'ioredis'
import { Webhook } from 'standardwebhooks'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli } from '../../packages/cli/src/program.js'
import type { CliIo } from '../../packages/cli/src/io.js'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'

let server: RedisServer
const closers: (() => Promise<void> | void)[] = []

beforeAll(async () => {
  server = await startRedisServer()
})

afterAll(async () => {
  for (const close of closers.reverse()) await close()
  await server?.stop()
})

const envOf = (keys: MasterKey[]) => ({ KEYROT_MASTER_KEYS: keys.map((k) => `${k.id}:${Buffer.from(k.key as Uint8Array).toString('base64')}`).join(',') })

async function cli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = ''
  let stderr = ''
  const io: CliIo = {
    stdout: { write: (chunk: string) => (stdout += chunk) },
    stderr: { write: (chunk: string) => (stderr += chunk) },
    stdin: new PassThrough(),
    env,
    interactive: false,
    now: () => Date.now(),
  }
  const code = await runCli([...args, '--redis', server.url], io)
  return { code, stdout, stderr }
}

function keyringOn(masterKeys: MasterKey[]) {
  const client = new Redis(server.port, '127.0.0.1', { lazyConnect: true })
  const keyring = createKeyring({ store: new RedisStore({ client }), hasher: new FastTestHasher(), signing: { masterKeys } })
  closers.push(async () => {
    await keyring.close()
    client.disconnect()
  })
  return keyring
}

describe('keyrot rewrap-secrets', () => {
  const oldMaster = { id: 'old', key: randomBytes(32) }
  const newMaster = { id: 'new', key: randomBytes(32) }

  it('re-encrypts every signing secret in Redis; each still signs after the old master key is dropped', async () => {
    const before = keyringOn([oldMaster])
    const issued = await Promise.all([0, 1, 2].map((i) => before.createSigningSecret({ tenantId: `t${i}`, name: 'hooks' })))

    const run = await cli(['rewrap-secrets', '--json'], envOf([newMaster, oldMaster]))
    expect(run.code, run.stderr).toBe(0)
    expect(JSON.parse(run.stdout)).toEqual({ rewrapped: 3, current: 0, failed: [], masterKeyId: 'new' })
    const again = await cli(['rewrap-secrets'], envOf([newMaster, oldMaster]))
    expect(again.stdout).toBe('Re-encrypted 0 signing secret(s) under master key new; 3 already were; 0 failed.\n')

    const after = keyringOn([newMaster])
    for (const { secret, key } of issued) {
      const headers = await signWebhook(after, { secretId: key.id, id: 'msg', payload: '{}' })
      expect(new Webhook(secret).verify('{}', headers)).toEqual({})
    }
    // And with the master keys configured, the lifecycle commands handle signing secrets too.
    const rotated = await cli(['rotate', issued[0]!.key.id, '--yes', '--json', '--grace', '1m'], envOf([newMaster]))
    expect(rotated.code, rotated.stderr).toBe(0)
    expect(JSON.parse(rotated.stdout).token).toMatch(/^whsec_/)
  })

  it('exits 1 and names the keys it could not open, and 2 without master keys, never printing key material', async () => {
    const lost = keyringOn([{ id: 'lost', key: randomBytes(32) }])
    const { key } = await lost.createSigningSecret({ tenantId: 'lost', name: 'hooks' })
    const run = await cli(['rewrap-secrets'], envOf([newMaster]))
    expect(run.code).toBe(1)
    expect(run.stderr).toContain(`${key.id}: The signing secret of key ${key.id} cannot be decrypted: master key "lost" is not configured.`)
    const none = await cli(['rewrap-secrets'], {})
    expect(none.code).toBe(2)
    expect(none.stderr).toContain('rewrap-secrets needs KEYROT_MASTER_KEYS')
    const short = randomBytes(16).toString('base64')
    const bad = await cli(['rewrap-secrets'], { KEYROT_MASTER_KEYS: `k:${short}` })
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('must be exactly 32 bytes')
    expect(bad.stderr).not.toContain(short)
  })
})
