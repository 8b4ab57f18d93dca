import { PassThrough } from 'node:stream'
import { createKeyring, FastTestHasher } from '@keyrot/core'
import { RedisStore } from '@keyrot/redis'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { CliIo } from '../../packages/cli/src/io.js'
import { runCli } from '../../packages/cli/src/program.js'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'

// An app whose RedisStore uses keyPrefix 'app': the CLI finds its keys with
// --key-prefix or KEYROT_KEY_PREFIX, and without either says where they are.

let redis: RedisServer
let keyId: string

beforeAll(async () => {
  redis = await startRedisServer()
  const client = new Redis(redis.url)
  const keyring = createKeyring({ store: new RedisStore({ client, keyPrefix: 'app' }), hasher: new FastTestHasher() })
  keyId = (await keyring.create({ tenantId: 'acme', name: 'under app' })).key.id
  await keyring.close()
  client.disconnect()
})

afterAll(async () => {
  await redis?.stop()
})

async function keyrot(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
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
  return { code: await runCli(args, io), stdout, stderr }
}

it('without a key prefix, a lookup that fails names the prefix that holds the key', async () => {
  const result = await keyrot(['inspect', keyId, '--redis', redis.url])
  expect(result.code).toBe(1)
  expect(result.stderr).toContain('(key prefix "keyrot")')
  expect(result.stderr).toContain('this key exists under key prefix "app": pass --key-prefix app or set KEYROT_KEY_PREFIX')
  const json = await keyrot(['inspect', keyId, '--redis', redis.url, '--json'])
  expect(JSON.parse(json.stderr)).toEqual({ error: { code: 'KEYROT_KEY_NOT_FOUND', message: expect.stringContaining('--key-prefix app') } })
})

it('an unknown id under the default prefix still says which other prefixes hold keyrot data', async () => {
  const result = await keyrot(['inspect', 'AAAAAAAAAAAAAAAA', '--redis', redis.url])
  expect(result.code).toBe(1)
  expect(result.stderr).toContain('other key prefixes hold keyrot data: "app"')
})

it('--key-prefix and KEYROT_KEY_PREFIX find the key', async () => {
  const flag = await keyrot(['inspect', keyId, '--redis', redis.url, '--key-prefix', 'app', '--json'])
  expect({ code: flag.code, stderr: flag.stderr }).toEqual({ code: 0, stderr: '' })
  expect(JSON.parse(flag.stdout)).toMatchObject({ key: { id: keyId, tenantId: 'acme' } })
  const env = await keyrot(['list', '--redis', redis.url, '--json'], { KEYROT_KEY_PREFIX: 'app' })
  expect(env.code).toBe(0)
  expect(JSON.stringify(JSON.parse(env.stdout))).toContain(keyId)
})
