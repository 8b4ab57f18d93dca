import { createKeyring, FastTestHasher, MemoryStore, type Clock, type Keyring } from '@keyrot/core'
import { createServer, listen, type RunningServer } from '../../packages/cli/src/index.js'

export interface DashboardServer {
  keyring: Keyring
  running: RunningServer
  /** `http://127.0.0.1:port` */
  base: string
  /** The dashboard page. */
  page: string
  adminToken: string
  adminKeyId: string
  close(): Promise<void>
}

/**
 * The reference server on a MemoryStore keyring, on a free loopback port,
 * with one admin key. Abuse limits are off: a test signs in and clicks far
 * more often than a person would.
 */
export async function startDashboardServer(options: { clock?: Clock } = {}): Promise<DashboardServer> {
  const keyring = createKeyring({
    store: new MemoryStore(),
    hasher: new FastTestHasher(),
    rateLimit: false,
    ...(options.clock ? { clock: options.clock } : {}),
  })
  const admin = await keyring.create({ tenantId: 'ops', name: 'admin', scopes: ['admin', 'admin:*'] })
  const running = await listen(createServer({ keyring }), { port: 0, host: '127.0.0.1', shutdownTimeoutMs: 2_000, onClose: () => keyring.close() })
  return {
    keyring,
    running,
    base: running.url,
    page: `${running.url}/dashboard/`,
    adminToken: admin.token,
    adminKeyId: admin.key.id,
    close: () => running.close(),
  }
}
