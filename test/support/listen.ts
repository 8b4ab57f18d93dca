import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach } from 'vitest'

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

/**
 * For a test file: `serve(handler)` serves on loopback (see {@link listen})
 * and gives the URL; every server, and whatever a test pushes to
 * `cleanups`, is closed after each test, the last first.
 */
export function loopbackTestServers(): { serve: (handler: http.RequestListener) => Promise<string>; cleanups: Array<() => Promise<void>> } {
  const cleanups: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  })
  return {
    cleanups,
    serve: async (handler) => {
      const app = await listen(handler, [])
      cleanups.push(() => app.close())
      return `http://127.0.0.1:${app.port}`
    },
  }
}
