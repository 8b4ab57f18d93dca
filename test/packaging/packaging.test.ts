import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

/**
 * Tests what we publish: packs @keyrot/core and @keyrot/express with the
 * pinned pnpm (which turns `workspace:*` into real versions), installs the
 * tarballs into a consumer project outside the workspace, and uses them from
 * ESM, CommonJS and type-checked TypeScript. Nothing here resolves to the
 * workspace's sources.
 */

const root = fileURLToPath(new URL('../../', import.meta.url))
const PNPM = ['-y', 'pnpm@12.4.2']
const PACKAGES = { core: join(root, 'packages/core'), express: join(root, 'packages/express') }

interface RunResult {
  stdout: string
  stderr: string
}

/**
 * Runs a command with a hard time limit. The child leads its own process
 * group so a timeout kills everything it started (npx → pnpm → node).
 */
function run(command: string, args: string[], options: { cwd: string; timeoutMs: number }): Promise<RunResult> {
  // Outside the workspace, npm must not inherit the settings of the pnpm or npm run that started the tests.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(npm_|pnpm_)/i.test(name)))
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: { ...env, npm_config_yes: 'true' }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const timer = setTimeout(() => {
      try {
        process.kill(-(child.pid as number), 'SIGKILL')
      } catch {
        // Already gone.
      }
      reject(new Error(`${command} ${args.join(' ')} took over ${options.timeoutMs} ms\n${stdout}\n${stderr}`))
    }, options.timeoutMs)
    child.once('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      if (code === 0) resolve({ stdout, stderr })
      else reject(new Error(`${command} ${args.join(' ')} failed (${code ?? signal}) in ${options.cwd}\n${stdout}\n${stderr}`))
    })
  })
}

let work: string
let consumer: string
const tarballs: Record<keyof typeof PACKAGES, string> = { core: '', express: '' }

beforeAll(async () => {
  const built = ['core', 'express'].every((name) =>
    ['index.js', 'index.cjs', 'index.d.ts', 'index.d.cts'].every((file) => existsSync(join(root, 'packages', name, 'dist', file))),
  )
  if (!built) {
    await run('npx', [...PNPM, '--filter', '@keyrot/core', '--filter', '@keyrot/express', 'run', 'build'], { cwd: root, timeoutMs: 120_000 })
  }
  work = mkdtempSync(join(tmpdir(), 'keyrot-packaging-'))
  const packed = join(work, 'tarballs')
  mkdirSync(packed)
  for (const [name, dir] of Object.entries(PACKAGES) as [keyof typeof PACKAGES, string][]) {
    const before = new Set(readdirSync(packed))
    await run('npx', [...PNPM, 'pack', '--pack-destination', packed], { cwd: dir, timeoutMs: 60_000 })
    const made = readdirSync(packed).filter((file) => file.endsWith('.tgz') && !before.has(file))
    expect(made, `pnpm pack made no tarball for ${name}`).toHaveLength(1)
    tarballs[name] = join(packed, made[0] as string)
  }

  consumer = join(work, 'consumer')
  mkdirSync(consumer)
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'keyrot-consumer', version: '0.0.0', private: true }, null, 2))
  await run(
    'npm',
    ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', tarballs.core, tarballs.express, 'express@^5', '@types/express@^5'],
    { cwd: consumer, timeoutMs: 150_000 },
  )
}, 300_000)

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true })
})

async function tarballFiles(tarball: string): Promise<string[]> {
  const { stdout } = await run('tar', ['-tzf', tarball], { cwd: work, timeoutMs: 10_000 })
  return stdout.split('\n').filter(Boolean)
}

async function tarballManifest(tarball: string): Promise<{ version: string; dependencies?: Record<string, string> }> {
  const { stdout } = await run('tar', ['-xzOf', tarball, 'package/package.json'], { cwd: work, timeoutMs: 10_000 })
  return JSON.parse(stdout) as { version: string; dependencies?: Record<string, string> }
}

function node(file: string): Promise<RunResult> {
  return run(process.execPath, [file], { cwd: consumer, timeoutMs: 30_000 })
}

describe('published packages', () => {
  it('hold the ESM and CJS builds with their types, and no tests', async () => {
    for (const tarball of Object.values(tarballs)) {
      const files = await tarballFiles(tarball)
      for (const file of ['dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/index.d.cts', 'package.json']) {
        expect(files).toContain(`package/${file}`)
      }
      expect(files.filter((file) => file.endsWith('.test.ts'))).toEqual([])
    }
  })

  it('depend on real versions, never on workspace links', async () => {
    const core = await tarballManifest(tarballs.core)
    const express = await tarballManifest(tarballs.express)
    expect(express.dependencies?.['@keyrot/core']).toBe(core.version)
    for (const manifest of [core, express]) {
      for (const range of Object.values(manifest.dependencies ?? {})) expect(range).not.toMatch(/^(workspace|link|file):/)
    }
  })

  it('work from ESM: a key authenticates a request through the Express middleware', async () => {
    writeFileSync(
      join(consumer, 'esm.mjs'),
      `
import { createKeyring, MemoryStore } from '@keyrot/core'
import { apiKeyAuth } from '@keyrot/express'
import express from 'express'
import { fileURLToPath } from 'node:url'

const keyring = createKeyring({ store: new MemoryStore() })
const { token, key } = await keyring.create({ tenantId: 'acme', name: 'esm', scopes: ['read'] })
const app = express()
app.get('/v1/things', apiKeyAuth({ keyring, scopes: ['read'] }), (req, res) => res.json({ tenant: req.apiKey.tenantId, id: req.apiKey.id }))
const server = app.listen(0, '127.0.0.1')
await new Promise((resolve) => server.once('listening', resolve))
const url = 'http://127.0.0.1:' + server.address().port + '/v1/things'
try {
  const ok = await fetch(url, { headers: { authorization: 'Bearer ' + token } })
  const missing = await fetch(url)
  console.log(JSON.stringify({
    resolved: fileURLToPath(import.meta.resolve('@keyrot/core')),
    keyId: key.id,
    ok: { status: ok.status, body: await ok.json() },
    missing: { status: missing.status, challenge: missing.headers.get('www-authenticate'), body: await missing.json() },
  }))
} finally {
  server.close()
  await keyring.close()
}
`,
    )
    const { stdout } = await node('esm.mjs')
    const result = JSON.parse(stdout) as {
      resolved: string
      keyId: string
      ok: { status: number; body: { tenant: string; id: string } }
      missing: { status: number; challenge: string; body: { error: { code: string } } }
    }
    expect(result.resolved.startsWith(join(consumer, 'node_modules', '@keyrot', 'core'))).toBe(true)
    expect(result.resolved.endsWith('index.js')).toBe(true)
    expect(result.ok).toEqual({ status: 200, body: { tenant: 'acme', id: result.keyId } })
    expect(result.missing).toEqual({ status: 401, challenge: 'Bearer realm="api"', body: { error: expect.objectContaining({ code: 'KEYROT_MISSING_KEY' }) } })
  }, 60_000)

  it('work from CommonJS: require() creates a key and verifies it', async () => {
    writeFileSync(
      join(consumer, 'cjs.cjs'),
      `
const { createKeyring, MemoryStore, Argon2Hasher, parseToken } = require('@keyrot/core')
const { apiKeyAuth } = require('@keyrot/express')

async function main() {
  const keyring = createKeyring({ store: new MemoryStore() })
  const { token, key } = await keyring.create({ tenantId: 'acme', name: 'cjs' })
  const good = await keyring.verify(token)
  const bad = await keyring.verify(token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A'))
  await keyring.close()
  console.log(JSON.stringify({
    resolved: require.resolve('@keyrot/core'),
    parsedId: parseToken(token).keyId,
    keyId: key.id,
    good: good.ok && good.key.id,
    bad: bad.ok ? 'accepted' : bad.error.code,
    defaultHasher: keyring.options.hasher instanceof Argon2Hasher,
    middleware: typeof apiKeyAuth({ keyring }),
  }))
}
main().catch((error) => { console.error(error); process.exit(1) })
`,
    )
    const { stdout } = await node('cjs.cjs')
    const result = JSON.parse(stdout) as Record<string, unknown>
    expect(String(result['resolved']).startsWith(join(consumer, 'node_modules', '@keyrot', 'core'))).toBe(true)
    expect(String(result['resolved']).endsWith('index.cjs')).toBe(true)
    expect(result).toMatchObject({ parsedId: result['keyId'], good: result['keyId'], bad: 'KEYROT_MALFORMED_TOKEN', defaultHasher: true, middleware: 'function' })
  }, 60_000)

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
        },
        files: ['consumer.mts', 'consumer.cts'],
      }),
    )
    writeFileSync(
      join(consumer, 'consumer.mts'),
      `
import { createKeyring, MemoryStore, type ApiKey, type VerifyResult, type KeyrotError } from '@keyrot/core'
import { apiKeyAuth } from '@keyrot/express'
import express, { type Request } from 'express'

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

// @ts-expect-error tenantId is required: the published types are real, not any.
await keyring.create({ name: 'no tenant' })
// @ts-expect-error gracePeriod takes ms or a duration string, not a boolean.
createKeyring({ gracePeriod: true })
`,
    )
    writeFileSync(
      join(consumer, 'consumer.cts'),
      `
import core = require('@keyrot/core')

const keyring = core.createKeyring({ store: new core.MemoryStore() })
export async function check(token: string): Promise<string> {
  const result = await keyring.verify(token)
  return result.ok ? result.key.tenantId : result.error.code
}
// @ts-expect-error verify takes a token string.
void keyring.verify(42)
`,
    )
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
    const { stdout } = await run(process.execPath, [tsc, '-p', 'tsconfig.json', '--listFiles'], { cwd: consumer, timeoutMs: 60_000 })
    const checked = stdout.split('\n')
    // The types came from the installed tarballs: ESM and CJS declarations both.
    expect(checked).toContain(join(consumer, 'node_modules/@keyrot/core/dist/index.d.ts'))
    expect(checked).toContain(join(consumer, 'node_modules/@keyrot/core/dist/index.d.cts'))
    expect(checked).toContain(join(consumer, 'node_modules/@keyrot/express/dist/index.d.ts'))
    expect(checked.some((file) => file.startsWith(join(root, 'packages')))).toBe(false)
  }, 60_000)
})
