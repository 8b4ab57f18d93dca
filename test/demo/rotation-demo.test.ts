import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { TOKEN_PATTERN } from '@keyrot/core'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { freePort, redisCli, startRedisServer, type RedisServer } from '../helpers/redis-server.js'

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

interface DemoRun {
  child: ChildProcess
  /** Output so far. */
  output(): { stdout: string; stderr: string }
  finished: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>
}

function startDemo(args: string[], timeoutMs = 60_000): DemoRun {
  // No REDIS_URL from the environment: the tests name their own Redis.
  const { REDIS_URL: _ignored, ...env } = process.env
  const child = spawn(process.execPath, [entry, ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const finished = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`the demo did not finish within ${timeoutMs} ms\n${stdout}\n${stderr}`))
    }, timeoutMs)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      children.delete(child)
      resolve({ code, signal, stdout, stderr })
    })
  })
  return { child, output: () => ({ stdout, stderr }), finished }
}

function runDemo(args: string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return startDemo(args, timeoutMs).finished
}

/** Pids of the replica processes, from the demo's header. */
function replicaPids(stdout: string): number[] {
  return [...stdout.matchAll(/^ {2}replica \d {2}http:\/\/127\.0\.0\.1:\d+ {2}pid (\d+):/gm)].map((match) => Number(match[1]))
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false
    throw error
  }
}

async function waitFor(check: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

afterEach(() => {
  // SIGKILL leaves no chance to clean up, but the replicas exit with the demo's IPC channel.
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
    const unknown = await runDemo(['--replicas', '5'])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toMatch(/Unknown option '--replicas'/)
    const garbage = await runDemo(['--grace', 'soon'])
    expect(garbage.code).toBe(2)
    expect(garbage.stderr).toMatch(/--grace must be a non-negative number/)
    const store = await runDemo(['--store', 'postgres'])
    expect(store.code).toBe(2)
    expect(store.stderr).toMatch(/--store must be memory or redis; got "postgres"/)
    const urlWithoutRedis = await runDemo(['--redis-url', 'redis://127.0.0.1:1'])
    expect(urlWithoutRedis.code).toBe(2)
    expect(urlWithoutRedis.stderr).toMatch(/--redis-url needs --store redis/)
    const notRedis = await runDemo(['--store', 'redis', '--redis-url', 'http://127.0.0.1:1'])
    expect(notRedis.code).toBe(2)
    expect(notRedis.stderr).toMatch(/--redis-url must be a redis:\/\/ or rediss:\/\/ URL/)
  })

  it('prints its usage with --help', async () => {
    const { code, stdout } = await runDemo(['--help'])
    expect(code).toBe(0)
    expect(stdout).toMatch(/--grace <duration>/)
    expect(stdout).toMatch(/--store <store>/)
    expect(stdout).toMatch(/--redis-url <url>/)
  })

  it('exits 1 naming the URL, password masked, when Redis is unreachable', async () => {
    const port = await freePort()
    const { code, stdout, stderr } = await runDemo(['--store', 'redis', '--redis-url', `redis://:hunter2@127.0.0.1:${port}`], 20_000)
    expect(code).toBe(1)
    expect(stderr).toMatch(new RegExp(`^keyrot-rotation-demo: cannot reach Redis at redis://:\\*\\*\\*@127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`, 'm'))
    expect(`${stdout}${stderr}`).not.toMatch(/hunter2/)
    expect(replicaPids(stdout)).toEqual([])
  })
})

describe('examples/rotation-demo --store redis', () => {
  let redis: RedisServer

  beforeAll(async () => {
    redis = await startRedisServer()
  }, 30_000)

  afterAll(async () => {
    await redis?.stop()
  })

  it('runs a 3 s rotation on three replicas, passes every check, prints propagation, leaves no process, key or token', async () => {
    const { code, stdout, stderr } = await runDemo(['--store', 'redis', '--redis-url', redis.url, '--grace', '3s'], 120_000)
    expect(stderr).toBe('')
    expect(code).toBe(0)
    const pids = replicaPids(stdout)
    expect(pids).toHaveLength(3)
    expect(pids.filter(isRunning)).toEqual([])
    expect(redisCli(redis.port, 'DBSIZE').trim()).toBe('0')

    // The same checks as on the in-memory store.
    expect(stdout).toMatch(/^PASS no request with a valid key failed \(n=[1-9]\d*\)$/m)
    expect(stdout).toMatch(/^PASS every request after the deadline failed with 401 KEYROT_KEY_EXPIRED \(n=[1-9]\d*\)$/m)
    expect(stdout).toMatch(/^PASS leaked key refused with KEYROT_KEY_REVOKED \(n=[1-9]\d*\), its replacement works \(n=[1-9]\d*\)$/m)
    expect(stdout).toMatch(/^PASS every success with the old key during grace carried Sunset with its deadline \(n=[1-9]\d*\)$/m)
    expect(stdout).toMatch(/^PASS zero-downtime rotation held: 4\/4 checks, \d+ requests on 3 replicas, grace 3s, [\d.]+ s$/m)
    expect(stdout).not.toMatch(/^FAIL/m)
    // Every replica answered some of the clients' requests.
    expect(stdout).toMatch(/^ {2}requests per replica: r1 [1-9]\d*, r2 [1-9]\d*, r3 [1-9]\d*$/m)

    // Propagation, per replica and overall.
    const figures = String.raw`p50 [\d.]+ ms  p99 [\d.]+ ms  max [\d.]+ ms`
    const signed = String.raw`p50 [+−][\d.]+ ms  p99 [+−][\d.]+ ms  max [+−][\d.]+ ms`
    for (const replica of ['r1', 'r2', 'r3']) {
      expect(stdout).toMatch(new RegExp(`^ {4}${replica} {3}${figures} {3}accepted after the revoke returned: \\d+$`, 'm'))
      expect(stdout).toMatch(new RegExp(`^ {4}${replica} {3}${signed} {3}accepted when sent after the deadline: 0$`, 'm'))
    }
    expect(stdout).toMatch(new RegExp(`^ {4}all {2}${figures} {3}\\(n=60\\)$`, 'm'))
    expect(stdout).toMatch(new RegExp(`^ {4}all {2}${signed} {3}\\(n=15\\)$`, 'm'))
    expect(stdout).toMatch(new RegExp(`^ {2}one poll request's round trip: ${figures} {3}\\(n=\\d+\\)$`, 'm'))
    expect(stdout).toMatch(/^ {2}skew across replicas \(latest minus earliest first 401 per deadline\): p50 [\d.]+ ms {2}p99 [\d.]+ ms {2}max [\d.]+ ms$/m)
    expect(stdout).toMatch(
      /^info propagation: revoked key refused by every replica within p50 [\d.]+ ms, p99 [\d.]+ ms, max [\d.]+ ms of the revoke \(n=60\); grace deadline skew across replicas p50 [\d.]+ ms, max [\d.]+ ms$/m,
    )
    expect(stdout).toMatch(/^cleanup: 3 replicas stopped; \d+ Redis keys under keyrot-demo:[0-9a-f]{12}: removed$/m)

    // Only the scenario's three keys are shown, masked (the probe keys never); no token anywhere.
    expect(stdout.match(/\bsk_live_[0-9A-Za-z]{16}_…/g)).toHaveLength(3)
    expect(`${stdout}\n${stderr}`.match(TOKEN_PATTERN)).toBeNull()
  }, 130_000)

  it('on SIGINT stops its replicas and removes its Redis keys, exit 130', async () => {
    const run = startDemo(['--store', 'redis', '--redis-url', redis.url, '--grace', '10s'], 60_000)
    // Interrupted during the grace period, with keys in Redis and replicas serving.
    await waitFor(() => /rotate K1 → K2/.test(run.output().stdout), 'the rotation')
    expect(Number(redisCli(redis.port, 'DBSIZE').trim())).toBeGreaterThan(0)
    run.child.kill('SIGINT')
    const { code, stdout, stderr } = await run.finished
    expect(code).toBe(130)
    expect(stderr).toMatch(/^keyrot-rotation-demo: SIGINT: stopping$/m)
    expect(stderr).toMatch(/^cleanup: 3 replicas stopped; \d+ Redis keys under keyrot-demo:[0-9a-f]{12}: removed$/m)
    const pids = replicaPids(stdout)
    expect(pids).toHaveLength(3)
    expect(pids.filter(isRunning)).toEqual([])
    expect(redisCli(redis.port, 'DBSIZE').trim()).toBe('0')
  }, 70_000)
})
