import { KeyrotError, InvalidInputError } from '@keyrot/core'

/**
 * Exit codes of `keyrot`, documented in docs/cli.md:
 * - `0` the command did what was asked;
 * - `1` it failed: unknown key, key already rotated or revoked, Redis
 *   unreachable, confirmation declined;
 * - `2` the command line is wrong: unknown command or option, missing or
 *   invalid value, no store configured, a destructive command without `--yes`
 *   when no terminal can confirm it.
 */
export const EXIT_OK = 0
export const EXIT_ERROR = 1
export const EXIT_USAGE = 2

/** An error the CLI reports in one line and ends with `exitCode`. */
export class CliError extends Error {
  readonly exitCode: number
  /** Stable code for `--json` output (`KEYROT_*` or `KEYROT_CLI_*`). */
  readonly code: string

  constructor(message: string, options: { exitCode?: number; code?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'CliError'
    this.exitCode = options.exitCode ?? EXIT_ERROR
    this.code = options.code ?? 'KEYROT_CLI_ERROR'
  }
}

/** A problem with the command line itself: exit code 2. */
export class UsageError extends CliError {
  constructor(message: string, code = 'KEYROT_CLI_USAGE') {
    super(message, { exitCode: EXIT_USAGE, code })
    this.name = 'UsageError'
  }
}

/** The exit code and the one-line report for anything a command threw. */
export function describeFailure(error: unknown): { exitCode: number; code: string; message: string } {
  if (error instanceof CliError) return { exitCode: error.exitCode, code: error.code, message: error.message }
  // Invalid values reach the keyring's checks: the command line was wrong.
  if (error instanceof InvalidInputError) return { exitCode: EXIT_USAGE, code: error.code, message: error.message }
  if (error instanceof KeyrotError) return { exitCode: EXIT_ERROR, code: error.code, message: error.message }
  const message = error instanceof Error ? error.message : String(error)
  return { exitCode: EXIT_ERROR, code: 'KEYROT_CLI_ERROR', message }
}
