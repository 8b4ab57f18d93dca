import { PassThrough } from 'node:stream'
import { describe, expect, it } from 'vitest'
import type { CliIo } from './io.js'
import { runCli } from './program.js'

/** Runs keyrot in-process with captured output; no store is ever reached (every case fails before). */
async function keyrot(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = ''
  let stderr = ''
  const io: CliIo = {
    stdout: { write: (chunk: string) => (stdout += chunk) },
    stderr: { write: (chunk: string) => (stderr += chunk) },
    stdin: new PassThrough(),
    env: {},
    interactive: false,
    now: () => Date.UTC(2030, 0, 1),
  }
  const code = await runCli(args, io)
  return { code, stdout, stderr }
}

// docs/cli.md: with --json, a failure leaves stdout empty and puts
// {"error":{"code":"KEYROT_...","message":"..."}} on stderr. That holds for the
// option parser's refusals and unknown commands too, not only the keyring's.
describe('every failure under --json is the documented JSON', () => {
  it.each([
    ['a duration that is not one', ['rotate', 'k1', '--grace', 'banana', '--json'], 'KEYROT_CLI_USAGE', /--grace/],
    ['an expiry that is not one', ['create', '--tenant', 'acme', '--name', 'x', '--expires', 'soon', '--json'], 'KEYROT_CLI_USAGE', /--expires/],
    ['a state that does not exist', ['list', '--state', 'bogus', '--json'], 'KEYROT_CLI_USAGE', /bogus/],
    ['an unknown option', ['list', '--colour', '--json'], 'KEYROT_CLI_USAGE', /--colour/],
    ['a missing required option', ['revoke', 'k1', '--json'], 'KEYROT_CLI_USAGE', /--reason/],
    ['an unknown command', ['rotat', 'k1', '--json'], 'KEYROT_CLI_UNKNOWN_COMMAND', /rotat/],
  ])('%s', async (_name, args, code, message) => {
    const result = await keyrot(...args)
    expect(result.code).toBe(2)
    expect(result.stdout).toBe('')
    expect(result.stderr.endsWith('\n')).toBe(true)
    expect(result.stderr.trim().split('\n')).toHaveLength(1)
    const body = JSON.parse(result.stderr) as { error: { code: string; message: string } }
    expect(Object.keys(body)).toEqual(['error'])
    expect(Object.keys(body.error)).toEqual(['code', 'message'])
    expect(body.error.code).toBe(code)
    expect(body.error.message).toMatch(message)
    expect(body.error.message).not.toMatch(/^error:/)
  })

  it('and without --json the same mistake stays plain text for people', async () => {
    const result = await keyrot('rotate', 'k1', '--grace', 'banana')
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/^error: option '--grace <duration>' argument 'banana' is invalid/)
  })
})
