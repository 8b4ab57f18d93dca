import http from 'node:http'

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

/** One raw header line, `Name: value`, with the value as UTF-8 bytes (or the bytes given). */
export function headerLine(name: string, value: string | Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${name}: `, 'latin1'), typeof value === 'string' ? Buffer.from(value, 'utf8') : value])
}
