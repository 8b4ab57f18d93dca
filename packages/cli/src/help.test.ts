import { PassThrough } from 'node:stream'
import { expect, it } from 'vitest'
import type { CliIo } from './io.js'
import { runCli } from './program.js'

async function help(...args: string[]): Promise<string> {
  let stdout = ''
  const io: CliIo = {
    stdout: { write: (chunk: string) => (stdout += chunk) },
    stderr: { write: () => true },
    stdin: new PassThrough(),
    env: {},
    interactive: false,
    now: () => 0,
  }
  expect(await runCli([...args, '--help'], io)).toBe(0)
  return stdout
}

it('shows the numeric defaults of duration options as durations', async () => {
  const text = await help('serve')
  expect(text).toMatch(/--shutdown-timeout <duration>[\s\S]*?\(default: 10s\)/)
  // No duration option anywhere shows a bare millisecond default.
  for (const command of ['serve', 'rotate', 'expiring', 'create', 'demo']) {
    expect(await help(command)).not.toMatch(/<duration>[^\n]*\(default: \d+\)/)
  }
})
