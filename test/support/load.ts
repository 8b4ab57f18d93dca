import { callWithKey, sleep, type Exchange } from './replicas.js'

export interface LoadClient {
  /** Label kept on each of its exchanges (`'valid@A'`, `'unknown@B'`...). */
  tag: string
  /** Where its next request goes; `null` skips a beat (e.g. the replica was killed). */
  target: () => { name: string; port: number } | null
  /** The token of its next request. */
  token: () => string
}

export type Tagged = Exchange & { tag: string }

export interface Load {
  readonly exchanges: Tagged[]
  /** Stops sending and resolves once every request in flight has ended. */
  stop(): Promise<void>
}

/**
 * Steady load: each client sends one request every `intervalMs`, on a fixed
 * schedule (a slow answer delays only that client's next request), until
 * stopped or after `maxRequests` per client, whichever comes first. Requests
 * are bounded by the client timeout of `callWithKey` (3 s).
 */
export function steadyLoad(clients: readonly LoadClient[], options: { intervalMs: number; maxRequests: number }): Load {
  const exchanges: Tagged[] = []
  let stopped = false
  const start = Date.now()
  const loops = clients.map(async (client, index) => {
    for (let n = 0; n < options.maxRequests && !stopped; n++) {
      await sleep(start + n * options.intervalMs + (index * options.intervalMs) / clients.length - Date.now())
      if (stopped) return
      const target = client.target()
      if (target === null) continue
      exchanges.push({ ...(await callWithKey(target, client.token())), tag: client.tag })
    }
  })
  return {
    exchanges,
    async stop() {
      stopped = true
      await Promise.all(loops)
    },
  }
}

/** Counts of exchanges by a label (`200`, `503`, `timeout`...). */
export function countBy<T>(items: readonly T[], label: (item: T) => string): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const item of items) {
    const key = label(item)
    counts[key] = (counts[key] ?? 0) + 1
  }
  return counts
}

/** `200`, `401 KEYROT_KEY_REVOKED`, `503 KEYROT_STORE_UNAVAILABLE` or the client-side failure (`timeout`, `ECONNREFUSED`). */
export function outcome(exchange: Exchange): string {
  if (exchange.failure !== undefined) return exchange.failure
  return exchange.code === undefined ? String(exchange.status) : `${exchange.status} ${exchange.code}`
}
