/** Where a command reads and writes: the process by default, fakes in unit tests. */
export interface CliIo {
  stdout: { write(chunk: string): unknown }
  stderr: { write(chunk: string): unknown }
  stdin: NodeJS.ReadableStream
  env: Record<string, string | undefined>
  /** Whether a person can answer a prompt: stdin and stderr are terminals. */
  interactive: boolean
  /** Epoch ms, for relative times. */
  now(): number
}

export function processIo(): CliIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    interactive: Boolean(process.stdin.isTTY && process.stderr.isTTY),
    now: () => Date.now(),
  }
}
