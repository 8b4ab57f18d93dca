import type { Logger } from '@keyrot/core'
import type { Cluster, Redis } from 'ioredis'
import { describeAddress } from './startup.js'

/**
 * One line when the store's connection to Redis is lost, one when it is back:
 * never one per request or per reconnect attempt (ioredis emits 'error' on
 * each). Without a logger of the application's these go to `console.warn`:
 * a silent default would leave ioredis's own noise as the only sign of an
 * outage. With a logger they are `warn` (`redis.down`) and `info` (`redis.up`).
 */
export function reportOutages(client: Redis | Cluster, logger: Logger | undefined): void {
  const address = describeAddress(client)
  let down = false
  client.on('error', (error: Error) => {
    if (down) return
    down = true
    const message = `keyrot: Redis at ${address} is unreachable (${error.message}); reconnecting`
    if (logger) logger.warn({ event: 'redis.down', address, err: { message: error.message } }, message)
    else console.warn(message)
  })
  client.on('ready', () => {
    if (!down) return
    down = false
    const message = `keyrot: Redis at ${address} is reachable again`
    if (logger) logger.info({ event: 'redis.up', address }, message)
    else console.warn(message)
  })
}
