import { readFileSync } from 'node:fs'
import { formatDuration } from '@keyrot/core'
import { Command, CommanderError } from 'commander'
import { registerCreate } from './commands/create.js'
import { registerCredits } from './commands/credits.js'
import { registerImport } from './commands/import.js'
import { registerUpdate } from './commands/update.js'
import { registerDemo } from './commands/demo.js'
import { registerInspect } from './commands/inspect.js'
import { registerEmergencyRotate, registerRevoke, registerRotate } from './commands/lifecycle.js'
import { registerExpiring, registerList } from './commands/list.js'
import { registerScan } from './commands/scan.js'
import { registerPolicy, registerReport } from './commands/policy.js'
import { registerServe } from './commands/serve.js'
import { registerRewrapSecrets } from './commands/signing.js'
import { registerStore } from './commands/store-reset.js'
import { describeFailure, EXIT_OK, EXIT_USAGE } from './exit-codes.js'
import { processIo, type CliIo } from './io.js'
import { parseDurationArg } from './parse.js'

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version
  } catch {
    return 'unknown'
  }
}

/** The `keyrot` command tree. Commands write through `io`, never to the process directly. */
export function createProgram(io: CliIo, options: { json?: boolean } = {}): Command {
  // With --json, commander's own error text (and the help after it) is held
  // back: runCli reports the failure as the documented JSON instead.
  const writeErr = options.json ? () => undefined : (text: string) => io.stderr.write(text)
  const program = new Command('keyrot')
    .description('Create, rotate, revoke and inspect keyrot API keys; run the reference server.')
    .version(version(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help for a command')
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr,
    })
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .addHelpCommand(false)
  program.addHelpText(
    'after',
    `
Store: commands that read or change keys need the shared store: --redis <url> or REDIS_URL.
Exit codes: 0 ok, 1 error (unknown key, Redis unreachable...), 2 usage (bad arguments, no store, no --yes without a terminal).`,
  )
  registerCreate(program, io)
  registerList(program, io)
  registerInspect(program, io)
  registerRotate(program, io)
  registerRevoke(program, io)
  registerEmergencyRotate(program, io)
  registerExpiring(program, io)
  registerDemo(program, io)
  registerServe(program, io)
  registerRewrapSecrets(program, io)
  registerStore(program, io)
  registerScan(program, io)
  registerCredits(program, io)
  registerPolicy(program, io)
  registerReport(program, io)
  registerUpdate(program, io)
  registerImport(program, io)
  showDurationDefaultsAsDurations(program)
  return program
}

/**
 * `--shutdown-timeout <duration> ... (default: 10000)` reads as a count:
 * every duration option's numeric default is shown as a duration ("10s").
 */
function showDurationDefaultsAsDurations(command: Command): void {
  for (const option of command.options) {
    const parser = (option as { parseArg?: unknown }).parseArg
    if (parser === parseDurationArg && typeof option.defaultValue === 'number' && option.defaultValueDescription === undefined) {
      option.defaultValueDescription = formatDuration(option.defaultValue)
    }
  }
  for (const sub of command.commands) showDurationDefaultsAsDurations(sub)
}

/**
 * Runs `keyrot` with `args` (without `node` and the script) and resolves to
 * its exit code. Never calls `process.exit`.
 */
export async function runCli(args: readonly string[], io: CliIo = processIo()): Promise<number> {
  const json = args.includes('--json')
  const program = createProgram(io, { json })
  try {
    await program.parseAsync([...args], { from: 'user' })
    return EXIT_OK
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.exitCode === 0) return EXIT_OK
      // Without --json, commander has printed the message (and the help) already.
      if (json) io.stderr.write(`${JSON.stringify({ error: commanderFailure(error) })}\n`)
      return EXIT_USAGE
    }
    const failure = describeFailure(error)
    if (json) {
      io.stderr.write(`${JSON.stringify({ error: { code: failure.code, message: failure.message } })}\n`)
    } else {
      io.stderr.write(`keyrot: ${failure.message}\n`)
    }
    return failure.exitCode
  }
}

/** A command-line error of commander's, as the `--json` error document: `KEYROT_CLI_UNKNOWN_COMMAND` or `KEYROT_CLI_USAGE`. */
function commanderFailure(error: CommanderError): { code: string; message: string } {
  const code = error.code === 'commander.unknownCommand' ? 'KEYROT_CLI_UNKNOWN_COMMAND' : 'KEYROT_CLI_USAGE'
  return { code, message: error.message.replace(/^error: /, '') }
}
