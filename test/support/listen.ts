import http from 'node:http'
import type { AddressInfo } from 'node:net'

/** A test app listening on a loopback port. */
export interface RunningApp {
  port: number
  /** Errors the framework's own error handling received. */
  errors: unknown[]
  /** Drops open connections and closes the server. */
  close(): Promise<void>
}

/** Serves `handler` on 127.0.0.1 on a free port; `errors` is the list the app's error handler fills. */
export async function listen(handler: http.RequestListener, errors: unknown[]): Promise<RunningApp> {
  const server = http.createServer(handler)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  return {
    port: (server.address() as AddressInfo).port,
    errors,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections()
        server.close((error) => (error ? reject(error) : resolve()))
      }),
  }
}
