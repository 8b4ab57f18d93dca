import http from 'node:http'
import net from 'node:net'

/** A response as the test sees it: lower-case header names, the body as text. */
export interface TestResponse {
  status: number
  headers: Record<string, string>
  body: string
}

/** JSON body of a response, or `undefined` when it is not JSON. */
export function jsonOf(response: TestResponse): unknown {
  try {
    return JSON.parse(response.body)
  } catch {
    return undefined
  }
}

/**
 * A request through Node's HTTP client. Header values are sent as latin1, so
 * `'café'` goes on the wire as the byte 0xE9. Array values send the header
 * once per element.
 */
export function get(port: number, path: string, headers: Record<string, string | string[]> = {}): Promise<TestResponse> {
  return new Promise((resolve, reject) => {
    const request = http.request({ host: '127.0.0.1', port, path, method: 'GET', headers, agent: false, timeout: 5_000 }, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => {
        const flat: Record<string, string> = {}
        for (const [name, value] of Object.entries(response.headers)) {
          if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(', ') : value
        }
        resolve({ status: response.statusCode ?? 0, headers: flat, body: Buffer.concat(chunks).toString('utf8') })
      })
      response.on('error', reject)
    })
    request.on('timeout', () => request.destroy(new Error(`GET ${path} timed out`)))
    request.on('error', reject)
    request.end()
  })
}

function parseResponse(raw: Buffer): TestResponse {
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
 * Sends `GET path` with the given raw header lines (any bytes, no CR or LF)
 * over a plain socket on loopback, for requests Node's HTTP client refuses to
 * write. Asks the server to close the connection and reads until it does.
 */
export function rawGet(port: number, path: string, headerLines: Buffer[]): Promise<TestResponse> {
  const head = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n`, 'latin1')
  const lines = headerLines.flatMap((line) => [line, Buffer.from('\r\n')])
  const bytes = Buffer.concat([head, ...lines, Buffer.from('\r\n')])
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port })
    const chunks: Buffer[] = []
    socket.setTimeout(5_000, () => socket.destroy(new Error(`raw GET ${path} timed out`)))
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // The server may answer (431, 400) and close before it has read everything we sent.
      if (error.code === 'ECONNRESET' || error.code === 'EPIPE') {
        if (chunks.length > 0) resolve(parseResponse(Buffer.concat(chunks)))
        else reject(error)
      } else reject(error)
    })
    socket.on('end', () => {
      try {
        resolve(parseResponse(Buffer.concat(chunks)))
      } catch (error) {
        reject(error)
      }
    })
    socket.end(bytes)
  })
}

/** One raw header line, `Name: value`, with the value as UTF-8 bytes (or the bytes given). */
export function headerLine(name: string, value: string | Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${name}: `, 'latin1'), typeof value === 'string' ? Buffer.from(value, 'utf8') : value])
}
