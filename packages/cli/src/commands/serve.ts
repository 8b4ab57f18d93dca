import type { Command } from 'commander'
import { InvalidArgumentError } from 'commander'
import { UsageError } from '../exit-codes.js'
import type { CliIo } from '../io.js'
import type { RunningServer } from '../server/listen.js'
import { parseListenAddress } from '../server/metrics-app.js'
import { proofOptionsFromEnv, signingOptionsFromEnv } from '../master-keys.js'
import { importOptionsFromEnv } from '../import-env.js'
import { parseDurationArg } from '../parse.js'
import { openKeyring, resolveRedisUrl, type StoreFlags } from '../store.js'
import { withStoreOptions } from './shared.js'

interface ServeFlags extends StoreFlags {
  port: number
  host: string
  bodyLimit: string
  shutdownTimeout: number
  grace?: number
  trustProxy?: number
  metricsListen?: { host: string; port: number } | null
  maxAge?: number
  rotationWarning?: number
  enforceMaxAge?: boolean
}

/** Where `--metrics-listen` is read from when not given. */
export const METRICS_LISTEN_VARIABLE = 'KEYROT_METRICS_LISTEN'
const DEFAULT_METRICS_LISTEN = '127.0.0.1:9464'

function parseMetricsListen(value: string): { host: string; port: number } | null {
  try {
    return parseListenAddress(value)
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message)
  }
}

function parsePort(value: string): number {
  const port = Number(value)
  if (!/^\d+$/.test(value) || !Number.isInteger(port) || port < 0 || port > 65_535) throw new InvalidArgumentError('expected a port number from 0 to 65535.')
  return port
}

function parseHops(value: string): number {
  if (!/^\d{1,2}$/.test(value)) throw new InvalidArgumentError('expected a number of proxies from 0 to 99.')
  return Number(value)
}

function parseBodyLimit(value: string): string {
  if (!/^\d+(b|kb|mb)$/i.test(value)) throw new InvalidArgumentError("expected a size such as '16kb' or '1mb'.")
  return value.toLowerCase()
}

function parseMetricsListenFromEnv(value: string | undefined): { host: string; port: number } | null {
  try {
    return parseListenAddress(value === undefined || value.trim() === '' ? DEFAULT_METRICS_LISTEN : value.trim())
  } catch (error) {
    throw new UsageError(`${METRICS_LISTEN_VARIABLE}: ${(error as Error).message}`)
  }
}

export function registerServe(program: Command, io: CliIo): void {
  const command = program
    .command('serve')
    .description('run the reference server: admin API, /openapi.json, /healthz, a sample protected route; /metrics on its own listener')
    .option('--port <port>', 'TCP port (0 picks a free one)', parsePort, 3000)
    .option('--host <host>', 'interface to listen on (0.0.0.0 for every interface)', '127.0.0.1')
    .option('--body-limit <size>', 'largest JSON body the admin API reads', parseBodyLimit, '16kb')
    .option('--shutdown-timeout <duration>', 'longest a shutdown waits for in-flight requests', parseDurationArg, 10_000)
    .option('--grace <duration>', 'default grace period of rotations made through the API (default: 24h)', parseDurationArg)
    .option('--trust-proxy <hops>', 'number of proxies in front of the server whose X-Forwarded-For gives the client IP (default: none)', parseHops)
    .option(
      '--metrics-listen <host:port|off>',
      `separate listener for /metrics, which the API port does not serve (default: $${METRICS_LISTEN_VARIABLE} or ${DEFAULT_METRICS_LISTEN})`,
      parseMetricsListen,
    )
    .option('--max-age <duration>', 'rotation policy: age at which keys are due for rotation (default: none; tenants may set their own)', parseDurationArg)
    .option('--rotation-warning <duration>', 'rotation policy: how long before --max-age the Deprecation header and key.rotation-due start (default: 14d)', parseDurationArg)
    .option('--enforce-max-age', 'rotation policy: overdue keys fail verification as expired')
  withStoreOptions(command)
  command.addHelpText(
    'after',
    `
The admin API (/v1/keys...) needs a key with the "admin" scope: it manages the keys of its own tenant;
with "admin:*" as well, every tenant.
Create the first one with the CLI (the Redis password, if any, in REDIS_PASSWORD, not in the URL):
  $ keyrot create --redis redis://127.0.0.1:6379 --tenant ops --name admin --scopes 'admin,admin:*'
/metrics is served on --metrics-listen only (loopback by default): it is not for the public.
With KEYROT_MASTER_KEYS set, the admin API also creates and rotates signing secrets.
Logs are JSON lines on stdout. SIGTERM or SIGINT: stop accepting connections, finish in-flight
requests, flush usage counts, close Redis, exit 0.`,
  )
  command.action(async (flags: ServeFlags) => {
    const url = resolveRedisUrl(flags, io, 'serve')
    const metricsAt = flags.metricsListen !== undefined ? flags.metricsListen : parseMetricsListenFromEnv(io.env[METRICS_LISTEN_VARIABLE])
    const signing = signingOptionsFromEnv(io.env)
    // The server's dependencies (Express, zod, pino) load only for `serve`, so other commands start faster.
    const [{ pino }, { createServer }, { listen }, { createMetricsApp }, { Registry, collectDefaultMetrics }] = await Promise.all([
      import('pino'),
      import('../server/app.js'),
      import('../server/listen.js'),
      import('../server/metrics-app.js'),
      import('prom-client'),
    ])
    const logger = pino({ base: { service: 'keyrot' } })
    const opened = await openKeyring(url, flags, {
      reconnect: true,
      // Failures per IP and per key id, the IP block and per-key quotas, shared by every replica through Redis.
      sharedRateLimits: true,
      // Admin actions in the shared history, with the admin key that made them: the "who" of evidence reports.
      history: true,
      logger,
      keyring: {
        ...signing,
        ...(flags.grace === undefined ? {} : { gracePeriod: `${flags.grace}ms` }),
        ...proofOptionsFromEnv(io.env),
        // Always on, so tenant overrides set through the admin API apply even without --max-age.
        policy: { maxAge: flags.maxAge ?? 0, ...(flags.rotationWarning === undefined ? {} : { rotationWarning: flags.rotationWarning }), enforce: flags.enforceMaxAge === true },
        ...importOptionsFromEnv(io.env),
      },
    })
    const registry = new Registry()
    collectDefaultMetrics({ register: registry })
    const app = createServer({
      keyring: opened.keyring,
      registry,
      logger,
      bodyLimit: flags.bodyLimit,
      health: () => opened.client.ping(),
      ...(flags.trustProxy === undefined ? {} : { trustProxy: flags.trustProxy }),
    })
    let metrics: RunningServer | undefined
    let running: RunningServer
    try {
      if (metricsAt) metrics = await listen(createMetricsApp(registry), { ...metricsAt, shutdownTimeoutMs: 1_000 })
      running = await listen(app, {
        port: flags.port,
        host: flags.host,
        shutdownTimeoutMs: flags.shutdownTimeout,
        logger,
        onClose: async () => {
          await metrics?.close()
          await opened.close()
        },
      })
    } catch (error) {
      await metrics?.close()
      await opened.close()
      throw error
    }
    if (metrics) logger.info({ event: 'metrics.listening', url: `${metrics.url}/metrics` }, `keyrot serve: metrics on ${metrics.url}/metrics`)
    else logger.info({ event: 'metrics.off' }, 'keyrot serve: no metrics listener (--metrics-listen off)')
    logger.info(
      { event: 'server.listening', url: running.url, store: opened.location, signing: signing.signing !== undefined },
      `keyrot serve listening on ${running.url}`,
    )

    await new Promise<void>((resolve, reject) => {
      let signals = 0
      const onSignal = (signal: NodeJS.Signals) => {
        signals++
        if (signals > 1) {
          logger.warn({ event: 'server.forced_exit', signal }, 'keyrot serve: second signal, exiting now')
          process.exit(1)
        }
        logger.info({ event: 'server.signal', signal }, `keyrot serve: ${signal} received`)
        running.close().then(() => {
          process.off('SIGTERM', onSignal)
          process.off('SIGINT', onSignal)
          resolve()
        }, reject)
      }
      process.on('SIGTERM', onSignal)
      process.on('SIGINT', onSignal)
    })
  })
}
