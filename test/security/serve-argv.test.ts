import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ensureBuilt, killChildren, root, runKeyrot, startServe, type ServeProcess } from '../cli/keyrot-bin.js'
import { redisCli, startRedisServer, type RedisServer } from '../helpers/redis-server.js'
import { call } from './serve-support.js'

/**
 * Issue 14, finding 6: the Redis password sat in the process arguments
 * (`keyrot serve --redis redis://:pw@...`, readable by every local user
 * through `ps`), and the docs' own commands put it there. Now the password
 * comes from REDIS_PASSWORD or --redis-password-file, a password in argv
 * draws a masked warning, and no documented command carries one.
 */

const PASSWORD = 'Pw-for-serve-argv-7f3a'
let redis: RedisServer
let directory: string

/** What `ps` shows: the process's arguments. */
function argvOf(pid: number): string {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ')
}

async function stop(serve: ServeProcess): Promise<void> {
  serve.child.kill('SIGTERM')
  await serve.exited
}

beforeAll(async () => {
  ensureBuilt()
  redis = await startRedisServer()
  redisCli(redis.port, 'CONFIG', 'SET', 'requirepass', PASSWORD)
  directory = mkdtempSync(join(tmpdir(), 'keyrot-argv-'))
}, 240_000)

afterAll(async () => {
  killChildren()
  await redis?.stop()
  rmSync(directory, { recursive: true, force: true })
})

describe('finding 6: the Redis password stays out of argv', () => {
  it('before: the password is in the process arguments (now with a masked warning); after: REDIS_PASSWORD or --redis-password-file, nothing in argv', async () => {
    const inUrl = `redis://:${PASSWORD}@127.0.0.1:${redis.port}`
    const before = await startServe(['--redis', inUrl])
    let beforeArgv: string
    let beforeHealth: number
    try {
      beforeArgv = argvOf(before.child.pid as number)
      beforeHealth = (await call(before.url, 'GET', '/healthz')).status
    } finally {
      await stop(before)
    }
    const beforeOutput = before.output()

    const fromEnv = await startServe(['--redis', `redis://127.0.0.1:${redis.port}`], { env: { REDIS_PASSWORD: PASSWORD } })
    let envArgv: string
    let envHealth: number
    try {
      envArgv = argvOf(fromEnv.child.pid as number)
      envHealth = (await call(fromEnv.url, 'GET', '/healthz')).status
    } finally {
      await stop(fromEnv)
    }

    const file = join(directory, 'redis-password')
    writeFileSync(file, `${PASSWORD}\n`, { mode: 0o600 })
    const fromFile = await startServe(['--redis', `redis://127.0.0.1:${redis.port}`, '--redis-password-file', file])
    let fileArgv: string
    let fileHealth: number
    try {
      fileArgv = argvOf(fromFile.child.pid as number)
      fileHealth = (await call(fromFile.url, 'GET', '/healthz')).status
    } finally {
      await stop(fromFile)
    }

    // One-shot commands read it the same way; without it Redis refuses, and the message holds no password.
    const created = await runKeyrot(['create', '--redis', `redis://127.0.0.1:${redis.port}`, '--tenant', 'acme', '--name', 'ci'], { env: { REDIS_PASSWORD: PASSWORD } })
    const refused = await runKeyrot(['list', '--redis', `redis://127.0.0.1:${redis.port}`])
    const missingFile = await runKeyrot(['list', '--redis', `redis://127.0.0.1:${redis.port}`, '--redis-password-file', join(directory, 'nope')])

    const seen = (text: string) => (text.includes(PASSWORD) ? 'yes' : 'no')
    console.log(
      `[security] finding 6 password in argv: before=${seen(beforeArgv)} (healthz ${beforeHealth}, warned=${beforeOutput.includes('carries a password') ? 'yes' : 'no'}, password in output=${seen(beforeOutput)}); ` +
        `after REDIS_PASSWORD=${seen(envArgv)} (healthz ${envHealth}); after --redis-password-file=${seen(fileArgv)} (healthz ${fileHealth})`,
    )
    expect(beforeArgv).toContain(PASSWORD)
    expect(beforeHealth).toBe(200)
    expect(beforeOutput).toContain('warning: --redis redis://:***@127.0.0.1')
    expect(beforeOutput).not.toContain(PASSWORD)
    for (const [argv, health, output] of [
      [envArgv, envHealth, fromEnv.output()],
      [fileArgv, fileHealth, fromFile.output()],
    ] as const) {
      expect(argv).not.toContain(PASSWORD)
      expect(health).toBe(200)
      expect(output).not.toContain(PASSWORD)
      expect(output).not.toContain('carries a password')
    }
    expect(created.code, created.stderr).toBe(0)
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/NOAUTH|Authentication required/i)
    expect(missingFile.code).toBe(2)
    expect(missingFile.stderr).toContain('--redis-password-file')
    for (const result of [created, refused, missingFile]) expect(result.stdout + result.stderr).not.toContain(PASSWORD)
  }, 120_000)

  it('no command in the docs, README or examples puts a Redis password in a URL', () => {
    const files: string[] = []
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir)) {
        if (entry === 'node_modules' || entry === 'dist' || entry.startsWith('.')) continue
        const path = join(dir, entry)
        if (statSync(path).isDirectory()) walk(path)
        // Where commands are written for people to copy: docs, READMEs, scripts, compose and env files.
        else if (/\.(md|sh|ya?ml|env|example)$/.test(entry) || entry === 'Dockerfile') files.push(path)
      }
    }
    walk(join(root, 'docs'))
    walk(join(root, 'examples'))
    files.push(join(root, 'README.md'))
    const offending: string[] = []
    for (const file of files) {
      const text = readFileSync(file, 'utf8')
      // A password in a URL: anything but a mask (***) between ':' and '@'.
      for (const match of text.matchAll(/rediss?:\/\/[^\s/@'"`]*:(?!\*\*\*@)[^\s/@'"`]+@/g)) offending.push(`${file.slice(root.length)}: ${match[0]}`)
    }
    console.log(`[security] finding 6 docs and examples scanned: files=${files.length} URLs with a password=${offending.length}`)
    expect(files.length).toBeGreaterThan(5)
    expect(offending).toEqual([])
  })
})
