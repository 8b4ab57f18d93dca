import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach } from 'vitest'

export interface Served {
  /** `http://127.0.0.1:<port>` */
  url: string
  /** Ends every open connection and the server. */
  close: () => Promise<void>
}

/** Serves `listener` on a free loopback port, for tests that talk to an app over a real socket. */
export async function serveOnLoopback(listener: http.RequestListener): Promise<Served> {
  const server = http.createServer(listener)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/**
 * For a test file: `serve(listener)` serves on loopback and gives the URL;
 * every server, and whatever a test pushes to `cleanups`, is closed after
 * each test, the last first.
 */
export function loopbackTestServers(): { serve: (listener: http.RequestListener) => Promise<string>; cleanups: Array<() => Promise<void>> } {
  const cleanups: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  })
  return {
    cleanups,
    serve: async (listener) => {
      const { url, close } = await serveOnLoopback(listener)
      cleanups.push(close)
      return url
    },
  }
}
