import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { publint } from 'publint'
import { formatMessage } from 'publint/utils'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { redisCli, startRedisServer, type RedisServer } from '../helpers/redis-server.js'
import {
  buildIfMissing,
  installConsumer,
  pack,
  PUBLISHED,
  requiredFiles,
  ROOT,
  run,
  tarballFiles,
  tarballManifest,
  tarballText,
  typeCheck,
  type Manifest,
  type PublishedPackage,
  type RunResult,
} from './pack.js'

/**
 * Tests what we publish: packs every @keyrot package with the pinned pnpm,
 * lints the tarballs with publint and attw, installs them into a consumer
 * project outside the workspace and uses them from ESM, CommonJS,
 * type-checked TypeScript and the `keyrot` command, against a real
 * redis-server for @keyrot/redis; a second project runs and type-checks the
 * adapters under Express 4, Koa 2 and Fastify 4. Nothing here resolves to the
 * workspace's sources. The consumer scripts are in ./consumer.
 */

const ATTW = join(ROOT, 'node_modules', '.bin', 'attw')

let work: string
/** Express 5, Koa 3, Fastify 5, Hono, ioredis and every package. */
let consumer: string
/** Express 4, Koa 2 and Fastify 4, the oldest majors the adapters' peer ranges allow. */
let legacy: string
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
  legacy = join(work, 'legacy')
  await Promise.all([
    installConsumer(consumer, 'keyrot-consumer', [
      ...PUBLISHED.map((name) => tarballs[name]),
      'express@^5',
      '@types/express@^5',
      'koa@^3',
      '@types/koa@^3',
      'fastify@^5',
      'hono@^4',
      '@hono/node-server@^2',
      'ioredis@^5',
      '@types/node@^20',
    ]),
    installConsumer(legacy, 'keyrot-legacy-consumer', [
      tarballs.core,
      tarballs.express,
      tarballs.koa,
      tarballs.fastify,
      'express@^4.18',
      'fastify@^4',
      '@types/express@^4.17',
      'koa@^2.14',
      '@types/koa@^2.13',
      '@types/node@^20',
    ]),
  ])
  redis = await startingRedis
}, 300_000)

afterAll(async () => {
  const server = await startingRedis?.catch(() => undefined)
  await server?.stop()
  if (work) rmSync(work, { recursive: true, force: true })
})

function node(file: string, env: Record<string, string> = {}, cwd = consumer): Promise<RunResult> {
  return run(process.execPath, [file], { cwd, timeoutMs: 30_000, env })
}

/** `npx --no -- keyrot ...` in the consumer: only the installed bin can answer, nothing is fetched. */
function keyrot(...args: string[]): Promise<RunResult> {
  return run('npx', ['--no', '--', 'keyrot', ...args], { cwd: consumer, timeoutMs: 30_000 })
}

function installed(name: string, cwd = consumer): string {
  return join(cwd, 'node_modules', '@keyrot', name)
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

  it('carry a README, a CHANGELOG and the metadata of an npm page: repository, homepage, bugs, keywords, engines', async () => {
    const repositories = new Set<string | undefined>()
    for (const name of PUBLISHED) {
      const manifest = manifests[name]
      const where = `@keyrot/${name}`
      expect(manifest.description?.length, where).toBeGreaterThanOrEqual(20)
      expect(manifest.repository, where).toEqual({ type: 'git', url: expect.stringMatching(/^git\+https:\/\/.+\.git$/), directory: `packages/${name}` })
      repositories.add(manifest.repository?.url)
      expect(manifest.homepage, where).toMatch(new RegExp(`^https://.+/packages/${name}#readme$`))
      expect(manifest.bugs?.url, where).toMatch(/^https:\/\/.+\/issues$/)
      expect(manifest.keywords, where).toContain('keyrot')
      expect(manifest.keywords?.length, where).toBeGreaterThanOrEqual(4)
      expect(manifest.engines, where).toEqual({ node: '>=20' })
      const readme = await tarballText(tarballs[name], 'README.md')
      expect(readme.split('\n')[0], where).toBe(`# @keyrot/${name}`)
      // Install, a minimal example, a link to the docs.
      expect(readme, where).toMatch(/^## Install\n\n```sh\nnpm install [^\n]*@keyrot\//m)
      expect(readme, where).toMatch(/^## Example\n\n```(ts|sh)\n[\s\S]+?\n```/m)
      expect(readme, where).toMatch(/\]\(https:\/\/[^)]+#readme\)/)
      const changelog = await tarballText(tarballs[name], 'CHANGELOG.md')
      expect(changelog.split('\n')[0], where).toBe(`# @keyrot/${name}`)
      expect(changelog, where).toContain(`\n## ${manifest.version}\n`)
    }
    expect(repositories.size).toBe(1)
  })

  it('are versioned together: one version, and one fixed changesets group that names every package', () => {
    expect(new Set(PUBLISHED.map((name) => manifests[name].version)).size).toBe(1)
    const config = JSON.parse(readFileSync(join(ROOT, '.changeset', 'config.json'), 'utf8')) as { fixed: string[][] }
    expect(config.fixed).toHaveLength(1)
    expect([...(config.fixed[0] ?? [])].sort()).toEqual(PUBLISHED.map((name) => `@keyrot/${name}`).sort())
    expect(existsSync(join(ROOT, 'node_modules', '.bin', 'changeset'))).toBe(true)
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

  it('declare every package their published types import, with its @types when it has no types of its own', () => {
    const undeclared: string[] = []
    for (const name of PUBLISHED) {
      const manifest = manifests[name]
      const declared = new Set(Object.keys({ ...manifest.dependencies, ...manifest.peerDependencies }))
      for (const file of ['index.d.ts', 'index.d.cts']) {
        for (const dependency of importedPackages(readFileSync(join(installed(name), 'dist', file), 'utf8'))) {
          if (!declared.has(dependency)) {
            undeclared.push(`${manifest.name} dist/${file} imports ${dependency}, which it does not depend on`)
          } else if (!shipsTypes(join(consumer, 'node_modules', dependency)) && !declared.has(typesPackageOf(dependency))) {
            undeclared.push(`${manifest.name} dist/${file} imports ${dependency}, whose types are in ${typesPackageOf(dependency)}, which it does not depend on`)
          }
        }
      }
    }
    expect(undeclared).toEqual([])
  })
})

/** The packages a declaration file imports or augments (`node:` and other built-in modules left out). */
function importedPackages(declarations: string): Set<string> {
  const found = new Set<string>()
  // Doc comments hold examples (`import pino from 'pino'`) that are not imports.
  const code = declarations.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '')
  for (const match of code.matchAll(/(?:\bfrom|\bimport\(|\brequire\(|^\s*import|declare module)\s*['"]([^'"]+)['"]/gm)) {
    const specifier = match[1] as string
    if (specifier.startsWith('.') || specifier.startsWith('node:') || builtinModules.includes(specifier.split('/')[0] as string)) continue
    const parts = specifier.split('/')
    found.add(specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] as string))
  }
  return found
}

/** Whether an installed package carries its own declarations. */
function shipsTypes(directory: string): boolean {
  const manifest = JSON.parse(readFileSync(join(directory, 'package.json'), 'utf8')) as Record<string, unknown>
  return Boolean(manifest['types'] ?? manifest['typings']) || JSON.stringify(manifest['exports'] ?? {}).includes('"types"') || existsSync(join(directory, 'index.d.ts'))
}

/** `express` → `@types/express`; `@scope/name` → `@types/scope__name`. */
function typesPackageOf(name: string): string {
  return `@types/${name.startsWith('@') ? name.slice(1).replace('/', '__') : name}`
}

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

  it('Fastify from ESM: the plugin hook passes a good key, challenges none, and refuses a key without the route scope', async () => {
    const result = JSON.parse((await node('fastify-esm.mjs')).stdout) as Record<string, unknown>
    expect(result['resolved']).toBe(join(installed('fastify'), 'dist/index.js'))
    expect(result['fastify']).toMatch(/^5\./)
    expect(result['ok']).toEqual({ status: 200, challenge: null, body: { tenant: 'acme', id: result['keyId'] } })
    expect(result['missing']).toEqual({ status: 401, challenge: 'Bearer realm="api"', body: { error: expect.objectContaining({ code: 'KEYROT_MISSING_KEY' }) } })
    expect(result['forbidden']).toMatchObject({ status: 403, challenge: expect.stringContaining('scope="admin"'), body: { error: { code: 'KEYROT_INSUFFICIENT_SCOPE' } } })
  })

  it('Fastify from CommonJS: fastify.verifyApiKey() in a preHandler passes a good key and refuses a tampered one', async () => {
    const result = JSON.parse((await node('fastify-cjs.cjs')).stdout) as Record<string, unknown>
    expect(result['resolved']).toBe(join(installed('fastify'), 'dist/index.cjs'))
    expect(result['ok']).toEqual({ status: 200, body: { id: result['keyId'] } })
    expect(result['tampered']).toEqual({ status: 401, body: { error: expect.objectContaining({ code: 'KEYROT_INVALID_KEY' }) } })
  })

  it('Hono from ESM on @hono/node-server: a good key passes with the socket address as client IP, none is challenged, a missing scope is 403', async () => {
    const result = JSON.parse((await node('hono-esm.mjs')).stdout) as Record<string, unknown>
    expect(result['resolved']).toBe(join(installed('hono'), 'dist/index.js'))
    expect(result['ok']).toEqual({ status: 200, challenge: null, body: { tenant: 'acme', id: result['keyId'] } })
    expect(result['missing']).toEqual({ status: 401, challenge: 'Bearer realm="api"', body: { error: expect.objectContaining({ code: 'KEYROT_MISSING_KEY' }) } })
    expect(result['forbidden']).toMatchObject({ status: 403, body: { error: { code: 'KEYROT_INSUFFICIENT_SCOPE' } } })
    expect(result['clientIps']).toEqual(['127.0.0.1'])
  })

  it('Hono from CommonJS: a good key passes, a tampered one gets 401 invalid key', async () => {
    const result = JSON.parse((await node('hono-cjs.cjs')).stdout) as Record<string, unknown>
    expect(result['resolved']).toBe(join(installed('hono'), 'dist/index.cjs'))
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
    // The demo lives in the repository: the published help does not offer it,
    // and `keyrot demo` says where it is.
    expect(help.stdout).not.toMatch(/^ {2}demo /m)
    const demo = await run('npx', ['--no', '--', 'keyrot', 'demo'], { cwd: consumer, timeoutMs: 30_000, allowFailure: true })
    expect({ code: demo.code, stderr: demo.stderr }).toEqual({ code: 1, stderr: expect.stringContaining('ships with the keyrot repository') })
    expect((await keyrot('serve', '--help')).stdout).toMatch(/\(default: 10s\)/)
  })

  it('keyrot create writes a key to Redis that @keyrot/redis verifies', async () => {
    const { stdout } = await keyrot('create', '--tenant', 'acme', '--name', 'from-cli', '--scopes', 'read,write', '--json', '--redis', redisUrl())
    const created = JSON.parse(stdout) as { token: string; key: { id: string } }
    // KEY_PREFIX empty: the store's default prefix, the one the command uses.
    const checked = JSON.parse((await node('redis-cjs.cjs', { REDIS_URL: redisUrl(), KEY_PREFIX: '', TOKEN: created.token })).stdout) as Record<string, unknown>
    expect(checked).toMatchObject({ verified: { id: created.key.id, tenantId: 'acme', scopes: ['read', 'write'] }, afterRevoke: 'KEYROT_KEY_REVOKED' })
  })

  it('type-check from TypeScript (NodeNext), as ESM and as CommonJS', async () => {
    const { files, errors, code } = await typeCheck(consumer, {
      'consumer.mts':
        `
import { createKeyring, MemoryStore, type ApiKey, type VerifyResult, type KeyrotError } from '@keyrot/core'
import { apiKeyAuth } from '@keyrot/express'
import { apiKeyAuth as koaApiKeyAuth } from '@keyrot/koa'
import { RedisStore } from '@keyrot/redis'
import { createServer } from '@keyrot/cli'
import { apiKeyAuth as fastifyApiKeyAuth } from '@keyrot/fastify'
import { apiKeyAuth as honoApiKeyAuth, type ApiKeyEnv } from '@keyrot/hono'
import express, { type Request, type Express } from 'express'
import Fastify from 'fastify'
import { Hono } from 'hono'
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

const fastify = Fastify()
await fastify.register(fastifyApiKeyAuth, { keyring, scopes: ['read'] })
fastify.get('/', { config: { keyrot: { scopes: ['admin'] } } }, async (request) => {
  const key: ApiKey | null = request.apiKey
  return { tenant: key?.tenantId }
})
fastify.get('/one', { preHandler: fastify.verifyApiKey({ scopes: ['read'] }) }, async () => 'ok')

const hono = new Hono<ApiKeyEnv>()
hono.use(honoApiKeyAuth({ keyring }))
hono.get('/', (c) => {
  const tenant: string = c.get('apiKey').tenantId
  return c.json({ tenant })
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
// @ts-expect-error scopes are an array of scope names.
honoApiKeyAuth({ keyring, scopes: 'read' })
`,
      'consumer.cts':
        `
import core = require('@keyrot/core')
import redis = require('@keyrot/redis')
import koa = require('@keyrot/koa')
import fastifyAdapter = require('@keyrot/fastify')
import honoAdapter = require('@keyrot/hono')
import IORedis = require('ioredis')

const keyring = core.createKeyring({ store: new redis.RedisStore({ client: new IORedis.Redis({ lazyConnect: true }) }) })
export const middleware = koa.apiKeyAuth({ keyring })
export const fastifyPlugin = fastifyAdapter.apiKeyAuth
export const honoMiddleware = honoAdapter.apiKeyAuth({ keyring, clientIp: (c) => c.req.header('x-real-ip') })
export async function check(token: string): Promise<string> {
  const result = await keyring.verify(token)
  return result.ok ? result.key.tenantId : result.error.code
}
// @ts-expect-error verify takes a token string.
void keyring.verify(42)
`,
    })
    expect(errors).toEqual([])
    expect(code).toBe(0)
    // The types came from the installed tarballs: ESM and CJS declarations both.
    for (const name of PUBLISHED) expect(files).toContain(join(installed(name), 'dist/index.d.ts'))
    for (const name of ['core', 'koa', 'fastify', 'hono', 'redis']) expect(files).toContain(join(installed(name), 'dist/index.d.cts'))
    expect(files.some((file) => file.startsWith(join(ROOT, 'packages')))).toBe(false)
  }, 60_000)
})

describe('installed from the tarballs with Express 4, Koa 2 and Fastify 4', () => {
  it('Express 4: a key authenticates a request through the middleware', async () => {
    const result = JSON.parse((await node('express-esm.mjs', {}, legacy)).stdout) as Record<string, unknown>
    expect(result['resolved']).toEqual([join(installed('core', legacy), 'dist/index.js'), join(installed('express', legacy), 'dist/index.js')])
    expect((JSON.parse(readFileSync(join(legacy, 'node_modules', 'express', 'package.json'), 'utf8')) as Manifest).version).toMatch(/^4\./)
    expect(result['ok']).toEqual({ status: 200, body: { tenant: 'acme', id: result['keyId'] } })
    expect(result['missing']).toMatchObject({ status: 401, challenge: 'Bearer realm="api"' })
  })

  it('Koa 2: a good key passes, none gets the challenge, a key without the scope gets 403', async () => {
    const result = JSON.parse((await node('koa-esm.mjs', {}, legacy)).stdout) as Record<string, unknown>
    expect((JSON.parse(readFileSync(join(legacy, 'node_modules', 'koa', 'package.json'), 'utf8')) as Manifest).version).toMatch(/^2\./)
    expect(result['resolved']).toBe(join(installed('koa', legacy), 'dist/index.js'))
    expect(result['ok']).toMatchObject({ status: 200, body: { tenant: 'acme', id: result['keyId'] } })
    expect(result['missing']).toMatchObject({ status: 401, challenge: 'Bearer realm="api"' })
    expect(result['forbidden']).toMatchObject({ status: 403 })
  })

  it('Fastify 4: the plugin hook passes a good key, challenges none, and refuses a key without the route scope', async () => {
    const result = JSON.parse((await node('fastify-esm.mjs', {}, legacy)).stdout) as Record<string, unknown>
    expect(result['fastify']).toMatch(/^4\./)
    expect(result['resolved']).toBe(join(installed('fastify', legacy), 'dist/index.js'))
    expect(result['ok']).toMatchObject({ status: 200, body: { tenant: 'acme', id: result['keyId'] } })
    expect(result['missing']).toMatchObject({ status: 401, challenge: 'Bearer realm="api"' })
    expect(result['forbidden']).toMatchObject({ status: 403 })
  })

  it('type-check against @types/express 4 and @types/koa 2, as ESM and as CommonJS', async () => {
    const { files, errors, code } = await typeCheck(legacy, {
      'legacy.mts': `
import { createKeyring, MemoryStore } from '@keyrot/core'
import { apiKeyAuth } from '@keyrot/express'
import { apiKeyAuth as koaApiKeyAuth } from '@keyrot/koa'
import { apiKeyAuth as fastifyApiKeyAuth } from '@keyrot/fastify'
import express, { type Request } from 'express'
import Fastify from 'fastify'
import Koa from 'koa'

const keyring = createKeyring({ store: new MemoryStore() })
const fastify = Fastify()
await fastify.register(fastifyApiKeyAuth, { keyring })
fastify.get('/', async (request) => ({ tenant: request.apiKey?.tenantId }))
const app = express()
app.use(apiKeyAuth({ keyring, scopes: ['read'] }))
app.get('/', (req: Request, res) => {
  res.json({ tenant: req.apiKey?.tenantId })
})
const koa = new Koa()
koa.use(koaApiKeyAuth({ keyring }))
koa.use((ctx) => {
  const tenant: string | undefined = ctx.state.apiKey?.tenantId
  ctx.body = { tenant }
})
// @ts-expect-error the middleware needs a keyring.
apiKeyAuth({})
`,
      'legacy.cts': `
import core = require('@keyrot/core')
import expressAdapter = require('@keyrot/express')
import koaAdapter = require('@keyrot/koa')

const keyring = core.createKeyring({ store: new core.MemoryStore() })
export const forExpress = expressAdapter.apiKeyAuth({ keyring })
export const forKoa = koaAdapter.apiKeyAuth({ keyring, scopes: ['read'] })
`,
    })
    expect(errors).toEqual([])
    expect(code).toBe(0)
    expect(files).toContain(join(legacy, 'node_modules/@types/express/index.d.ts'))
    expect(files).toContain(join(installed('express', legacy), 'dist/index.d.cts'))
    expect(files).toContain(join(installed('koa', legacy), 'dist/index.d.cts'))
    const typesVersions = ['express', 'koa'].map((name) => (JSON.parse(readFileSync(join(legacy, 'node_modules/@types', name, 'package.json'), 'utf8')) as Manifest).version)
    expect(typesVersions).toEqual([expect.stringMatching(/^4\./), expect.stringMatching(/^2\./)])
  }, 60_000)
})
