import { once } from 'node:events'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { silentLogger, type Logger } from '@keyrot/core'
import type { Express } from 'express'

export interface ListenOptions {
  /** TCP port. `0` picks a free one. Default 3000. */
  port?: number
  /** Interface to listen on. Default `'127.0.0.1'` (loopback only); `'0.0.0.0'` for every interface. */
  host?: string
  /**
   * Longest a shutdown waits for in-flight requests, in ms, before it closes
   * their connections. Default 10000.
   */
  shutdownTimeoutMs?: number
  /** Runs once the last request is done: flush usage counts, close the store. */
  onClose?: () => Promise<void>
  logger?: Logger
}

export interface RunningServer {
  server: Server
  /** `http://host:port`. */
  url: string
  /**
   * Graceful shutdown: stop accepting connections, let in-flight requests
   * finish (up to `shutdownTimeoutMs`), then run `onClose`. Idempotent.
   */
  close(): Promise<void>
}

/**
 * Bytes Node's HTTP parser refused (a request line it cannot read, stray
 * bytes after a body shorter than its Content-Length, headers too large):
 * the same 4xx Node would send, with a JSON body carrying a code like every
 * other answer of the server.
 */
function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  const response = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage
  if (error.code === 'ECONNRESET' || !socket.writable || response?.headersSent) {
    socket.destroy()
    return
  }
  const [status, reason, code, message] =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', 'KEYROT_INVALID_REQUEST', 'The request headers are too large.']
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', 'KEYROT_INVALID_REQUEST', 'The request was not received in time.']
        : [400, 'Bad Request', 'KEYROT_INVALID_REQUEST', 'The HTTP request is malformed.']
  const body = JSON.stringify({ error: { code, message } })
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n${body}`,
  )
}

/** Starts `app` and returns a handle whose `close()` shuts it down gracefully. */
export async function listen(app: Express, options: ListenOptions = {}): Promise<RunningServer> {
  const logger = options.logger ?? silentLogger
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? 10_000
  if (!Number.isFinite(shutdownTimeoutMs) || shutdownTimeoutMs < 0) throw new TypeError('shutdownTimeoutMs must be a non-negative number of milliseconds')
  const server = app.listen(options.port ?? 3000, options.host ?? '127.0.0.1')
  await once(server, 'listening')
  // A slow or stuck client must not hold a request (and a shutdown) open forever.
  server.headersTimeout = 10_000
  server.requestTimeout = 30_000
  server.on('clientError', answerClientError)

  let shuttingDown = false
  // Keep-alive connections that finish their request during the shutdown get
  // `Connection: close` rather than waiting for the next request.
  server.prependListener('request', (_req, res) => {
    if (shuttingDown && !res.headersSent) res.setHeader('connection', 'close')
  })

  const address = server.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  const url = `http://${host}:${address.port}`

  let closing: Promise<void> | undefined
  function close(): Promise<void> {
    closing ??= (async () => {
      shuttingDown = true
      logger.info({ event: 'server.shutdown' }, 'keyrot serve: stopping, finishing in-flight requests')
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      // server.close() drops idle keep-alive sockets once; drop those that become idle later too.
      const sweeper = setInterval(() => server.closeIdleConnections(), 100)
      let timer: NodeJS.Timeout | undefined
      const timedOut = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), shutdownTimeoutMs)
      })
      try {
        if ((await Promise.race([closed, timedOut])) === 'timeout') {
          logger.warn({ event: 'server.shutdown_timeout', shutdownTimeoutMs }, 'keyrot serve: closing connections of requests still running')
          server.closeAllConnections()
          await closed
        }
      } finally {
        clearInterval(sweeper)
        clearTimeout(timer)
      }
      await options.onClose?.()
      logger.info({ event: 'server.stopped' }, 'keyrot serve: stopped')
    })()
    return closing
  }
  return { server, url, close }
}
