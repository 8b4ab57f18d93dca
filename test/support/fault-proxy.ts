import net from 'node:net'

/**
 * What the proxy does with traffic, switchable while connections are open:
 *
 * - `pass`: forwards bytes both ways.
 * - `delay`: forwards every chunk `ms` later, in order (a slow or distant Redis).
 * - `blackhole`: accepts connections and bytes and forwards nothing for as
 *   long as it lasts (a stalled route, a frozen peer). Like TCP, it loses no
 *   byte: when the mode changes to `pass` or `delay` the held bytes go on,
 *   in order; `reset` drops them with the connection.
 * - `reset`: resets every open connection (RST) and each new one at once.
 */
export type FaultMode = { kind: 'pass' } | { kind: 'delay'; ms: number } | { kind: 'blackhole' } | { kind: 'reset' }

interface Forwarder {
  /** Re-times queued chunks after a mode change. */
  retime(): void
}

interface Pair {
  client: net.Socket
  upstream: net.Socket
  forwarders: Forwarder[]
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
    for (const pair of [...this.#pairs]) {
      if (mode.kind === 'reset') this.#reset(pair)
      else for (const forwarder of pair.forwarders) forwarder.retime()
    }
  }

  #accept(client: net.Socket): void {
    this.accepted++
    client.on('error', () => {})
    if (this.#mode.kind === 'reset') {
      client.resetAndDestroy()
      return
    }
    const upstream = net.connect({ host: '127.0.0.1', port: this.#targetPort })
    client.setNoDelay(true)
    upstream.setNoDelay(true)
    const pair: Pair = { client, upstream, forwarders: [this.#forward(client, upstream), this.#forward(upstream, client)] }
    this.#pairs.add(pair)
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

  /** Copies `from` to `to` under the proxy's mode; chunks always leave in the order they came. */
  #forward(from: net.Socket, to: net.Socket): Forwarder {
    const queue: Array<{ chunk: Buffer; releaseAt: number }> = []
    let timer: NodeJS.Timeout | undefined
    const extra = () => (this.#mode.kind === 'delay' ? this.#mode.ms : 0)
    const schedule = () => {
      clearTimeout(timer)
      timer = undefined
      const head = queue[0]?.releaseAt
      if (head !== undefined && Number.isFinite(head)) timer = setTimeout(drain, Math.max(0, head - performance.now()))
    }
    const drain = () => {
      const now = performance.now()
      while (queue.length > 0 && (queue[0] as { releaseAt: number }).releaseAt <= now) {
        const { chunk } = queue.shift() as { chunk: Buffer }
        if (!to.destroyed) to.write(chunk)
      }
      schedule()
    }
    from.on('data', (chunk: Buffer) => {
      const mode = this.#mode
      if (mode.kind === 'reset') return
      if (mode.kind === 'pass' && queue.length === 0) {
        if (!to.destroyed) to.write(chunk)
        return
      }
      const last = queue.at(-1)?.releaseAt ?? 0
      queue.push({ chunk, releaseAt: mode.kind === 'blackhole' ? Number.POSITIVE_INFINITY : Math.max(performance.now() + extra(), last) })
      if (timer === undefined) schedule()
    })
    from.on('close', () => clearTimeout(timer))
    return {
      retime: () => {
        // Into a blackhole: hold everything not yet sent. Out of it: release what was held, in order.
        const now = performance.now()
        let last = 0
        for (const item of queue) {
          if (this.#mode.kind === 'blackhole') item.releaseAt = Number.POSITIVE_INFINITY
          else if (!Number.isFinite(item.releaseAt)) item.releaseAt = Math.max(now + extra(), last)
          last = item.releaseAt
        }
        schedule()
      },
    }
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
