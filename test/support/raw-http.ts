import net from 'node:net'
import type { TestResponse } from '../http/client.js'

function parse(raw: Buffer): TestResponse {
  const end = raw.indexOf('\r\n\r\n')
  if (end === -1) throw new Error(`no complete response head in ${JSON.stringify(raw.toString('latin1').slice(0, 200))}`)
  const [statusLine, ...lines] = raw.subarray(0, end).toString('latin1').split('\r\n')
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')
  if (!match) throw new Error(`bad status line ${JSON.stringify(statusLine)}`)
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`
  }
  let body = raw.subarray(end + 4)
  if (headers['content-length'] !== undefined) body = body.subarray(0, Number(headers['content-length']))
  return { status: Number(match[1]), headers, body: body.toString('utf8') }
}

/**
 * `GET path` with raw header lines (any bytes but CR and LF) over a plain
 * loopback socket, like a client that keeps its side open until the answer
 * comes: the request is written without a FIN (Node's server drops an
 * asynchronous answer to a client that half-closed), `Connection: close`
 * makes the server close once it has answered. Fails after `timeoutMs`.
 */
export function rawRequest(port: number, path: string, headerLines: readonly Buffer[], timeoutMs = 5_000): Promise<TestResponse> {
  const head = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n`, 'latin1')
  const bytes = Buffer.concat([head, ...headerLines.flatMap((line) => [line, Buffer.from('\r\n')]), Buffer.from('\r\n')])
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port })
    const chunks: Buffer[] = []
    let done = false
    const finish = (error?: Error) => {
      if (done) return
      done = true
      socket.destroy()
      if (chunks.length > 0) {
        try {
          resolve(parse(Buffer.concat(chunks)))
          return
        } catch (parseError) {
          reject(parseError)
          return
        }
      }
      reject(error ?? new Error('the server closed the connection without an answer'))
    }
    socket.setTimeout(timeoutMs, () => finish(new Error(`no answer within ${timeoutMs} ms`)))
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    // The server may answer (431, 400) and reset before reading all we sent: what came before the reset counts.
    socket.on('error', (error) => finish(error))
    socket.on('end', () => finish())
    socket.on('close', () => finish())
    socket.write(bytes)
  })
}
