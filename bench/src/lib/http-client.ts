import { Agent, request } from 'node:http'

/** A small keep-alive HTTP client for the controller (less overhead per request than fetch). */
const agent = new Agent({ keepAlive: true, maxSockets: 64 })

export interface Reply {
  status: number
  body: string
}

export function call(port: number, method: 'GET' | 'POST', path: string, options: { token?: string; json?: unknown; timeoutMs?: number } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const payload = options.json === undefined ? undefined : JSON.stringify(options.json)
    const headers: Record<string, string> = {}
    if (options.token) headers['authorization'] = `Bearer ${options.token}`
    if (payload !== undefined) {
      headers['content-type'] = 'application/json'
      headers['content-length'] = String(Buffer.byteLength(payload))
    }
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent, timeout: options.timeoutMs ?? 10_000 }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (body += chunk))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} on port ${port} timed out`)))
    req.on('error', reject)
    req.end(payload)
  })
}

/** POSTs JSON and parses the JSON reply; throws unless the status is 2xx. */
export async function postJson<T>(port: number, path: string, json: unknown = {}, timeoutMs?: number): Promise<T> {
  const reply = await call(port, 'POST', path, { json, ...(timeoutMs === undefined ? {} : { timeoutMs }) })
  if (reply.status < 200 || reply.status > 299) throw new Error(`POST ${path} on port ${port}: ${reply.status} ${reply.body}`)
  return JSON.parse(reply.body) as T
}

export function closeClient(): void {
  agent.destroy()
}
