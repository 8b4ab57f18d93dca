import { StoreUnavailableError } from '@keyrot/core'
import type { Cluster, Redis } from 'ioredis'

type RedisClient = Redis | Cluster

/** Where a client connects, never with its password: `127.0.0.1:6379`, `db 2`, TLS, or the cluster's seed nodes. */
export function describeAddress(client: RedisClient): string {
  if ((client as Cluster).isCluster) {
    const seeds = ((client as unknown as { startupNodes?: Array<{ host?: string; port?: number } | string | number> }).startupNodes ?? [])
      .map((node) => (typeof node === 'object' ? `${node.host ?? '127.0.0.1'}:${node.port ?? 6379}` : String(node)))
    return `Redis Cluster seed node(s) ${seeds.join(', ') || '(none)'}`
  }
  const options = (client as Redis).options
  if (options.path) return options.path
  const parts = [`${options.host ?? '127.0.0.1'}:${options.port ?? 6379}`]
  if (options.db) parts.push(`db ${options.db}`)
  if (options.tls) parts.push('TLS')
  if (options.username) parts.push(`user ${options.username}`)
  return parts.join(', ')
}

/** Keeps the connection's last error: a failed start-up names its cause. */
export function trackLastError(client: RedisClient): () => Error | undefined {
  let last: Error | undefined
  client.on('error', (error: Error) => (last = error))
  client.on('ready', () => (last = undefined))
  return () => last
}

/**
 * The error of a `waitUntilReady()` that failed: the address (password
 * never shown), the cause ioredis reported, and the option that sets the wait.
 */
export function startupError(error: unknown, client: RedisClient, lastError: Error | undefined, timeoutMs: number): StoreUnavailableError {
  const cause = lastError?.message ?? (error instanceof Error ? error.message : String(error))
  return new StoreUnavailableError(
    `The Redis store could not connect to ${describeAddress(client)} within ${timeoutMs} ms: ${cause}. ` +
      `The wait is waitUntilReady(timeoutMs) (default 5000 ms); check the address and that Redis is up.`,
    { cause: lastError ?? error },
  )
}
