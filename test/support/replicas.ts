import { spawn, type ChildProcess } from 'node:child_process'
import http from 'node:http'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { ROOT } from './build.js'

/**
 * Starts replica processes (test/support/replica.mjs) on loopback, captures
 * every line they print (for the secrets scan and for debugging), drives
 * their admin routes and sends timed requests to them. Every replica started
 * here is killed when the test process exits, whatever happened.
 */

const REPLICA_SCRIPT = fileURLToPath(new URL('./replica.mjs', import.meta.url))
const running = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL')
})

export interface ReplicaOptions {
  redisUrl: string
  /** `redisUrl` is a node of a Redis Cluster. */
  cluster?: boolean
  name: string
  keyPrefix?: string
  storeTimeoutMs?: number
  stateTtlMs?: number
  flushIntervalMs?: number
  heartbeatIntervalMs?: number
  heartbeatTimeoutMs?: number
  masterKeys?: string
  /** Keyring `cache.staleIfError` (ms); default: the keyring's. */
  staleIfErrorMs?: number
  /** `'redis'`: abuse protection with `RedisRateLimiter` on the store's Redis; default: rate limits off. */
  rateLimiter?: 'redis'
  /** `KEYROT_PROOF_KEY` (base64): the fleet-wide proof cache is on when given. */
  proofKey?: string
  /** Argon2id parameters of the replica's hasher. Default: the small ones (m=1024 KiB, t=1). */
  argon2?: { memoryKiB: number; timeCost: number }
}

export interface Replica {
  readonly name: string
  readonly port: number
  readonly pid: number
  /** Every stdout and stderr line so far. */
  readonly lines: string[]
  /** Resolves with how the process ended. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  alive(): boolean
  /** Sends a signal (SIGKILL for a crash) and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>
  /** SIGTERM (flushes usage counts), SIGKILL after 5 s. */
  stop(): Promise<void>
  /** The pino lines it printed, parsed. */
  logs(): Record<string, unknown>[]
}

export async function startReplica(options: ReplicaOptions): Promise<Replica> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'production',
    REDIS_URL: options.redisUrl,
    PORT: '0',
    REPLICA_NAME: options.name,
  }
  const numbers: Array<[string, number | undefined]> = [
    ['STORE_TIMEOUT_MS', options.storeTimeoutMs],
    ['STATE_TTL_MS', options.stateTtlMs],
    ['FLUSH_INTERVAL_MS', options.flushIntervalMs],
    ['HEARTBEAT_INTERVAL_MS', options.heartbeatIntervalMs],
    ['HEARTBEAT_TIMEOUT_MS', options.heartbeatTimeoutMs],
    ['STALE_IF_ERROR_MS', options.staleIfErrorMs],
  ]
  for (const [name, value] of numbers) if (value !== undefined) env[name] = String(value)
  if (options.keyPrefix) env.KEY_PREFIX = options.keyPrefix
  if (options.cluster) env.REDIS_CLUSTER = '1'
  if (options.masterKeys) env.KEYROT_MASTER_KEYS = options.masterKeys
  if (options.rateLimiter) env.RATE_LIMITER = options.rateLimiter
  if (options.proofKey) env.KEYROT_PROOF_KEY = options.proofKey
  if (options.argon2) {
    env.ARGON2_MEMORY_KIB = String(options.argon2.memoryKiB)
    env.ARGON2_TIME_COST = String(options.argon2.timeCost)
  }

  const child = spawn(process.execPath, [REPLICA_SCRIPT], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  running.add(child)
  const lines: string[] = []
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(child)
      resolve({ code, signal })
    })
  })
  const listening = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`replica ${options.name} did not start within 20 s:\n${lines.join('\n')}`)), 20_000)
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on('line', (line) => {
        lines.push(line)
        if (line.includes('"replica.listening"')) {
          clearTimeout(timer)
          resolve((JSON.parse(line) as { port: number }).port)
        }
      })
    }
    void exited.then(({ code, signal }) => {
      clearTimeout(timer)
      reject(new Error(`replica ${options.name} exited (${code ?? signal}) before listening:\n${lines.join('\n')}`))
    })
  })
  let port: number
  try {
    port = await listening
  } catch (error) {
    child.kill('SIGKILL')
    throw error
  }
  const alive = () => child.exitCode === null && child.signalCode === null
  const kill = async (signal: NodeJS.Signals = 'SIGKILL') => {
    if (alive()) child.kill(signal)
    await exited
  }
  return {
    name: options.name,
    port,
    pid: child.pid as number,
    lines,
    exited,
    alive,
    kill,
    async stop() {
      if (!alive()) return
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
      await kill('SIGTERM')
      clearTimeout(timer)
    },
    logs() {
      return lines.flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, unknown>]
        } catch {
          return []
        }
      })
    },
  }
}

/** Starts replicas named A, B, C... on one Redis, in parallel. */
export function startReplicas(count: number, options: Omit<ReplicaOptions, 'name'>): Promise<Replica[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => startReplica({ ...options, name: String.fromCharCode(65 + i) })))
}

/** A request as a load client sees it: wall-clock send and receive times, status and error code. */
export interface Exchange {
  replica: string
  /** `Date.now()` just before the request was written. */
  sentAt: number
  /** `Date.now()` when the response ended (or the request failed). */
  receivedAt: number
  /** Duration measured with `performance.now()` (ms). */
  ms: number
  /** 0 when no HTTP answer came (connection refused or reset, client timeout). */
  status: number
  /** `error.code` of a JSON error body, if any. */
  code: string | undefined
  headers: http.IncomingHttpHeaders
  body: string
  /** Why no answer came (`timeout`, `ECONNREFUSED`...). */
  failure: string | undefined
}

/**
 * Every error answer (status >= 300: status, headers and body) any request
 * in this process received: the secrets scan searches them.
 */
export const errorAnswers: string[] = []

const agents = new Map<number, http.Agent>()
function agentFor(port: number): http.Agent {
  let agent = agents.get(port)
  if (!agent) {
    agent = new http.Agent({ keepAlive: true, maxSockets: 64 })
    agents.set(port, agent)
  }
  return agent
}

/** Closes the keep-alive connections of every replica port (call in afterAll). */
export function closeAgents(): void {
  for (const agent of agents.values()) agent.destroy()
  agents.clear()
}

/**
 * One HTTP request to a replica over a keep-alive connection, never waiting
 * longer than `timeoutMs` (default 3 s): a request that hangs comes back as
 * `failure: 'timeout'`, it never stalls the test.
 */
export function request(
  target: { name: string; port: number },
  options: { method?: string; path: string; headers?: http.OutgoingHttpHeaders; body?: unknown; timeoutMs?: number },
): Promise<Exchange> {
  const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body))
  const headers: http.OutgoingHttpHeaders = { ...options.headers }
  if (payload) {
    headers['content-type'] = 'application/json'
    headers['content-length'] = payload.length
  }
  const timeoutMs = options.timeoutMs ?? 3_000
  return new Promise((resolve) => {
    const sentAt = Date.now()
    const started = performance.now()
    let settled = false
    const finish = (fields: Partial<Exchange>) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resolve({
        replica: target.name,
        sentAt,
        receivedAt: Date.now(),
        ms: performance.now() - started,
        status: 0,
        code: undefined,
        headers: {},
        body: '',
        failure: undefined,
        ...fields,
      })
    }
    const req = http.request(
      { host: '127.0.0.1', port: target.port, method: options.method ?? 'GET', path: options.path, headers, agent: agentFor(target.port) },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        res.on('error', (error: NodeJS.ErrnoException) => finish({ failure: error.code ?? error.message }))
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8')
          let code: string | undefined
          try {
            code = (JSON.parse(body) as { error?: { code?: string } }).error?.code
          } catch {
            code = undefined
          }
          const status = res.statusCode ?? 0
          if (status >= 300) errorAnswers.push(`${status} ${JSON.stringify(res.headers)} ${body}`)
          finish({ status, code, headers: res.headers, body })
        })
      },
    )
    const timer = setTimeout(() => {
      finish({ failure: 'timeout' })
      req.destroy(new Error('client timeout'))
    }, timeoutMs)
    req.on('error', (error: NodeJS.ErrnoException) => finish({ failure: error.code ?? error.message }))
    req.end(payload)
  })
}

/** `GET /v1/whoami` with `Authorization: Bearer <token>`. */
export function callWithKey(target: { name: string; port: number }, token: string, timeoutMs?: number): Promise<Exchange> {
  return request(target, { path: '/v1/whoami', headers: { authorization: `Bearer ${token}` }, ...(timeoutMs === undefined ? {} : { timeoutMs }) })
}

export interface IssuedKeyBody {
  token: string
  key: { id: string; expiresAt: number | null; usageCount: number; state: string }
}

/** A POST to a replica's admin surface; throws unless it answers 200. */
export async function admin<T = Record<string, unknown>>(target: { name: string; port: number }, action: string, body: Record<string, unknown> = {}): Promise<T> {
  const response = await request(target, { method: 'POST', path: `/admin/${action}`, body, timeoutMs: 10_000 })
  if (response.status !== 200) {
    throw new Error(`admin ${action} on ${target.name} answered ${response.status || response.failure}: ${response.body.slice(0, 300)}`)
  }
  return JSON.parse(response.body) as T
}

/** Percentile (nearest rank) of a list of numbers. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
