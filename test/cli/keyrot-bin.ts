import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * Runs the built `keyrot` executable (packages/cli/dist/bin.js) as a user
 * would, and builds it first when it is missing or older than its sources.
 */

export const root = fileURLToPath(new URL('../..', import.meta.url))
export const bin = join(root, 'packages/cli/dist/bin.js')

function newestSource(dir: string): number {
  let newest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    newest = Math.max(newest, entry.isDirectory() ? newestSource(path) : statSync(path).mtimeMs)
  }
  return newest
}

function stale(pkg: string, entry: string): boolean {
  const built = join(root, 'packages', pkg, 'dist', entry)
  return !existsSync(built) || statSync(built).mtimeMs < newestSource(join(root, 'packages', pkg, 'src'))
}

function build(pkg: string): void {
  const result = spawnSync('npx', ['-y', 'pnpm@12.4.2', '--filter', `@keyrot/${pkg}`, 'run', 'build'], {
    cwd: root,
    encoding: 'utf8',
    timeout: 180_000,
  })
  if (result.status !== 0) throw new Error(`building @keyrot/${pkg} failed (exit ${result.status ?? result.signal}):\n${result.stdout}\n${result.stderr}`)
}

/** Builds the packages the binary imports when their dist is missing, and the CLI when stale. */
export function ensureBuilt(): void {
  for (const pkg of ['core', 'express', 'redis']) if (!existsSync(join(root, 'packages', pkg, 'dist', 'index.js'))) build(pkg)
  if (stale('cli', 'bin.js')) build('cli')
}

/** Builds examples/rotation-demo when its entry is missing (`keyrot demo` runs it). */
export function ensureDemoBuilt(): void {
  if (existsSync(join(root, 'examples/rotation-demo/dist/index.js'))) return
  const result = spawnSync('npx', ['-y', 'pnpm@12.4.2', '--filter', './examples/rotation-demo', 'run', 'build'], { cwd: root, encoding: 'utf8', timeout: 180_000 })
  if (result.status !== 0) throw new Error(`building examples/rotation-demo failed (exit ${result.status ?? result.signal}):\n${result.stdout}\n${result.stderr}`)
}

export interface RunResult {
  code: number | null
  stdout: string
  stderr: string
}

const children = new Set<ChildProcess>()

/** Kills every process these helpers started and that is still running. */
export function killChildren(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  children.clear()
}

/** The environment of a child: this one without REDIS_URL unless given. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra }
  if (!('REDIS_URL' in extra)) delete env['REDIS_URL']
  return env
}

/** Runs `keyrot <args>` to completion, with stdin not a terminal. */
export function runKeyrot(args: string[], options: { env?: Record<string, string>; timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  const timeoutMs = options.timeoutMs ?? 30_000
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: root, env: childEnv(options.env), stdio: ['pipe', 'pipe', 'pipe'] })
    children.add(child)
    child.stdin.end(options.input)
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`keyrot ${args.join(' ')} did not finish within ${timeoutMs} ms\n${stdout}\n${stderr}`))
    }, timeoutMs)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      children.delete(child)
      resolve({ code, stdout, stderr })
    })
  })
}

export interface ServeProcess {
  child: ChildProcess
  url: string
  /** `http://host:port/metrics` of the separate metrics listener, or `null` when it is off. */
  metricsUrl: string | null
  /** Everything printed on stdout so far (JSON log lines). */
  output(): string
  /** Resolves with the exit code once the process has ended. */
  exited: Promise<number | null>
}

/**
 * Starts `keyrot serve --port 0` and resolves once it logs its URL. The
 * metrics listener takes a free port too unless `args` set `--metrics-listen`
 * or `env` sets KEYROT_METRICS_LISTEN.
 */
export function startServe(args: string[], options: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<ServeProcess> {
  const timeoutMs = options.timeoutMs ?? 30_000
  const metrics = args.includes('--metrics-listen') || options.env?.['KEYROT_METRICS_LISTEN'] !== undefined ? [] : ['--metrics-listen', '127.0.0.1:0']
  const child = spawn(process.execPath, [bin, 'serve', '--port', '0', ...metrics, ...args], { cwd: root, env: childEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const exited = new Promise<number | null>((resolve) =>
    child.on('close', (code) => {
      children.delete(child)
      resolve(code)
    }),
  )
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`keyrot serve did not start within ${timeoutMs} ms\n${stdout}\n${stderr}`))
    }, timeoutMs)
    const onData = () => {
      const match = /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(stdout)
      if (!match) return
      clearTimeout(timer)
      child.stdout!.off('data', onData)
      const metricsUrl = /"event":"metrics\.listening","url":"(http:\/\/[^"]+)"/.exec(stdout)?.[1] ?? null
      resolve({ child, url: match[1] as string, metricsUrl, output: () => stdout + stderr, exited })
    }
    child.stdout!.on('data', onData)
    void exited.then((code) => {
      clearTimeout(timer)
      reject(new Error(`keyrot serve exited (${code}) before listening\n${stdout}\n${stderr}`))
    })
  })
}
