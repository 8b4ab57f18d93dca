import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createKeyring, MemoryStore, type Keyring } from '@keyrot/core'
import { apiKeyAuth } from '@keyrot/express'
import express from 'express'
import type { PropagationAdmin } from './propagation.js'
import type { KeyringAdmin } from './scenario.js'

/** Servers to run the scenario against, and the handle that manages their keys. */
export interface DemoTarget {
  /** For the header, e.g. `in-memory store, 1 Express server`. */
  description: string
  /** More header lines, one per server; may be empty. */
  details: string[]
  baseUrls: string[]
  admin: KeyringAdmin & PropagationAdmin
  /** Several processes share the keys: propagation between them is worth measuring. */
  replicated: boolean
  /** How long after a revocation returned a server may still accept the key, ms (the checker's `revocationToleranceMs`). */
  revocationToleranceMs: number
  /** Stops the servers and releases what the target created; resolves with a line saying what was cleaned up, if anything. */
  close(): Promise<string | null>
}

/** The API the clients call: one route behind `apiKeyAuth`. */
export function createApp(keyring: Keyring): express.Express {
  const app = express()
  app.disable('x-powered-by')
  app.get('/v1/orders', apiKeyAuth({ keyring, scopes: ['orders:read'] }), function listOrders(req, res) {
    res.json({ tenantId: req.apiKey?.tenantId, orders: [] })
  })
  return app
}

/**
 * One Express server on a loopback port with a keyring on a `MemoryStore`:
 * the default Argon2id hasher and verification cache, as in production. The
 * admin handle is the server's own keyring (a memory store lives in one
 * process).
 */
export async function startMemoryTarget(options: { gracePeriodMs: number }): Promise<DemoTarget> {
  const keyring = createKeyring({ store: new MemoryStore(), gracePeriod: `${options.gracePeriodMs}ms` })
  const server = createServer(createApp(keyring))
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  const { port } = server.address() as AddressInfo
  return {
    description: 'in-memory store, 1 Express server',
    details: [],
    baseUrls: [`http://127.0.0.1:${port}`],
    admin: keyring,
    replicated: false,
    // One process: the very next request is refused.
    revocationToleranceMs: 0,
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await keyring.close()
      return null
    },
  }
}
