import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/**
 * Child processes of the benchmark: servers, replicas and isolated
 * measurements. Every child is tracked and killed when the run ends, fails or
 * is interrupted; every wait on a child is bounded.
 */

const running = new Set<ChildProcess>()

export function killAllChildren(): void {
  for (const child of running) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
  running.clear()
}

process.once('exit', killAllChildren)

/** A message a worker sends to its parent over IPC. */
export interface WorkerMessage {
  type: 'ready' | 'result' | 'reply' | 'error'
  data?: unknown
  message?: string
}

export interface WorkerOptions {
  /** Passed to the worker as JSON in `argv[2]`. */
  config: unknown
  env?: Record<string, string>
  execArgv?: string[]
  /** The worker must send its `ready` or `result` within this time, or it is killed. */
  timeoutMs: number
}

/** Path of a compiled worker script (`dist/workers/<name>.js`). */
export function workerPath(name: string): string {
  return fileURLToPath(new URL(`../workers/${name}.js`, import.meta.url))
}

export class Worker {
  readonly child: ChildProcess
  readonly name: string
  readonly #messages: WorkerMessage[] = []
  readonly #waiters: Array<(message: WorkerMessage) => void> = []
  #stderr = ''
  #exited: Promise<void>

  constructor(name: string, options: WorkerOptions) {
    this.name = name
    this.child = fork(workerPath(name), [JSON.stringify(options.config)], {
      env: { ...process.env, ...options.env },
      execArgv: options.execArgv ?? [],
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      serialization: 'advanced',
    })
    running.add(this.child)
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.#stderr = (this.#stderr + chunk.toString()).slice(-4000)
    })
    this.child.on('message', (message: WorkerMessage) => {
      const waiter = this.#waiters.shift()
      if (waiter) waiter(message)
      else this.#messages.push(message)
    })
    this.#exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        running.delete(this.child)
        const failure: WorkerMessage = { type: 'error', message: `worker ${name} exited (${signal ?? code}) ${this.#stderr.trim()}` }
        for (const waiter of this.#waiters.splice(0)) waiter(failure)
        resolve()
      })
    })
  }

  /** The worker's next message, within `timeoutMs`; throws on an `error` message, an exit or the timeout. */
  next<T>(timeoutMs: number, expected: WorkerMessage['type']): Promise<T> {
    const queued = this.#messages.shift()
    const settle = (message: WorkerMessage): T => {
      if (message.type === 'error') throw new Error(message.message ?? `worker ${this.name} failed`)
      if (message.type !== expected) throw new Error(`worker ${this.name} sent ${message.type}, expected ${expected}`)
      return message.data as T
    }
    if (queued) return Promise.resolve().then(() => settle(queued))
    if (this.child.exitCode !== null || this.child.signalCode !== null) {
      return Promise.reject(new Error(`worker ${this.name} exited (${this.child.signalCode ?? this.child.exitCode}) ${this.#stderr.trim()}`))
    }
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        const index = this.#waiters.indexOf(waiter)
        if (index >= 0) this.#waiters.splice(index, 1)
        this.child.kill('SIGKILL')
        reject(new Error(`worker ${this.name} sent no ${expected} within ${timeoutMs} ms`))
      }, timeoutMs)
      const waiter = (message: WorkerMessage) => {
        clearTimeout(timer)
        try {
          resolve(settle(message))
        } catch (error) {
          reject(error)
        }
      }
      this.#waiters.push(waiter)
    })
  }

  /** Sends a question to a serving worker and waits for its `reply`. */
  ask<T>(question: unknown, timeoutMs = 10_000): Promise<T> {
    this.child.send({ question })
    return this.next<T>(timeoutMs, 'reply')
  }

  /** Stops the worker (SIGTERM, then SIGKILL after 3 s) and waits for its exit. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM')
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 3_000)
      await this.#exited
      clearTimeout(timer)
    }
  }
}

/** Runs a measuring worker to its single `result` and waits for it to exit. */
export async function runWorker<T>(name: string, options: WorkerOptions): Promise<T> {
  const worker = new Worker(name, options)
  try {
    return await worker.next<T>(options.timeoutMs, 'result')
  } finally {
    await worker.stop()
  }
}

/** Starts a serving worker and waits for its `ready` message. */
export async function startWorker<T>(name: string, options: WorkerOptions): Promise<{ worker: Worker; ready: T }> {
  const worker = new Worker(name, options)
  try {
    return { worker, ready: await worker.next<T>(options.timeoutMs, 'ready') }
  } catch (error) {
    await worker.stop()
    throw error
  }
}
