import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createKeyring, proofKeyFromEnv, type Keyring } from '@keyrot/core'
import { RedisStore } from '@keyrot/redis'
import { Redis } from 'ioredis'
import { createApp } from './server.js'

/**
 * One replica of the demo's API, in its own process, as an application runs
 * behind a load balancer: its own keyring, `RedisStore`, verification cache
 * and invalidation subscriber, sharing only Redis with the other replicas.
 *
 * Started by the demo with an IPC channel (`fork`). The Redis URL arrives as
 * a message, not in argv or the environment, so a password in it never shows
 * in the process list. Exits when the demo disconnects (even if the demo was
 * killed) or on SIGTERM, after closing its server and keyring.
 */

/** demo → replica */
export interface ReplicaConfig {
  type: 'config'
  redisUrl: string
  keyPrefix: string
}

/** replica → demo */
export type ReplicaMessage = { type: 'ready'; port: number } | { type: 'failed'; message: string }

function send(message: ReplicaMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) return resolve()
    process.send(message, undefined, {}, () => resolve())
  })
}

let stopping: Promise<void> | null = null
let cleanup: () => Promise<void> = async () => {}

function stop(code: number): void {
  stopping ??= cleanup().catch((error: unknown) => {
    process.stderr.write(`closing failed: ${(error as Error).message}\n`)
  })
  // Whatever hangs in cleanup, the process does not outlive the demo by more than 2 s.
  setTimeout(() => process.exit(code), 2_000).unref()
  void stopping.then(() => process.exit(code))
}

async function start(config: ReplicaConfig): Promise<void> {
  // A template for the store's own connections: it is never connected itself.
  const client = new Redis(config.redisUrl, { lazyConnect: true })
  const store = new RedisStore({ client, keyPrefix: config.keyPrefix })
  let keyring: Keyring | null = null
  cleanup = async () => {
    await keyring?.close()
    await store.close()
    client.disconnect()
  }
  // KEYROT_PROOF_KEY, or one derived from KEYROT_MASTER_KEYS: replicas share their Argon2 proofs (docs/redis.md#shared-proofs).
  keyring = createKeyring({ store, proofKey: proofKeyFromEnv(process.env) })
  // Serve only once the invalidation feed is live: a change published before
  // that would never reach this replica's cache.
  await store.waitUntilReady(5_000)
  await store.invalidationReady(5_000)
  const server = createServer(createApp(keyring))
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  const closeKeyring = cleanup
  cleanup = async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
    await closeKeyring()
  }
  await send({ type: 'ready', port: (server.address() as AddressInfo).port })
}

if (!process.send) {
  process.stderr.write('this is a replica of keyrot-rotation-demo: the demo starts it (run keyrot-rotation-demo --store redis)\n')
  process.exit(2)
}
process.on('disconnect', () => stop(0))
process.on('SIGTERM', () => stop(0))
// Ctrl-C reaches the whole process group: the demo stops its replicas itself
// (SIGTERM), after which it removes the run's keys.
process.on('SIGINT', () => {})
process.once('message', (message: ReplicaConfig) => {
  start(message).catch(async (error: unknown) => {
    await send({ type: 'failed', message: error instanceof Error ? error.message : String(error) })
    stop(1)
  })
})
