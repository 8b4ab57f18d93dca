import type { Command } from 'commander'
import { InvalidArgumentError } from 'commander'
import type { CliIo } from '../io.js'
import { proofOptionsFromEnv, signingOptionsFromEnv } from '../master-keys.js'
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

export function registerServe(program: Command, io: CliIo): void {
  const command = program
    .command('serve')
    .description('run the reference server: admin API, /openapi.json, /metrics, /healthz, a sample protected route')
    .option('--port <port>', 'TCP port (0 picks a free one)', parsePort, 3000)
    .option('--host <host>', 'interface to listen on (0.0.0.0 for every interface)', '127.0.0.1')
    .option('--body-limit <size>', 'largest JSON body the admin API reads', parseBodyLimit, '16kb')
    .option('--shutdown-timeout <duration>', 'longest a shutdown waits for in-flight requests', parseDurationArg, 10_000)
    .option('--grace <duration>', 'default grace period of rotations made through the API (default: 24h)', parseDurationArg)
    .option('--trust-proxy <hops>', 'number of proxies in front of the server whose X-Forwarded-For gives the client IP (default: none)', parseHops)
  withStoreOptions(command)
  command.addHelpText(
    'after',
    `
The admin API (/v1/keys...) needs a key with the "admin" scope. Create the first one with the CLI:
  $ keyrot create --redis redis://127.0.0.1:6379 --tenant ops --name admin --scopes admin
Logs are JSON lines on stdout. SIGTERM or SIGINT: stop accepting connections, finish in-flight
requests, flush usage counts, close Redis, exit 0.`,
  )
  command.action(async (flags: ServeFlags) => {
    const url = resolveRedisUrl(flags, io, 'serve')
    // The server's dependencies (Express, zod, pino) load only for `serve`, so other commands start faster.
    const [{ pino }, { createServer }, { listen }] = await Promise.all([import('pino'), import('../server/app.js'), import('../server/listen.js')])
    const logger = pino({ base: { service: 'keyrot' } })
    const opened = await openKeyring(url, flags, {
      reconnect: true,
      logger,
      keyring: { ...(flags.grace === undefined ? {} : { gracePeriod: flags.grace }), ...proofOptionsFromEnv(io.env) },
    })
    const app = createServer({
      keyring: opened.keyring,
      logger,
      bodyLimit: flags.bodyLimit,
      health: () => opened.client.ping(),
      ...(flags.trustProxy === undefined ? {} : { trustProxy: flags.trustProxy }),
    })
    let running
    try {
      running = await listen(app, {
        port: flags.port,
        host: flags.host,
        shutdownTimeoutMs: flags.shutdownTimeout,
        logger,
        onClose: () => opened.close(),
      })
    } catch (error) {
      await opened.close()
      throw error
    }
    logger.info({ event: 'server.listening', url: running.url, store: opened.location }, `keyrot serve listening on ${running.url}`)

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
