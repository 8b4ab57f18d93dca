import { spawn, type ChildProcess } from 'node:child_process'
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { assertRedisInstalled, freePort, redisCli } from '../helpers/redis-server.js'

/**
 * A `redis-server` a fault test can kill, freeze and restart on the same
 * port (test/helpers/redis-server.ts starts servers that only stop).
 * `persistent`: an append-only file fsynced on every write, so a SIGKILL
 * loses nothing that was acknowledged (as a key store's Redis would be
 * configured); otherwise no persistence. `rdbcompression no` so a dump of it
 * can be scanned for plaintext. Killed on process exit.
 */

const children = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of children) {
    child.kill('SIGCONT')
    child.kill('SIGKILL')
  }
})

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

export class ControlledRedis {
  readonly port: number
  readonly url: string
  readonly #directory: string
  readonly #persistence: string[]
  #child: ChildProcess | null = null

  private constructor(port: number, directory: string, persistent: boolean) {
    this.port = port
    this.url = `redis://127.0.0.1:${port}`
    this.#directory = directory
    this.#persistence = persistent ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']
  }

  static async start(options: { persistent?: boolean } = {}): Promise<ControlledRedis> {
    assertRedisInstalled()
    const redis = new ControlledRedis(await freePort(), mkdtempSync(join(tmpdir(), 'keyrot-redis-fault-')), options.persistent ?? false)
    await redis.restart()
    return redis
  }

  get running(): boolean {
    return this.#child !== null && this.#child.exitCode === null && this.#child.signalCode === null
  }

  /** Starts the server (again) on its port and waits for PING. */
  async restart(): Promise<void> {
    if (this.running) throw new Error('redis-server is already running')
    const child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', ...this.#persistence, '--rdbcompression', 'no', '--dir', this.#directory, '--protected-mode', 'no'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    )
    let stderr = ''
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString()
    })
    children.add(child)
    child.once('exit', () => children.delete(child))
    this.#child = child
    const deadline = Date.now() + 15_000
    for (;;) {
      if (child.exitCode !== null) throw new Error(`redis-server on port ${this.port} exited: ${stderr}`)
      try {
        if (redisCli(this.port, 'PING').trim() === 'PONG') return
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error(`redis-server on port ${this.port} did not answer PING within 15 s`)
      await sleep(25)
    }
  }

  /** SIGKILL: every connection drops at once, nothing is saved. */
  async kill(): Promise<void> {
    const child = this.#child
    if (!child || !this.running) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGCONT')
    child.kill('SIGKILL')
    await exited
  }

  /** SIGSTOP: connections stay open and nothing answers, like a server stuck in a long command. */
  freeze(): void {
    this.#child?.kill('SIGSTOP')
  }

  thaw(): void {
    this.#child?.kill('SIGCONT')
  }

  cli(...args: string[]): string {
    return redisCli(this.port, ...args)
  }

  /** SAVE now and keep a copy of the RDB file, for {@link restoreSnapshot}. */
  snapshot(): void {
    if (this.cli('SAVE').trim() !== 'OK') throw new Error('redis-server refused SAVE')
    copyFileSync(join(this.#directory, 'dump.rdb'), join(this.#directory, 'snapshot.rdb'))
  }

  /** While stopped: the next start loads the copy kept by {@link snapshot} (a rollback). */
  restoreSnapshot(): void {
    if (this.running) throw new Error('stop redis-server before restoring a snapshot')
    copyFileSync(join(this.#directory, 'snapshot.rdb'), join(this.#directory, 'dump.rdb'))
  }

  /** While stopped: the next start has no data at all (a restart without persistence). */
  forgetData(): void {
    if (this.running) throw new Error('stop redis-server before dropping its data')
    rmSync(join(this.#directory, 'dump.rdb'), { force: true })
    rmSync(join(this.#directory, 'appendonlydir'), { recursive: true, force: true })
  }

  async stop(): Promise<void> {
    await this.kill()
    rmSync(this.#directory, { recursive: true, force: true })
  }
}
