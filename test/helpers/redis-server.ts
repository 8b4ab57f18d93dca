import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * Starts real `redis-server` processes for tests, on free loopback ports in
 * temporary directories, and stops them (and removes the directories) when
 * asked and on process exit. No test is ever skipped for want of Redis: a
 * missing `redis-server` fails with a message saying how to install it.
 */

const children = new Set<ChildProcess>()
const directories = new Set<string>()

function killAll(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
  children.clear()
  for (const directory of directories) rmSync(directory, { recursive: true, force: true })
  directories.clear()
}
process.once('exit', killAll)

/** Throws a clear error when the Redis binaries are missing (in CI and locally alike). */
export function assertRedisInstalled(): void {
  for (const binary of ['redis-server', 'redis-cli']) {
    const probe = spawnSync(binary, ['--version'], { encoding: 'utf8' })
    if (probe.error || probe.status !== 0) {
      const where = process.env.CI === 'true' ? 'CI must install it (.ci/run)' : 'install it (Debian/Ubuntu: apt-get install redis-server)'
      throw new Error(`${binary} is required by the Redis tests and was not found: ${where}.`)
    }
  }
}

/** A free TCP port on 127.0.0.1 (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))))
    })
  })
}

/** Runs `redis-cli` and returns its output; throws on failure. */
export function redisCli(port: number, ...args: string[]): string {
  const result = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { encoding: 'utf8', timeout: 30_000 })
  if (result.error) throw result.error
  if (result.status !== 0) throw new Error(`redis-cli ${args.join(' ')} failed: ${result.stderr || result.stdout}`)
  return result.stdout
}

async function waitFor(check: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    try {
      if (check()) return
    } catch {
      // not yet
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`timed out waiting for ${what}`)
}

export interface RedisServer {
  port: number
  /** `redis://127.0.0.1:<port>` */
  url: string
  /** The server process (to pause it with SIGSTOP in failure tests). */
  process: ChildProcess
  stop(): Promise<void>
}

async function spawnServer(port: number, directory: string, extra: string[]): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', directory, '--protected-mode', 'no', ...extra],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  children.add(child)
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
  })
  child.once('exit', () => children.delete(child))
  await waitFor(() => {
    if (child.exitCode !== null) throw new Error(`redis-server on port ${port} exited: ${stderr}`)
    return redisCli(port, 'PING').trim() === 'PONG'
  }, `redis-server on port ${port}`)
  return child
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    child.once('exit', () => resolve())
    child.kill('SIGTERM')
    setTimeout(() => child.kill('SIGKILL'), 3_000).unref()
  })
}

/**
 * Starts one standalone `redis-server` on a free port. `replicaOf`: the
 * port of a primary on 127.0.0.1 to replicate (resolves once the link is up).
 * `args`: more configuration directives (`['--appendonly', 'yes']`).
 */
export async function startRedisServer(options: { replicaOf?: number; args?: string[] } = {}): Promise<RedisServer> {
  assertRedisInstalled()
  const directory = mkdtempSync(join(tmpdir(), 'keyrot-redis-'))
  directories.add(directory)
  const port = await freePort()
  const extra = [...(options.replicaOf === undefined ? [] : ['--replicaof', '127.0.0.1', String(options.replicaOf)]), ...(options.args ?? [])]
  const child = await spawnServer(port, directory, extra)
  if (options.replicaOf !== undefined) {
    await waitFor(() => redisCli(port, 'INFO', 'replication').includes('master_link_status:up'), `replica on ${port} linked`)
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    process: child,
    async stop() {
      if (child.signalCode === null && child.exitCode === null) child.kill('SIGCONT')
      await stopChild(child)
      rmSync(directory, { recursive: true, force: true })
      directories.delete(directory)
    },
  }
}

export interface RedisCluster {
  /** Ports of the masters. */
  ports: number[]
  nodes: { host: string; port: number }[]
  stop(): Promise<void>
}

/** Starts a cluster of `masters` masters and no replicas, and waits for `cluster_state:ok`. */
export async function startRedisCluster(masters = 3): Promise<RedisCluster> {
  assertRedisInstalled()
  const started: { child: ChildProcess; directory: string; port: number }[] = []
  try {
    for (let i = 0; i < masters; i++) {
      const directory = mkdtempSync(join(tmpdir(), 'keyrot-redis-cluster-'))
      directories.add(directory)
      const port = await freePort()
      const child = await spawnServer(port, directory, ['--cluster-enabled', 'yes', '--cluster-config-file', join(directory, 'nodes.conf'), '--cluster-node-timeout', '2000'])
      started.push({ child, directory, port })
    }
    const ports = started.map((s) => s.port)
    redisCli(ports[0] as number, '--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes')
    for (const port of ports) {
      await waitFor(() => redisCli(port, 'CLUSTER', 'INFO').includes('cluster_state:ok'), `cluster_state:ok on ${port}`, 30_000)
    }
    return {
      ports,
      nodes: ports.map((port) => ({ host: '127.0.0.1', port })),
      async stop() {
        await Promise.all(started.map((s) => stopChild(s.child)))
        for (const s of started) {
          rmSync(s.directory, { recursive: true, force: true })
          directories.delete(s.directory)
        }
      },
    }
  } catch (error) {
    await Promise.all(started.map((s) => stopChild(s.child)))
    throw error
  }
}
