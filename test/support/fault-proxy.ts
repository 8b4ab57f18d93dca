import net from 'node:net'

/**
 * What the proxy does with traffic, switchable while connections are open:
 *
 * - `pass`: forwards bytes both ways.
 * - `delay`: forwards every chunk `ms` later, in order (a slow or distant Redis).
 * - `blackhole`: accepts connections and bytes and forwards nothing (a server
 *   that stopped answering, a dropped route).
 * - `reset`: resets every open connection (RST) and each new one at once.
 */
export type FaultMode = { kind: 'pass' } | { kind: 'delay'; ms: number } | { kind: 'blackhole' } | { kind: 'reset' }

interface Pair {
  client: net.Socket
  upstream: net.Socket
}

/**
 * A TCP proxy on 127.0.0.1 in front of one loopback port, for fault tests.
 *
 * @example
 * const proxy = await FaultProxy.start(redis.port)
 * // point the application at proxy.port, then:
 * proxy.setMode({ kind: 'delay', ms: 800 })
 */
export class FaultProxy {
  readonly #server: net.Server
  readonly #targetPort: number
  readonly #pairs = new Set<Pair>()
  #mode: FaultMode = { kind: 'pass' }
  /** Connections accepted since start. */
  accepted = 0

  private constructor(server: net.Server, targetPort: number) {
    this.#server = server
    this.#targetPort = targetPort
  }

  static async start(targetPort: number): Promise<FaultProxy> {
    const server = net.createServer()
    const proxy = new FaultProxy(server, targetPort)
    server.on('connection', (client) => proxy.#accept(client))
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => resolve())
    })
    return proxy
  }

  get port(): number {
    return (this.#server.address() as net.AddressInfo).port
  }

  get mode(): FaultMode {
    return this.#mode
  }

  /** Open client connections. */
  get connections(): number {
    return this.#pairs.size
  }

  setMode(mode: FaultMode): void {
    if (mode.kind === 'delay' && !(Number.isFinite(mode.ms) && mode.ms >= 0)) throw new TypeError('delay ms must be a non-negative number')
    this.#mode = mode
    if (mode.kind === 'reset') for (const pair of [...this.#pairs]) this.#reset(pair)
  }

  #accept(client: net.Socket): void {
    this.accepted++
    if (this.#mode.kind === 'reset') {
      client.resetAndDestroy()
      return
    }
    const upstream = net.connect({ host: '127.0.0.1', port: this.#targetPort })
    const pair: Pair = { client, upstream }
    this.#pairs.add(pair)
    client.setNoDelay(true)
    upstream.setNoDelay(true)
    this.#forward(client, upstream)
    this.#forward(upstream, client)
    const close = () => {
      if (!this.#pairs.delete(pair)) return
      client.destroy()
      upstream.destroy()
    }
    for (const socket of [client, upstream]) {
      socket.on('error', close)
      socket.on('close', close)
    }
  }

  /** Copies `from` to `to` under the mode in force when each chunk arrives; a delay keeps chunks in order. */
  #forward(from: net.Socket, to: net.Socket): void {
    const queue: Array<{ chunk: Buffer; releaseAt: number }> = []
    let timer: NodeJS.Timeout | undefined
    const drain = () => {
      timer = undefined
      const now = performance.now()
      while (queue.length > 0 && (queue[0] as { releaseAt: number }).releaseAt <= now) {
        const { chunk } = queue.shift() as { chunk: Buffer }
        // A switch to blackhole or reset also drops what was already delayed.
        if (!to.destroyed && this.#mode.kind !== 'blackhole' && this.#mode.kind !== 'reset') to.write(chunk)
      }
      if (queue.length > 0) timer = setTimeout(drain, Math.max(1, (queue[0] as { releaseAt: number }).releaseAt - now))
    }
    from.on('data', (chunk: Buffer) => {
      const mode = this.#mode
      if (mode.kind === 'blackhole' || mode.kind === 'reset') return
      if (mode.kind === 'pass' && queue.length === 0) {
        if (!to.destroyed) to.write(chunk)
        return
      }
      // Never before a chunk that arrived earlier: the byte stream stays in order.
      const last = queue.at(-1)?.releaseAt ?? 0
      queue.push({ chunk, releaseAt: Math.max(performance.now() + (mode.kind === 'delay' ? mode.ms : 0), last) })
      if (timer === undefined) drain()
    })
    from.on('close', () => clearTimeout(timer))
  }

  #reset(pair: Pair): void {
    this.#pairs.delete(pair)
    pair.client.resetAndDestroy()
    pair.upstream.resetAndDestroy()
  }

  /** Resets every connection and stops listening. */
  async close(): Promise<void> {
    for (const pair of [...this.#pairs]) this.#reset(pair)
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }
}
