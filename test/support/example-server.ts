import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'

/** An example server started as users run it, with what it printed so far. */
export interface RunningExample {
  /** `http://127.0.0.1:<port>` from its banner. */
  url: string
  /** The demo key from its banner. */
  token: string
  /** Everything it wrote to stdout so far (kept until it exits). */
  stdout(): string
  /** Sends SIGTERM and waits for it to exit. Idempotent. */
  stop(): Promise<void>
}

export interface StartExampleOptions {
  /** The stream its banner (`... on http://127.0.0.1:<port>` and `demo key: <token>`) is printed on. */
  banner: 'stdout' | 'stderr'
  /** Default `server.mjs`. */
  script?: string
  /** Default 10 s. */
  startTimeoutMs?: number
}

/**
 * Runs `node <script>` in the example's folder with `PORT=0` (on the built
 * packages, as a user would) and resolves once its banner names the address
 * and the demo key. A server that exits or stays silent fails with what it
 * wrote to stderr, and is stopped.
 *
 * @example
 * const example = await startExample(new URL('.', import.meta.url), { banner: 'stdout' })
 * afterAll(() => example.stop())
 */
export async function startExample(folder: URL, options: StartExampleOptions): Promise<RunningExample> {
  const { banner, script = 'server.mjs', startTimeoutMs = 10_000 } = options
  const child = spawn(process.execPath, [script], {
    cwd: fileURLToPath(folder),
    env: { ...process.env, PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const output = { stdout: '', stderr: '' }
  child.stdout.on('data', (chunk: Buffer) => (output.stdout += chunk))
  child.stderr.on('data', (chunk: Buffer) => (output.stderr += chunk))
  const stop = () => stopChild(child)
  let timer: NodeJS.Timeout | undefined
  try {
    const { url, token } = await new Promise<{ url: string; token: string }>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`the example did not start in ${startTimeoutMs} ms: ${output.stderr}`)), startTimeoutMs)
      child.once('exit', (code) => reject(new Error(`the example exited with ${code}: ${output.stderr}`)))
      child[banner].on('data', () => {
        const address = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(output[banner])
        const key = /demo key: (\S+)/.exec(output[banner])
        if (address && key) resolve({ url: address[1] as string, token: key[1] as string })
      })
    })
    return { url, token, stdout: () => output.stdout, stop }
  } catch (error) {
    await stop()
    throw error
  } finally {
    clearTimeout(timer)
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  await exited
}
