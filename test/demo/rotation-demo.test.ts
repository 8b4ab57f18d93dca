import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { TOKEN_PATTERN } from '@keyrot/core'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('../..', import.meta.url))
const demoDir = `${root}examples/rotation-demo`
const entry = `${demoDir}/dist/index.js`

/** The demo's dist is stale when missing or older than one of its sources. */
function needsBuild(): boolean {
  if (!existsSync(entry)) return true
  const built = statSync(entry).mtimeMs
  return readdirSync(`${demoDir}/src`).some((name) => statSync(`${demoDir}/src/${name}`).mtimeMs > built)
}

const children = new Set<ChildProcess>()

function runDemo(args: string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [entry, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    children.add(child)
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`the demo did not finish within ${timeoutMs} ms\n${stdout}\n${stderr}`))
    }, timeoutMs)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      children.delete(child)
      resolve({ code, stdout, stderr })
    })
  })
}

afterEach(() => {
  for (const child of children) child.kill('SIGKILL')
  children.clear()
})

describe('examples/rotation-demo', () => {
  beforeAll(() => {
    if (!needsBuild()) return
    const build = spawnSync(process.execPath, ['scripts/setup.mjs', '--build-only', '--quiet'], { cwd: root, encoding: 'utf8', timeout: 180_000 })
    if (build.status !== 0) throw new Error(`building the workspace failed (exit ${build.status ?? build.signal}): ${build.stderr}`)
  }, 200_000)

  it('runs a 3 s rotation over HTTP, passes every check and prints no token', async () => {
    const { code, stdout, stderr } = await runDemo(['--grace', '3s'])
    expect(stderr).toBe('')
    expect(code).toBe(0)
    expect(stdout).toMatch(/^PASS no request with a valid key failed \(n=[1-9]\d*\)$/m)
    expect(stdout).toMatch(/^PASS every request after the deadline failed with 401 KEYROT_KEY_EXPIRED \(n=[1-9]\d*\)$/m)
    expect(stdout).toMatch(/^PASS leaked key refused with KEYROT_KEY_REVOKED \(n=[1-9]\d*\), its replacement works \(n=[1-9]\d*\)$/m)
    expect(stdout).toMatch(/^PASS every success with the old key during grace carried Sunset with its deadline \(n=[1-9]\d*\)$/m)
    expect(stdout).toMatch(/^PASS zero-downtime rotation held: 4\/4 checks, \d+ requests, grace 3s, [\d.]+ s$/m)
    expect(stdout).not.toMatch(/^FAIL/m)
    // Keys appear masked (three of them: K1, K2, K3), tokens never.
    expect(stdout.match(/\bsk_live_[0-9A-Za-z]{16}_…/g)).toHaveLength(3)
    expect(`${stdout}\n${stderr}`.match(TOKEN_PATTERN)).toBeNull()
  }, 60_000)

  it('refuses bad flags with exit code 2 and a reason', async () => {
    const short = await runDemo(['--grace', '200ms'])
    expect(short.code).toBe(2)
    expect(short.stderr).toMatch(/--grace must be at least 1s/)
    const unknown = await runDemo(['--store', 'redis'])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toMatch(/Unknown option '--store'/)
    const garbage = await runDemo(['--grace', 'soon'])
    expect(garbage.code).toBe(2)
    expect(garbage.stderr).toMatch(/--grace must be a non-negative number/)
  })

  it('prints its usage with --help', async () => {
    const { code, stdout } = await runDemo(['--help'])
    expect(code).toBe(0)
    expect(stdout).toMatch(/--grace <duration>/)
  })
})
