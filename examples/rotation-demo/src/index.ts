import { parseArgs } from 'node:util'
import { formatDuration, parseDuration } from '@keyrot/core'
import { checkRotation } from './check.js'
import { measurePropagation, type PropagationResult } from './propagation.js'
import { checkRedisUrl, DEFAULT_REDIS_URL, RedisUnreachableError, startRedisTarget } from './redis-target.js'
import { createTimelinePrinter, printClients, printVerdict } from './report.js'
import { runRotationScenario } from './scenario.js'
import { startMemoryTarget, type DemoTarget } from './server.js'

const USAGE = `Usage: keyrot-rotation-demo [--grace <duration>] [--store memory|redis] [--redis-url <url>] [--quiet]

Runs a key rotation for real over HTTP on loopback ports: a key in use, a
rotation with a grace period, five clients moving to the new key on their own
schedules, then an emergency rotation of a leaked key. Prints the timeline and
checks what zero-downtime rotation promises. Exits 0 only if every check passed.

With --store redis, three replicas of the API run as separate processes, each
with its own keyring, RedisStore, cache and invalidation subscriber; the demo
process is the operator (its own keyring on Redis) and spreads the clients'
requests over the replicas. The same checks run, except that requests sent
within 50 ms after the emergency rotation are not judged (other replicas hear
of it over pub/sub); then the demo measures how fast a revocation and a grace
deadline reach every replica (20 revocations, 5 deadlines: about 10 s more).
Everything it writes to Redis is under its own key prefix, removed at the end.

Options:
  --grace <duration>  grace period of the rotation, e.g. 3s, 10s, 1m (default 10s, at least 1s);
                      the demo takes about 1.2 × grace plus a second or two
  --store <store>     memory (default): one server, in-memory store;
                      redis: three replicas on one Redis
  --redis-url <url>   Redis for --store redis (default: $REDIS_URL, else ${DEFAULT_REDIS_URL})
  --quiet             print a client's request only when its outcome changes
  -h, --help          show this help

Exit codes: 0 every check passed, 1 a check failed, Redis was unreachable or
the demo broke, 2 bad usage, 130 on SIGINT and 143 on SIGTERM (the replicas
are stopped and the Redis keys removed first).
`

const MIN_GRACE_MS = 1000

interface DemoOptions {
  gracePeriodMs: number
  quiet: boolean
  store: 'memory' | 'redis'
  redisUrl: string
}

function usageError(message: string): never {
  process.stderr.write(`keyrot-rotation-demo: ${message}\nRun with --help for usage.\n`)
  process.exit(2)
}

function parseCli(argv: string[]): DemoOptions {
  let values
  try {
    ;({ values } = parseArgs({
      args: argv,
      options: {
        grace: { type: 'string', default: '10s' },
        store: { type: 'string', default: 'memory' },
        'redis-url': { type: 'string' },
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
  const store = values.store
  if (store !== 'memory' && store !== 'redis') usageError(`--store must be memory or redis; got ${JSON.stringify(store)}`)
  if (store === 'memory' && values['redis-url'] !== undefined) usageError('--redis-url needs --store redis')
  const redisUrl = values['redis-url'] ?? (process.env.REDIS_URL || DEFAULT_REDIS_URL)
  if (store === 'redis') {
    try {
      checkRedisUrl(redisUrl)
    } catch (error) {
      usageError((error as Error).message)
    }
  }
  return { gracePeriodMs, quiet: values.quiet, store, redisUrl }
}

async function main(): Promise<number> {
  const options = parseCli(process.argv.slice(2))
  const { gracePeriodMs, quiet } = options
  const write = (line: string) => process.stdout.write(`${line}\n`)
  const warn = (line: string) => process.stderr.write(`${line}\n`)

  // Replicas started before a signal exit with this process (they watch their IPC channel).
  let closeTarget: () => Promise<string | null> = async () => null
  const stopOn = (signal: NodeJS.Signals, code: number) =>
    process.once(signal, () => {
      warn(`keyrot-rotation-demo: ${signal}: stopping`)
      setTimeout(() => process.exit(code), 10_000).unref()
      closeTarget().then(
        (line) => {
          if (line) warn(line)
          process.exit(code)
        },
        (error: unknown) => {
          warn(`keyrot-rotation-demo: cleanup failed: ${(error as Error).message}`)
          process.exit(code)
        },
      )
    })
  stopOn('SIGINT', 130)
  stopOn('SIGTERM', 143)

  let target: DemoTarget
  try {
    target =
      options.store === 'redis'
        ? await startRedisTarget({ redisUrl: options.redisUrl, onReplicaOutput: warn })
        : await startMemoryTarget({ gracePeriodMs })
  } catch (error) {
    if (!(error instanceof RedisUnreachableError)) throw error
    warn(`keyrot-rotation-demo: ${error.message}`)
    warn('Start Redis there, or point the demo at one with --redis-url <url> or REDIS_URL.')
    return 1
  }
  let closing: Promise<string | null> | null = null
  closeTarget = () => (closing ??= target.close())

  write(`keyrot rotation demo: ${target.description} on ${target.baseUrls.join(', ')}, Argon2id, verification cache on`)
  for (const line of target.details) write(line)
  write(`grace period ${formatDuration(gracePeriodMs)}; secrets are never printed, only key ids`)
  printClients(write)
  write('')
  let result
  let propagation: PropagationResult | undefined
  try {
    result = await runRotationScenario({
      baseUrls: target.baseUrls,
      admin: target.admin,
      gracePeriodMs,
      onEvent: createTimelinePrinter({ write, quiet, baseUrls: target.baseUrls }),
    })
    if (target.replicated) {
      write('')
      write(`measuring propagation: revocations and grace deadlines, each replica polled with the key until it refuses it…`)
      propagation = await measurePropagation({ baseUrls: target.baseUrls, admin: target.admin })
    }
  } catch (error) {
    const cleanup = await closeTarget()
    if (cleanup) write(cleanup)
    throw error
  }
  const cleanup = await closeTarget()
  const verdict = checkRotation({
    keys: result.keys,
    requests: result.requests,
    origin: result.startedAt,
    revocationToleranceMs: target.revocationToleranceMs,
  })
  printVerdict(write, result, verdict, gracePeriodMs, { baseUrls: target.baseUrls, propagation })
  if (cleanup) write(cleanup)
  return verdict.pass && (propagation?.failures.length ?? 0) === 0 ? 0 : 1
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
