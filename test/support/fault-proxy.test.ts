import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FaultProxy } from './fault-proxy.js'

/** The fault tests trust this proxy: each mode does what it says, on a loopback echo server. */

let echo: net.Server
let proxy: FaultProxy

beforeAll(async () => {
  echo = net.createServer((socket) => {
    socket.on('error', () => {}) // the proxy resets it in reset mode
    socket.pipe(socket)
  })
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve))
  proxy = await FaultProxy.start((echo.address() as net.AddressInfo).port)
})

afterAll(async () => {
  await proxy.close()
  await new Promise((resolve) => echo.close(resolve))
})

function connect(): Promise<{ socket: net.Socket; received: () => string; closed: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port: proxy.port })
    let data = ''
    socket.on('data', (chunk: Buffer) => (data += chunk.toString()))
    const closed = new Promise<string>((done) => {
      socket.on('error', (error: NodeJS.ErrnoException) => done(error.code ?? error.message))
      socket.on('close', () => done('closed'))
    })
    socket.once('connect', () => resolve({ socket, received: () => data, closed }))
    socket.once('error', reject)
  })
}

async function waitFor(check: () => boolean, ms = 2_000): Promise<number> {
  const start = performance.now()
  while (!check()) {
    if (performance.now() - start > ms) throw new Error('timed out')
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
  return performance.now() - start
}

describe('FaultProxy', () => {
  it('passes bytes both ways, then delays them in order', async () => {
    proxy.setMode({ kind: 'pass' })
    const { socket, received } = await connect()
    socket.write('ping')
    expect(await waitFor(() => received() === 'ping')).toBeLessThan(100)
    proxy.setMode({ kind: 'delay', ms: 120 })
    socket.write('a')
    socket.write('b')
    // Each direction adds the delay: about 240 ms for the round trip.
    const elapsed = await waitFor(() => received() === 'pingab')
    expect(elapsed).toBeGreaterThanOrEqual(230)
    proxy.setMode({ kind: 'pass' })
    socket.destroy()
  })

  it('holds bytes in a blackhole and releases them in order when traffic passes again', async () => {
    proxy.setMode({ kind: 'pass' })
    const { socket, received } = await connect()
    proxy.setMode({ kind: 'blackhole' })
    socket.write('1')
    socket.write('2')
    await new Promise((resolve) => setTimeout(resolve, 150))
    expect(received()).toBe('')
    proxy.setMode({ kind: 'pass' })
    await waitFor(() => received() === '12')
    socket.destroy()
  })

  it('resets open connections and each new one in reset mode', async () => {
    proxy.setMode({ kind: 'pass' })
    const open = await connect()
    proxy.setMode({ kind: 'reset' })
    expect(await open.closed).toBe('ECONNRESET')
    const fresh = await connect().catch((error: NodeJS.ErrnoException) => ({ closed: Promise.resolve(error.code ?? 'error') }))
    expect(['ECONNRESET', 'closed']).toContain(await fresh.closed)
    proxy.setMode({ kind: 'pass' })
    const again = await connect()
    again.socket.write('back')
    await waitFor(() => again.received() === 'back')
    again.socket.destroy()
  })
})
