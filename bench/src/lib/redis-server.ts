import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * The benchmark's own `redis-server`: a free loopback port, no persistence
 * (`--save "" --appendonly no`), a temporary directory, killed at the end.
 * It never touches a Redis the machine already runs.
 */
export interface BenchRedis {
  port: number
  url: string
  version: string
  /** Runs `redis-cli` against this server and returns its output. */
  cli(...args: string[]): string
  stop(): Promise<void>
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no free port'))))
    })
  })
}

function cli(port: number, args: string[]): string {
  const result = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { encoding: 'utf8', timeout: 60_000 })
  if (result.error) throw result.error
  if (result.status !== 0) throw new Error(`redis-cli ${args.join(' ')} failed: ${result.stderr || result.stdout}`)
  return result.stdout
}

export async function startRedis(): Promise<BenchRedis> {
  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' })
  if (probe.error || probe.status !== 0) throw new Error('redis-server is required by the benchmarks (Debian/Ubuntu: apt-get install redis-server)')
  const version = /v=(\S+)/.exec(probe.stdout)?.[1] ?? 'unknown'
  const directory = mkdtempSync(join(tmpdir(), 'keyrot-bench-redis-'))
  const port = await freePort()
  const child: ChildProcess = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', directory, '--protected-mode', 'no'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    rmSync(directory, { recursive: true, force: true })
  }
  process.once('exit', kill)
  const deadline = Date.now() + 15_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited: ${stderr}`)
    try {
      if (cli(port, ['PING']).trim() === 'PONG') break
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      kill()
      throw new Error('redis-server did not answer PING within 15 s')
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    version,
    cli: (...args) => cli(port, args),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        await new Promise<void>((resolve) => {
          child.once('exit', () => resolve())
          child.kill('SIGTERM')
          setTimeout(kill, 3_000).unref()
        })
      }
      process.removeListener('exit', kill)
      rmSync(directory, { recursive: true, force: true })
    },
  }
}
