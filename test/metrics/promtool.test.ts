import { spawnSync } from 'node:child_process'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import {
  createKeyring,
  createMetrics,
  FastTestHasher,
  generateToken,
  ManualClock,
  MemoryStore,
  newKeyId,
  StoreUnavailableError,
  type InvalidationListener,
  type KeyRecord,
} from '@keyrot/core'
import { apiKeyAuth, metricsHandler } from '@keyrot/express'
import express from 'express'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

/**
 * The exposition of an app that saw every verification outcome, checked by
 * Prometheus's own linter. `promtool` comes from Debian's `prometheus`
 * package (`.ci/run` installs it); without it this suite fails, it never skips.
 */

const MISSING_PROMTOOL =
  'promtool is not installed: install Debian package prometheus (apt-get install prometheus), which .ci/run does; this suite validates the /metrics exposition with it'

function promtool(exposition: string): { status: number | null; output: string } {
  const result = spawnSync('promtool', ['check', 'metrics'], { input: exposition, encoding: 'utf8', timeout: 20_000 })
  if ((result.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') throw new Error(MISSING_PROMTOOL)
  if (result.error) throw result.error
  return { status: result.status, output: `${result.stdout}${result.stderr}`.trim() }
}

/** A memory store whose reads can be made to fail and whose invalidation feed the test drives. */
class TestStore extends MemoryStore {
  down = false
  readonly #listeners = new Set<InvalidationListener>()
  override get(keyId: string): Promise<KeyRecord | null> {
    return this.down ? Promise.reject(new StoreUnavailableError('store down for the test')) : super.get(keyId)
  }
  override subscribe(listener: InvalidationListener): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }
  send(event: Parameters<InvalidationListener>[0]): void {
    for (const listener of this.#listeners) listener(event)
  }
}

const clock = new ManualClock()
const store = new TestStore()
const keyring = createKeyring({
  store,
  clock,
  hasher: new FastTestHasher(),
  prefix: 'sk_test',
  gracePeriod: '1h',
  rateLimit: { failuresPerIp: { limit: 4, window: '1m' }, ipBlock: { threshold: 8, window: '1h', duration: '1h' }, negativeCacheTtl: 0 },
})
const registry = new Registry()
createMetrics({ keyring, registry, tenantStates: true, splitInvalidKey: true })

let server: http.Server
let base = ''
const tokens: string[] = []
const keyIds: string[] = []
const statuses: Record<string, number[]> = {}
let keyCreatedAt = 0

/** Sends a request; returns the status and the error code of the body, if any. */
async function call(label: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; code: string | undefined }> {
  const response = await fetch(base + path, { headers })
  const body = (await response.json()) as { error?: { code?: string } }
  ;(statuses[label] ??= []).push(response.status)
  return { status: response.status, code: body.error?.code }
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

beforeAll(async () => {
  const app = express()
  app.get('/metrics', metricsHandler(registry))
  app.get('/v1/things', apiKeyAuth({ keyring }), (_req, res) => {
    res.json({ ok: true })
  })
  app.get('/v1/admin', apiKeyAuth({ keyring, scopes: ['admin'] }), (_req, res) => {
    res.json({ ok: true })
  })
  server = http.createServer(app)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  const main = await keyring.create({ tenantId: 'acme', name: 'main' })
  keyCreatedAt = main.key.createdAt
  const quota = await keyring.create({ tenantId: 'acme', name: 'quota', rateLimit: { limit: 2, window: '1m' } })
  const expiring = await keyring.create({ tenantId: 'globex', name: 'expiring', expiresAt: clock.now() + 60_000 })
  const revoked = await keyring.create({ tenantId: 'globex', name: 'revoked' })
  tokens.push(main.token, quota.token, expiring.token, revoked.token)
  keyIds.push(main.key.id, quota.key.id, expiring.key.id, revoked.key.id)

  await call('ok', '/v1/things', bearer(main.token)) // miss: store read and hashing
  await call('ok', '/v1/things', bearer(main.token)) // hit
  await call('scope', '/v1/admin', bearer(main.token))
  const next = await keyring.rotate(main.key.id)
  tokens.push(next.token)
  keyIds.push(next.key.id)
  await call('grace', '/v1/things', { 'x-api-key': main.token })
  await call('ok', '/v1/things', bearer(next.token))
  await keyring.revoke(revoked.key.id)
  await call('revoked', '/v1/things', bearer(revoked.token))
  clock.advance(120_000)
  await call('expired', '/v1/things', bearer(expiring.token))
  await call('missing', '/v1/things')
  await call('two credentials', '/v1/things', { ...bearer(next.token), 'x-api-key': quota.token })
  await call('malformed', '/v1/things', bearer('sk_test_not-a-token'))
  await call('unknown key', '/v1/things', bearer(generateToken('sk_test', newKeyId())))
  await call('wrong secret', '/v1/things', bearer(generateToken('sk_test', next.key.id)))
  store.down = true
  await call('store down', '/v1/things', bearer(quota.token))
  store.down = false
  // The store circuit opened on the failure; its background probe (real timers) closes it.
  for (let waited = 0; !keyring.outageStats().storeUp && waited < 3_000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50))
  for (let i = 0; i < 3; i++) await call('quota', '/v1/things', bearer(quota.token))
  store.send({ type: 'key', keyId: next.key.id, sentAt: clock.now() - 20 })
  store.send({ type: 'key', keyId: next.key.id })
  store.send({ type: 'reset', reason: 'reconnected' })
  // Last: failures from this IP, a minute apart whenever the per-IP limit
  // answers, until the IP block (8 failures an hour) trips. Bounded.
  for (let i = 0; i < 30; i++) {
    const { code } = await call('flood', '/v1/things', bearer(generateToken('sk_test', newKeyId())))
    if (code === 'KEYROT_IP_BLOCKED') break
    if (code === 'KEYROT_RATE_LIMITED') clock.advance(61_000)
  }
})

afterAll(async () => {
  await new Promise<void>((resolve) => {
    server?.closeAllConnections()
    server ? server.close(() => resolve()) : resolve()
  })
  await keyring.close()
})

describe('the /metrics exposition', () => {
  it('answered every request as expected', () => {
    expect(statuses).toMatchObject({
      ok: [200, 200, 200],
      scope: [403],
      grace: [200],
      revoked: [401],
      expired: [401],
      missing: [401],
      'two credentials': [400],
      malformed: [401],
      'unknown key': [401],
      'wrong secret': [401],
      'store down': [503],
      quota: [200, 200, 429],
    })
    expect(statuses['flood']).toContain(429)
  })

  it('moved every verification metric', async () => {
    const response = await fetch(`${base}/metrics`)
    expect(response.headers.get('content-type')).toBe(registry.contentType)
    const text = await response.text()
    const value = (series: string) => {
      const line = text.split('\n').find((l) => l.startsWith(`${series} `))
      if (line === undefined) throw new Error(`series ${series} not in the exposition`)
      return Number(line.slice(series.length + 1))
    }
    expect(value('keyrot_verifications_total{result="ok"}')).toBe(6)
    for (const code of [
      'KEYROT_INSUFFICIENT_SCOPE',
      'KEYROT_KEY_REVOKED',
      'KEYROT_KEY_EXPIRED',
      'KEYROT_MISSING_KEY',
      'KEYROT_INVALID_REQUEST',
      'KEYROT_MALFORMED_TOKEN',
      'KEYROT_KEY_NOT_FOUND',
      'KEYROT_INVALID_SECRET',
      'KEYROT_STORE_UNAVAILABLE',
      'KEYROT_RATE_LIMITED',
    ]) {
      expect(value(`keyrot_verifications_total{result="${code}"}`), code).toBeGreaterThanOrEqual(1)
    }
    expect(value('keyrot_grace_verifications_total')).toBe(1)
    expect(value('keyrot_verification_duration_seconds_count{result="ok",cache="hit"}')).toBeGreaterThanOrEqual(1)
    expect(value('keyrot_verification_duration_seconds_count{result="ok",cache="miss"}')).toBeGreaterThanOrEqual(1)
    expect(value('keyrot_verification_duration_seconds_count{result="error",cache="none"}')).toBeGreaterThanOrEqual(8)
    expect(value('keyrot_verifications_total{result="KEYROT_IP_BLOCKED"}')).toBeGreaterThanOrEqual(1)
    expect(value('keyrot_ratelimit_blocks_total{policy="per-key",code="KEYROT_RATE_LIMITED"}')).toBe(1)
    expect(value('keyrot_ratelimit_blocks_total{policy="ip-failures",code="KEYROT_RATE_LIMITED"}')).toBeGreaterThanOrEqual(1)
    expect(value('keyrot_ratelimit_blocks_total{policy="ip-block",code="KEYROT_IP_BLOCKED"}')).toBeGreaterThanOrEqual(1)
    expect(value('keyrot_invalidations_received_total')).toBe(2)
    expect(value('keyrot_invalidation_lag_seconds_count')).toBe(1)
    expect(value('keyrot_cache_resets_total')).toBe(1)
    expect(value('keyrot_keys{tenant="acme",state="grace"}')).toBe(1)
    expect(value('keyrot_keys{tenant="globex",state="expired"}')).toBe(1)
    expect(value('keyrot_keys{tenant="globex",state="revoked"}')).toBe(1)
    expect(value('keyrot_key_changes_total{action="created"}')).toBe(4)
    expect(value('keyrot_next_grace_deadline_timestamp_seconds')).toBe((keyCreatedAt + 3_600_000) / 1000)
    expect(value('keyrot_cache_entries{kind="proofs"}')).toBeGreaterThanOrEqual(1)
  })

  it('holds no token, key id or client IP', async () => {
    const text = await (await fetch(`${base}/metrics`)).text()
    expect(tokens.length).toBe(5)
    for (const secret of [...tokens, ...keyIds, '127.0.0.1']) expect(text).not.toContain(secret)
  })

  it('passes `promtool check metrics` with no lint problem', async () => {
    const text = await (await fetch(`${base}/metrics`)).text()
    const { status, output } = promtool(text)
    expect(output).toBe('')
    expect(status).toBe(0)
  })

  it('promtool itself rejects a broken exposition (the check can fail)', () => {
    const { status, output } = promtool('# HELP things_done Things.\n# TYPE things_done counter\nthings_done 1\n')
    expect(status).not.toBe(0)
    expect(output).toMatch(/_total/)
  })
})
