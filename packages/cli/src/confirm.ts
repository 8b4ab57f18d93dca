import { createInterface } from 'node:readline/promises'
import { CliError, UsageError } from './exit-codes.js'
import type { CliIo } from './io.js'

/**
 * Asks before a destructive command. `--yes` skips the question; without a
 * terminal to ask on, the command refuses (exit 2) rather than guess. The
 * prompt goes to stderr so stdout keeps only the command's result.
 */
export async function confirm(io: CliIo, command: string, question: string, yes: boolean | undefined): Promise<void> {
  if (yes) return
  if (!io.interactive) {
    throw new UsageError(
      `keyrot ${command} changes a key and no terminal is attached to confirm it: nothing was changed. Pass --yes to run it without confirmation.`,
      'KEYROT_CLI_NEEDS_CONFIRMATION',
    )
  }
  const prompt = createInterface({ input: io.stdin, output: io.stderr as NodeJS.WritableStream, terminal: true })
  try {
    const answer = await prompt.question(`${question} [y/N] `)
    if (!/^y(es)?$/i.test(answer.trim())) throw new CliError('Aborted: nothing was changed.', { code: 'KEYROT_CLI_ABORTED' })
  } finally {
    prompt.close()
  }
}
