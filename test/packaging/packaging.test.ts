import { cpSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { publint } from 'publint'
import { formatMessage } from 'publint/utils'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { redisCli, startRedisServer, type RedisServer } from '../helpers/redis-server.js'
import { buildIfMissing, pack, PUBLISHED, requiredFiles, ROOT, run, tarballFiles, tarballManifest, type Manifest, type PublishedPackage, type RunResult } from './pack.js'

/**
 * Tests what we publish: packs every @keyrot package with the pinned pnpm,
 * lints the tarballs with publint and attw, installs them into a consumer
 * project outside the workspace and uses them from ESM, CommonJS,
 * type-checked TypeScript and the `keyrot` command, against a real
 * redis-server for @keyrot/redis. Nothing here resolves to the workspace's
 * sources. The consumer scripts are in ./consumer.
 */

const CONSUMER_SCRIPTS = new URL('./consumer/', import.meta.url)
const ATTW = join(ROOT, 'node_modules', '.bin', 'attw')

let work: string
let consumer: string
let redis: RedisServer | undefined
let startingRedis: Promise<RedisServer> | undefined
const tarballs = {} as Record<PublishedPackage, string>
const manifests = {} as Record<PublishedPackage, Manifest>

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'keyrot-packaging-'))
  // Starts while the packages are packed; afterAll stops it whatever happened.
  startingRedis = startRedisServer()
  startingRedis.catch(() => undefined)
  await buildIfMissing()
  const packed = join(work, 'tarballs')
  mkdirSync(packed)
  for (const name of PUBLISHED) {
    tarballs[name] = await pack(name, packed)
    manifests[name] = await tarballManifest(tarballs[name])
  }

  consumer = join(work, 'consumer')
  mkdirSync(consumer)
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'keyrot-consumer', version: '0.0.0', private: true }, null, 2))
  cpSync(CONSUMER_SCRIPTS, consumer, { recursive: true })
  await run(
    'npm',
    [
      'install',
      '--no-audit',
      '--no-fund',
      '--prefer-offline',
      '--loglevel=error',
      ...PUBLISHED.map((name) => tarballs[name]),
      'express@^5',
      '@types/express@^5',
      'koa@^3',
      '@types/koa@^3',
      'ioredis@^5',
      '@types/node@^20',
    ],
    { cwd: consumer, timeoutMs: 150_000 },
  )
  redis = await startingRedis
}, 300_000)

afterAll(async () => {
  const server = await startingRedis?.catch(() => undefined)
  await server?.stop()
  if (work) rmSync(work, { recursive: true, force: true })
})

function node(file: string, env: Record<string, string> = {}): Promise<RunResult> {
  return run(process.execPath, [file], { cwd: consumer, timeoutMs: 30_000, env })
}

/** `npx --no -- keyrot ...` in the consumer: only the installed bin can answer, nothing is fetched. */
function keyrot(...args: string[]): Promise<RunResult> {
  return run('npx', ['--no', '--', 'keyrot', ...args], { cwd: consumer, timeoutMs: 30_000 })
}

function installed(name: string): string {
  return join(consumer, 'node_modules', '@keyrot', name)
}

function redisUrl(): string {
  if (!redis) throw new Error('redis-server did not start')
  return redis.url
}

describe('published packages', () => {
  it('hold the ESM and CJS builds with their types, and no tests', async () => {
    for (const name of PUBLISHED) {
      const files = await tarballFiles(tarballs[name])
      for (const file of requiredFiles(name)) expect(files, `@keyrot/${name}`).toContain(`package/${file}`)
      expect(files.filter((file) => file.endsWith('.test.ts')), `@keyrot/${name}`).toEqual([])
    }
  })

  it('depend on the versions published beside them, never on workspace links', async () => {
    const versions = new Map(PUBLISHED.map((name) => [manifests[name].name, manifests[name].version]))
    for (const name of PUBLISHED) {
      const manifest = manifests[name]
      expect(manifest.name).toBe(`@keyrot/${name}`)
      for (const [dependency, range] of Object.entries({ ...manifest.dependencies, ...manifest.peerDependencies })) {
        expect(range, `${manifest.name} → ${dependency}`).not.toMatch(/^(workspace|link|file):/)
        if (versions.has(dependency)) expect(range, `${manifest.name} → ${dependency}`).toBe(versions.get(dependency))
      }
    }
    expect(manifests.express.dependencies?.['@keyrot/core']).toBe(manifests.core.version)
  })

  it('pass publint, suggestions included', async () => {
    const found: string[] = []
    for (const name of PUBLISHED) {
      const tarball = readFileSync(tarballs[name])
      const { messages, pkg } = await publint({
        pack: { tarball: tarball.buffer.slice(tarball.byteOffset, tarball.byteOffset + tarball.byteLength) as ArrayBuffer },
        level: 'suggestion',
        strict: true,
      })
      for (const message of messages) found.push(`@keyrot/${name} ${message.type} ${message.code}: ${formatMessage(message, pkg, { color: false })}`)
    }
    expect(found).toEqual([])
  })

  it('pass attw for Node 16+ resolution from ESM and from CommonJS, and for bundlers', async () => {
    // The node16 profile leaves out node10 (TypeScript's moduleResolution
    // "node"), which predates `exports` and Node 20, our oldest runtime.
    // No rule is ignored.
    const results = await Promise.all(
      PUBLISHED.map((name) => run(ATTW, [tarballs[name], '--profile', 'node16', '--format', 'json'], { cwd: work, timeoutMs: 60_000, allowFailure: true })),
    )
    PUBLISHED.forEach((name, index) => {
      const { stdout, stderr, code } = results[index] as RunResult
      const report = JSON.parse(stdout) as AttwReport
      const problems = report.analysis.problems.filter((problem) => problem.resolutionKind !== 'node10')
      expect(problems, `@keyrot/${name}`).toEqual([])
      expect({ code, stderr }, `@keyrot/${name}`).toEqual({ code: 0, stderr: '' })
      // A package without types passes attw with exit code 0: make sure ours were analysed.
      expect(report.analysis.types, `@keyrot/${name}`).toEqual({ kind: 'included' })
      const root = report.analysis.entrypoints['.']?.resolutions
      const dist = `/node_modules/@keyrot/${name}/dist`
      expect(
        {
          cjs: [root?.['node16-cjs']?.resolution?.fileName, root?.['node16-cjs']?.implementationResolution?.fileName],
          esm: [root?.['node16-esm']?.resolution?.fileName, root?.['node16-esm']?.implementationResolution?.fileName],
          bundler: [root?.bundler?.resolution?.fileName, root?.bundler?.implementationResolution?.fileName],
        },
        `@keyrot/${name}`,
      ).toEqual({
        cjs: [`${dist}/index.d.cts`, `${dist}/index.cjs`],
        esm: [`${dist}/index.d.ts`, `${dist}/index.js`],
        bundler: [`${dist}/index.d.ts`, `${dist}/index.js`],
      })
    })
  }, 90_000)
})

interface AttwReport {
  analysis: {
    types: false | { kind: string }
    problems: { kind: string; resolutionKind?: string }[]
    entrypoints: Record<string, { resolutions: Record<string, { resolution?: { fileName: string }; implementationResolution?: { fileName: string } }> }>
  }
}

describe('installed from the tarballs', () => {
  it('Express from ESM: a key authenticates a request through the middleware', async () => {
    const result = JSON.parse((await node('express-esm.mjs')).stdout) as {
      resolved: string[]
      keyId: string
      ok: { status: number; body: { tenant: string; id: string } }
      missing: { status: number; challenge: string; body: { error: { code: string } } }
    }
    expect(result.resolved).toEqual([join(installed('core'), 'dist/index.js'), join(installed('express'), 'dist/index.js')])
    expect(result.ok).toEqual({ status: 200, body: { tenant: 'acme', id: result.keyId } })
    expect(result.missing).toEqual({ status: 401, challenge: 'Bearer realm="api"', body: { error: expect.objectContaining({ code: 'KEYROT_MISSING_KEY' }) } })
  })

  it('Express from CommonJS: require() creates a key and verifies it', async () => {
    const result = JSON.parse((await node('express-cjs.cjs')).stdout) as Record<string, unknown>
    expect(result['resolved']).toEqual([join(installed('core'), 'dist/index.cjs'), join(installed('express'), 'dist/index.cjs')])
    expect(result).toMatchObject({ parsedId: result['keyId'], good: result['keyId'], bad: 'KEYROT_MALFORMED_TOKEN', defaultHasher: true, middleware: 'function' })
  })

  it('Koa from ESM: a good key passes, none gets the challenge, a key without the scope gets 403', async () => {
    const result = JSON.parse((await node('koa-esm.mjs')).stdout) as Record<string, unknown>
    expect(result['resolved']).toBe(join(installed('koa'), 'dist/index.js'))
    expect(result['ok']).toEqual({ status: 200, challenge: null, body: { tenant: 'acme', id: result['keyId'] } })
    expect(result['missing']).toEqual({ status: 401, challenge: 'Bearer realm="api"', body: { error: expect.objectContaining({ code: 'KEYROT_MISSING_KEY' }) } })
    expect(result['forbidden']).toEqual({
      status: 403,
      challenge: expect.stringContaining('error="insufficient_scope"'),
      body: { error: expect.objectContaining({ code: 'KEYROT_INSUFFICIENT_SCOPE' }) },
    })
  })

  it('Koa from CommonJS: a good key passes, a tampered one gets 401 invalid key', async () => {
    const result = JSON.parse((await node('koa-cjs.cjs')).stdout) as Record<string, unknown>
    expect(result['resolved']).toBe(join(installed('koa'), 'dist/index.cjs'))
    expect(result['ok']).toEqual({ status: 200, body: { id: result['keyId'] } })
    expect(result['tampered']).toEqual({ status: 401, body: { error: expect.objectContaining({ code: 'KEYROT_INVALID_KEY' }) } })
  })

  it('Redis from ESM and CommonJS: a key written by one build is verified and revoked by the other', async () => {
    const env = { REDIS_URL: redisUrl(), KEY_PREFIX: 'packaging' }
    const created = JSON.parse((await node('redis-esm.mjs', env)).stdout) as { resolved: string; token: string; keyId: string; verified: string }
    expect(created.resolved).toBe(join(installed('redis'), 'dist/index.js'))
    expect(created.verified).toBe(created.keyId)
    // The key lives in the test's redis-server, under the prefix given.
    expect(redisCli((redis as RedisServer).port, '--scan', '--pattern', 'packaging*').trim()).not.toBe('')

    const checked = JSON.parse((await node('redis-cjs.cjs', { ...env, TOKEN: created.token })).stdout) as Record<string, unknown>
    expect(checked).toEqual({
      resolved: join(installed('redis'), 'dist/index.cjs'),
      verified: { id: created.keyId, tenantId: 'acme', scopes: ['read'] },
      afterRevoke: 'KEYROT_KEY_REVOKED',
    })
  })

  it('keyrot: the bin is linked, starts with a shebang, and answers --help and --version', async () => {
    const bin = realpathSync(join(consumer, 'node_modules', '.bin', 'keyrot'))
    expect(bin).toBe(join(realpathSync(installed('cli')), manifests.cli.bin?.['keyrot'] ?? 'no keyrot bin'))
    expect(readFileSync(bin, 'utf8').split('\n')[0]).toBe('#!/usr/bin/env node')
    expect(statSync(bin).mode & 0o111).not.toBe(0)

    const help = await keyrot('--help')
    expect(help.stdout).toMatch(/^Usage: keyrot /)
    for (const command of ['create', 'list', 'inspect', 'rotate', 'revoke', 'emergency-rotate', 'expiring', 'serve']) {
      expect(help.stdout).toMatch(new RegExp(`^  ${command} `, 'm'))
    }
    expect((await keyrot('--version')).stdout.trim()).toBe(manifests.cli.version)
  })

  it('keyrot create writes a key to Redis that @keyrot/redis verifies', async () => {
    const { stdout } = await keyrot('create', '--tenant', 'acme', '--name', 'from-cli', '--scopes', 'read,write', '--json', '--redis', redisUrl())
    const created = JSON.parse(stdout) as { token: string; key: { id: string } }
    // KEY_PREFIX empty: the store's default prefix, the one the command uses.
    const checked = JSON.parse((await node('redis-cjs.cjs', { REDIS_URL: redisUrl(), KEY_PREFIX: '', TOKEN: created.token })).stdout) as Record<string, unknown>
    expect(checked).toMatchObject({ verified: { id: created.key.id, tenantId: 'acme', scopes: ['read', 'write'] }, afterRevoke: 'KEYROT_KEY_REVOKED' })
  })

  it('type-check from TypeScript (NodeNext), as ESM and as CommonJS', async () => {
    writeFileSync(
      join(consumer, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          lib: ['ES2023', 'DOM'],
          strict: true,
          noEmit: true,
          skipLibCheck: false,
          types: ['node'],
          // @types/koa 3.0.3 reads contentDisposition.Options from @types/content-disposition,
          // but express 5.3 brings content-disposition 2, whose own types (hoisted, so found
          // first) have no Options. Third-party clash, not ours: point @types/koa at the types
          // it was written for rather than turn on skipLibCheck and stop checking ours.
          paths: { 'content-disposition': ['./node_modules/@types/content-disposition'] },
        },
        files: ['consumer.mts', 'consumer.cts'],
      }),
    )
    writeFileSync(
      join(consumer, 'consumer.mts'),
      `
import { createKeyring, MemoryStore, type ApiKey, type VerifyResult, type KeyrotError } from '@keyrot/core'
import { apiKeyAuth } from '@keyrot/express'
import { apiKeyAuth as koaApiKeyAuth } from '@keyrot/koa'
import { RedisStore } from '@keyrot/redis'
import { createServer } from '@keyrot/cli'
import express, { type Request, type Express } from 'express'
import Koa from 'koa'
import { Redis } from 'ioredis'

const keyring = createKeyring({ store: new MemoryStore(), gracePeriod: '24h' })
const issued = await keyring.create({ tenantId: 'acme', name: 'ts', scopes: ['read'] })
const token: string = issued.token
const result: VerifyResult = await keyring.verify(token, { scopes: ['read'] })
if (result.ok) {
  const key: ApiKey = result.key
  const state: 'active' | 'grace' | 'expired' | 'revoked' = key.state
  console.log(state)
} else {
  const error: KeyrotError = result.error
  console.log(error.code, error.status)
}
const rotated = await keyring.rotate(issued.key.id, { gracePeriod: '1h' })
console.log(rotated.previous.expiresAt, rotated.key.id)

const app = express()
app.use(apiKeyAuth({ keyring, scopes: ['read'] }))
app.get('/', (req: Request, res) => {
  res.json({ tenant: req.apiKey?.tenantId })
})

const koa = new Koa()
koa.use(koaApiKeyAuth({ keyring, scopes: ['read'] }))
koa.use((ctx) => {
  const tenant: string | undefined = ctx.state.apiKey?.tenantId
  ctx.body = { tenant }
})

const shared = createKeyring({ store: new RedisStore({ client: new Redis({ lazyConnect: true }), keyPrefix: 'app', timeout: '300ms' }) })
const admin: Express = createServer({ keyring: shared })
console.log(typeof admin.listen)

// @ts-expect-error tenantId is required: the published types are real, not any.
await keyring.create({ name: 'no tenant' })
// @ts-expect-error gracePeriod takes ms or a duration string, not a boolean.
createKeyring({ gracePeriod: true })
// @ts-expect-error the store takes an ioredis client, not a URL.
new RedisStore({ client: 'redis://127.0.0.1:6379' })
`,
    )
    writeFileSync(
      join(consumer, 'consumer.cts'),
      `
import core = require('@keyrot/core')
import redis = require('@keyrot/redis')
import koa = require('@keyrot/koa')
import IORedis = require('ioredis')

const keyring = core.createKeyring({ store: new redis.RedisStore({ client: new IORedis.Redis({ lazyConnect: true }) }) })
export const middleware = koa.apiKeyAuth({ keyring })
export async function check(token: string): Promise<string> {
  const result = await keyring.verify(token)
  return result.ok ? result.key.tenantId : result.error.code
}
// @ts-expect-error verify takes a token string.
void keyring.verify(42)
`,
    )
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
    const { stdout, code } = await run(process.execPath, [tsc, '-p', 'tsconfig.json', '--listFiles'], { cwd: consumer, timeoutMs: 60_000, allowFailure: true })
    const checked = stdout.split('\n')
    expect(checked.filter((line) => line.includes(' error TS'))).toEqual([])
    expect(code).toBe(0)
    // The types came from the installed tarballs: ESM and CJS declarations both.
    for (const name of PUBLISHED) expect(checked).toContain(join(installed(name), 'dist/index.d.ts'))
    for (const name of ['core', 'koa', 'redis']) expect(checked).toContain(join(installed(name), 'dist/index.d.cts'))
    expect(checked.some((file) => file.startsWith(join(ROOT, 'packages')))).toBe(false)
  }, 60_000)
})
