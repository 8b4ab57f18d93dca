import { parseArgs } from 'node:util'
import { formatDuration, parseDuration } from '@keyrot/core'
import { checkRotation } from './check.js'
import { createTimelinePrinter, printClients, printVerdict } from './report.js'
import { runRotationScenario } from './scenario.js'
import { startMemoryTarget } from './server.js'

const USAGE = `Usage: keyrot-rotation-demo [--grace <duration>] [--quiet]

Runs a key rotation for real over HTTP on a loopback port: a key in use, a
rotation with a grace period, five clients moving to the new key on their own
schedules, then an emergency rotation of a leaked key. Prints the timeline and
checks what zero-downtime rotation promises. Exits 0 only if every check passed.

Options:
  --grace <duration>  grace period of the rotation, e.g. 3s, 10s, 1m (default 10s, at least 1s);
                      the demo takes about 1.2 × grace plus a second or two
  --quiet             print a client's request only when its outcome changes
  -h, --help          show this help

Exit codes: 0 every check passed, 1 a check failed or the demo broke, 2 bad usage.
`

const MIN_GRACE_MS = 1000

function usageError(message: string): never {
  process.stderr.write(`keyrot-rotation-demo: ${message}\nRun with --help for usage.\n`)
  process.exit(2)
}

function parseCli(argv: string[]): { gracePeriodMs: number; quiet: boolean } {
  let values
  try {
    ;({ values } = parseArgs({
      args: argv,
      options: {
        grace: { type: 'string', default: '10s' },
        quiet: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }))
  } catch (error) {
    usageError((error as Error).message)
  }
  if (values.help) {
    process.stdout.write(USAGE)
    process.exit(0)
  }
  let gracePeriodMs: number
  try {
    gracePeriodMs = parseDuration(values.grace, '--grace')
  } catch (error) {
    usageError((error as Error).message)
  }
  if (gracePeriodMs < MIN_GRACE_MS) usageError(`--grace must be at least ${formatDuration(MIN_GRACE_MS)}: the clients need time to move; got ${values.grace}`)
  return { gracePeriodMs, quiet: values.quiet }
}

async function main(): Promise<number> {
  const { gracePeriodMs, quiet } = parseCli(process.argv.slice(2))
  const write = (line: string) => process.stdout.write(`${line}\n`)
  const target = await startMemoryTarget({ gracePeriodMs })
  write(`keyrot rotation demo: ${target.description} on ${target.baseUrls.join(', ')}, Argon2id, verification cache on`)
  write(`grace period ${formatDuration(gracePeriodMs)}; tokens are never printed, only key ids`)
  printClients(write)
  write('')
  let result
  try {
    result = await runRotationScenario({
      baseUrls: target.baseUrls,
      admin: target.admin,
      gracePeriodMs,
      onEvent: createTimelinePrinter({ write, quiet }),
    })
  } finally {
    await target.close()
  }
  const verdict = checkRotation({ keys: result.keys, requests: result.requests, origin: result.startedAt })
  printVerdict(write, result, verdict, gracePeriodMs)
  return verdict.pass ? 0 : 1
}

main().then(
  (code) => {
    process.exitCode = code
    // Everything is closed; should a handle linger, it must not hold the exit.
    setTimeout(() => process.exit(code), 2000).unref()
  },
  (error: unknown) => {
    process.stderr.write(`FAIL the demo stopped: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
    process.exit(1)
  },
)
