import { createKeyring, FastTestHasher, MemoryStore } from '@keyrot/core'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createServer, listen } from '../../packages/cli/src/index.js'
import { ensureBuilt, killChildren, runKeyrot, startServe } from '../cli/keyrot-bin.js'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'
import { call, unknownIdToken, wrongSecretFor } from './serve-support.js'

/**
 * Issue 14, finding 2 (the public /metrics part): anyone who could reach
 * `keyrot serve` could scrape /metrics, and the failure label of one probe
 * told whether a key id exists. Now /metrics is only on a separate listener,
 * loopback by default.
 */

let redis: RedisServer

beforeAll(() => ensureBuilt(), 240_000)
afterAll(async () => {
  killChildren()
  await redis?.stop()
})

/** The failure counters, as one string to compare scrapes. */
function failureSeries(text: string): Record<string, number> {
  const series: Record<string, number> = {}
  for (const match of text.matchAll(/^keyrot_verifications_total\{result="(KEYROT_[A-Z_]+)"\} (\d+)/gm)) series[match[1] as string] = Number(match[2])
  return series
}

describe('finding 2: /metrics is no oracle for outsiders', () => {
  it('before: a public /metrics tells an outsider whether a key id exists; after: the API port has no /metrics, the metrics listener is on loopback', async () => {
    // Before: /metrics on the API app with the precise failure codes, as serve had it.
    const keyring = createKeyring({ store: new MemoryStore(), hasher: new FastTestHasher(), rateLimit: false })
    const existing = (await keyring.create({ tenantId: 'acme', name: 'victim' })).token
    const unknown = unknownIdToken()
    const old = await listen(createServer({ keyring, registry: new Registry(), metricsRoute: true, metrics: { splitInvalidKey: true } }), { port: 0, onClose: () => keyring.close() })
    let oracle: { existingId: Record<string, number>; unknownId: Record<string, number>; publicCodes: string[] }
    try {
      const scrape = async () => failureSeries((await call(old.url, 'GET', '/metrics')).text)
      const start = await scrape()
      const first = await call(old.url, 'GET', '/v1/whoami', { token: wrongSecretFor(existing) })
      const middle = await scrape()
      const second = await call(old.url, 'GET', '/v1/whoami', { token: unknown })
      const end = await scrape()
      const diff = (a: Record<string, number>, b: Record<string, number>) =>
        Object.fromEntries(Object.entries(b).filter(([code, value]) => value !== (a[code] ?? 0)).map(([code, value]) => [code, value - (a[code] ?? 0)]))
      oracle = { existingId: diff(start, middle), unknownId: diff(middle, end), publicCodes: [first.body.error.code, second.body.error.code] }
    } finally {
      await old.close()
    }

    redis = await startRedisServer()
    const bootstrap = await runKeyrot(['create', '--redis', redis.url, '--tenant', 'acme', '--name', 'client', '--json'])
    expect(bootstrap.code, bootstrap.stderr).toBe(0)
    const token = JSON.parse(bootstrap.stdout).token as string
    const serve = await startServe(['--redis', redis.url])
    let publicMetrics: number
    let privateMetrics: string
    let variants: number[] = []
    try {
      expect((await call(serve.url, 'GET', '/v1/whoami', { token })).status).toBe(200)
      publicMetrics = (await call(serve.url, 'GET', '/metrics')).status
      // Nor under another spelling.
      for (const path of ['/metrics/', '/METRICS', '/metrics?format=text', '/./metrics', '/v1/../metrics']) variants.push((await call(serve.url, 'GET', path)).status)
      expect(serve.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
      privateMetrics = (await call(serve.metricsUrl as string, 'GET', '')).text
      expect((await call(serve.metricsUrl!.replace(/\/metrics$/, ''), 'GET', '/v1/whoami', { token })).status).toBe(404)
    } finally {
      serve.child.kill('SIGTERM')
      await serve.exited
    }
    const help = (await runKeyrot(['serve', '--help'])).stdout.replace(/\s+/g, ' ')
    const defaultAddress = /--metrics-listen <host:port\|off> .*?default: \$KEYROT_METRICS_LISTEN or ([\d.:]+)\)/.exec(help)?.[1]

    console.log(
      `[security] finding 2 before: public /metrics 200; one probe of an existing id moved ${JSON.stringify(oracle.existingId)}, of an unknown id ${JSON.stringify(oracle.unknownId)}, while both answers read ${oracle.publicCodes.join('/')}`,
    )
    console.log(`[security] finding 2 after: API port /metrics=${publicMetrics} (variants ${variants.join(',')}); metrics listener ${serve.metricsUrl} (default ${defaultAddress}) serves ${privateMetrics.length} bytes`)
    expect(oracle.publicCodes).toEqual(['KEYROT_INVALID_KEY', 'KEYROT_INVALID_KEY'])
    expect(oracle.existingId).not.toEqual(oracle.unknownId)
    expect(publicMetrics).toBe(404)
    expect(variants.every((status) => status === 404)).toBe(true)
    expect(privateMetrics).toMatch(/^keyrot_verifications_total\{result="ok"\} 1/m)
    expect(defaultAddress).toBe('127.0.0.1:9464')
  }, 120_000)

  it('--metrics-listen off serves no metrics at all; KEYROT_METRICS_LISTEN sets the address; a malformed address is a usage error', async () => {
    redis ??= await startRedisServer()
    const serve = await startServe(['--redis', redis.url, '--metrics-listen', 'off'])
    try {
      expect(serve.metricsUrl).toBeNull()
      expect(serve.output()).toContain('"event":"metrics.off"')
      expect((await call(serve.url, 'GET', '/metrics')).status).toBe(404)
    } finally {
      serve.child.kill('SIGTERM')
      await serve.exited
    }
    const fromEnv = await startServe(['--redis', redis.url], { env: { KEYROT_METRICS_LISTEN: '127.0.0.1:0' } })
    try {
      expect(fromEnv.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
      expect((await call(fromEnv.metricsUrl as string, 'GET', '')).status).toBe(200)
    } finally {
      fromEnv.child.kill('SIGTERM')
      await fromEnv.exited
    }
    const bad = await runKeyrot(['serve', '--redis', redis.url, '--metrics-listen', 'everywhere'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('host:port')
    const badEnv = await runKeyrot(['serve', '--redis', redis.url], { env: { KEYROT_METRICS_LISTEN: '9464' } })
    expect(badEnv.code).toBe(2)
    expect(badEnv.stderr).toContain('KEYROT_METRICS_LISTEN')
  }, 60_000)
})
