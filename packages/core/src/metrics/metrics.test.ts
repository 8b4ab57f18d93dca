import { Registry, register as globalRegistry } from 'prom-client'
import { afterEach, describe, expect, it } from 'vitest'
import { ManualClock } from '../clock.js'
import { ERROR_CODES, MissingKeyError, StoreUnavailableError } from '../errors.js'
import { FastTestHasher } from '../hash/hasher.js'
import { createKeyring, type Keyring } from '../lifecycle/keyring.js'
import { generateToken, newKeyId } from '../token/format.js'
import { MemoryStore } from '../store/memory-store.js'
import type { InvalidationListener, KeyStore } from '../store/store.js'
import { createMetrics, type KeyrotMetrics, type MetricsOptions } from './metrics.js'

const open: Array<{ keyring: Keyring; metrics?: KeyrotMetrics }> = []

afterEach(async () => {
  for (const { keyring, metrics } of open.splice(0)) {
    metrics?.close()
    await keyring.close()
  }
})

function setup(options: Omit<MetricsOptions, 'keyring'> & { store?: KeyStore } = {}) {
  const clock = new ManualClock()
  const { store, ...metricsOptions } = options
  const keyring = createKeyring({ store: store ?? new MemoryStore(), hasher: new FastTestHasher(), clock, gracePeriod: '1h' })
  const registry = metricsOptions.registry ?? new Registry()
  const metrics = createMetrics({ keyring, registry, ...metricsOptions })
  open.push({ keyring, metrics })
  return { clock, keyring, registry, metrics }
}

type Sample = { value: number; labels: Record<string, string | number>; metricName?: string }

async function samples(registry: Registry, name: string): Promise<Sample[]> {
  const metric = registry.getSingleMetric(name)
  if (!metric) throw new Error(`metric ${name} is not registered`)
  return (await metric.get()).values as Sample[]
}

/** The value of one series; `suffix` picks a histogram's `_count`/`_sum`. */
async function valueOf(registry: Registry, name: string, labels: Record<string, string> = {}, suffix = ''): Promise<number | undefined> {
  const found = (await samples(registry, name)).find(
    (sample) =>
      (suffix === '' ? sample.metricName === undefined || sample.metricName === name : sample.metricName === name + suffix) &&
      Object.entries(labels).every(([label, value]) => sample.labels[label] === value) &&
      Object.keys(sample.labels).filter((label) => label !== 'le').length === Object.keys(labels).length,
  )
  return found?.value
}

describe('createMetrics: verifications', () => {
  it('counts a successful verification and times it as a cache miss, then as a hit', async () => {
    const { keyring, registry } = setup()
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci' })

    expect((await keyring.verify(token)).ok).toBe(true)
    expect(await valueOf(registry, 'keyrot_verifications_total', { result: 'ok' })).toBe(1)
    expect(await valueOf(registry, 'keyrot_verification_duration_seconds', { result: 'ok', cache: 'miss' }, '_count')).toBe(1)
    expect(await valueOf(registry, 'keyrot_verification_duration_seconds', { result: 'ok', cache: 'hit' }, '_count')).toBe(0)

    const second = await keyring.verify(token)
    expect(second.ok && second.cached).toBe(true)
    expect(await valueOf(registry, 'keyrot_verifications_total', { result: 'ok' })).toBe(2)
    expect(await valueOf(registry, 'keyrot_verification_duration_seconds', { result: 'ok', cache: 'hit' }, '_count')).toBe(1)
    const sum = await valueOf(registry, 'keyrot_verification_duration_seconds', { result: 'ok', cache: 'hit' }, '_sum')
    expect(sum).toBeGreaterThan(0)
    expect(sum).toBeLessThan(5)
  })

  it('reports cache size and the hit ratio of successful verifications', async () => {
    const { keyring, registry } = setup({ splitInvalidKey: true })
    expect(await valueOf(registry, 'keyrot_cache_hit_ratio')).toBeNaN()
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    await keyring.verify(token)
    await keyring.verify(token)
    await keyring.verify(token)
    await keyring.verify(token)
    expect(await valueOf(registry, 'keyrot_cache_hit_ratio')).toBe(0.75)
    expect(await valueOf(registry, 'keyrot_cache_entries', { kind: 'proofs' })).toBe(1)
    expect(await valueOf(registry, 'keyrot_cache_entries', { kind: 'states' })).toBe(1)
  })

  it('counts every failure by its code, and every code starts at zero, when told to split invalid keys', async () => {
    const { keyring, registry, clock } = setup({ splitInvalidKey: true })
    for (const code of Object.keys(ERROR_CODES)) {
      const admin = code === 'KEYROT_ALREADY_ROTATED' || code === 'KEYROT_INVALID_INPUT'
      expect(await valueOf(registry, 'keyrot_verifications_total', { result: code })).toBe(admin ? undefined : 0)
    }
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci', scopes: ['read'], expiresAt: clock.now() + 60_000 })
    const wrongSecret = generateToken(key.prefix, key.id)
    const revoked = await keyring.create({ tenantId: 'acme', name: 'old' })
    await keyring.revoke(revoked.key.id)

    await keyring.verify('not a token')
    await keyring.verify(wrongSecret)
    await keyring.verify(token, { scopes: ['write'] })
    await keyring.verify(revoked.token)
    keyring.noteRequestFailure(new MissingKeyError())
    clock.advance(120_000)
    await keyring.verify(token)
    await keyring.verify(generateToken(key.prefix, newKeyId()))

    const results = Object.fromEntries(
      (await samples(registry, 'keyrot_verifications_total')).filter((s) => s.value > 0).map((s) => [s.labels['result'], s.value]),
    )
    expect(results).toEqual({
      KEYROT_MALFORMED_TOKEN: 1,
      KEYROT_INVALID_SECRET: 1,
      KEYROT_INSUFFICIENT_SCOPE: 1,
      KEYROT_KEY_REVOKED: 1,
      KEYROT_MISSING_KEY: 1,
      KEYROT_KEY_EXPIRED: 1,
      KEYROT_KEY_NOT_FOUND: 1,
    })
    // The request refused before verify() is counted but not timed.
    expect(await valueOf(registry, 'keyrot_verification_duration_seconds', { result: 'error', cache: 'none' }, '_count')).toBe(6)
  })

  it('folds a malformed token, an unknown key id and a wrong secret into KEYROT_INVALID_KEY by default, untimed', async () => {
    const { keyring, registry } = setup()
    for (const code of ['KEYROT_MALFORMED_TOKEN', 'KEYROT_KEY_NOT_FOUND', 'KEYROT_INVALID_SECRET']) {
      expect(await valueOf(registry, 'keyrot_verifications_total', { result: code })).toBeUndefined()
    }
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const before = await registry.metrics()
    await keyring.verify(generateToken(key.prefix, key.id))
    const afterExisting = await registry.metrics()
    await keyring.verify(generateToken(key.prefix, newKeyId()))
    await keyring.verify('not a token')
    expect(await valueOf(registry, 'keyrot_verifications_total', { result: 'KEYROT_INVALID_KEY' })).toBe(3)
    expect(await valueOf(registry, 'keyrot_verification_duration_seconds', { result: 'error', cache: 'none' }, '_count')).toBe(0)
    expect(await valueOf(registry, 'keyrot_cache_entries', { kind: 'states' })).toBeUndefined()
    // A probe of an existing id and of an unknown id move the exposition alike.
    const afterUnknown = await registry.metrics()
    const moved = (a: string, b: string) => b.split('\n').filter((line) => !a.includes(line))
    expect(moved(before, afterExisting)).toEqual(['keyrot_verifications_total{result="KEYROT_INVALID_KEY"} 1'])
    expect(moved(afterExisting, afterUnknown).filter((line) => !line.startsWith('keyrot_verifications_total{result="KEYROT_INVALID_KEY"}'))).toEqual([])
  })

  it('counts a store outage', async () => {
    const store = new MemoryStore()
    const { keyring, registry } = setup({ store })
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const get = store.get.bind(store)
    store.get = async () => {
      throw new StoreUnavailableError('down for the test', { keyId: key.id })
    }
    await expect(keyring.verify(token)).rejects.toBeInstanceOf(StoreUnavailableError)
    store.get = get
    expect(await valueOf(registry, 'keyrot_verifications_total', { result: 'KEYROT_STORE_UNAVAILABLE' })).toBe(1)
  })
})

describe('createMetrics: grace, rate limits, admin actions', () => {
  it('counts every request made with a key in its grace period, though the grace event is throttled', async () => {
    const { keyring, registry } = setup()
    let graceEvents = 0
    keyring.on('key.used_in_grace', () => graceEvents++)
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const next = await keyring.rotate(key.id)
    for (let i = 0; i < 3; i++) expect((await keyring.verify(token)).ok).toBe(true)
    await keyring.verify(next.token)
    expect(graceEvents).toBe(1)
    expect(await valueOf(registry, 'keyrot_grace_verifications_total')).toBe(3)
    expect(await valueOf(registry, 'keyrot_verifications_total', { result: 'ok' })).toBe(4)
  })

  it('counts rate-limit blocks by policy and code', async () => {
    const { keyring, registry, clock } = setup()
    const blocked = { keyId: undefined, clientIp: '127.0.0.1', retryAfterMs: 1000, at: clock.now() }
    keyring.emit('ratelimit.blocked', { ...blocked, code: 'KEYROT_RATE_LIMITED', policy: 'per-key', scope: 'key', keyId: 'k' })
    keyring.emit('ratelimit.blocked', { ...blocked, code: 'KEYROT_IP_BLOCKED', policy: 'ip-block', scope: 'ip' })
    keyring.emit('ratelimit.blocked', { ...blocked, code: 'KEYROT_IP_BLOCKED', policy: 'ip-block', scope: 'ip' })
    keyring.emit('ratelimit.blocked', { ...blocked, code: 'KEYROT_RATE_LIMITED', scope: 'ip' })
    expect(await valueOf(registry, 'keyrot_ratelimit_blocks_total', { policy: 'per-key', code: 'KEYROT_RATE_LIMITED' })).toBe(1)
    expect(await valueOf(registry, 'keyrot_ratelimit_blocks_total', { policy: 'ip-block', code: 'KEYROT_IP_BLOCKED' })).toBe(2)
    expect(await valueOf(registry, 'keyrot_ratelimit_blocks_total', { policy: 'ip-failures', code: 'KEYROT_RATE_LIMITED' })).toBe(0)
    expect(await valueOf(registry, 'keyrot_ratelimit_blocks_total', { policy: 'key-failures', code: 'KEYROT_RATE_LIMITED' })).toBe(0)
    expect(await valueOf(registry, 'keyrot_ratelimit_blocks_total', { policy: 'other', code: 'KEYROT_RATE_LIMITED' })).toBe(1)
  })

  it('counts real refusals of the keyring’s abuse protection', async () => {
    const clock = new ManualClock()
    const keyring = createKeyring({
      hasher: new FastTestHasher(),
      clock,
      rateLimit: { failuresPerIp: { limit: 2, window: '1m' }, perKey: false, negativeCacheTtl: 0 },
    })
    const registry = new Registry()
    open.push({ keyring, metrics: createMetrics({ keyring, registry }) })
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci', rateLimit: { limit: 1, window: '1m' } })
    expect((await keyring.verify(token)).ok).toBe(true)
    expect(await keyring.verify(token)).toMatchObject({ ok: false, error: { code: 'KEYROT_RATE_LIMITED' } })
    for (let i = 0; i < 3; i++) await keyring.verify(generateToken('sk_live', newKeyId()), { clientIp: '127.0.0.1' })
    expect(await valueOf(registry, 'keyrot_ratelimit_blocks_total', { policy: 'per-key', code: 'KEYROT_RATE_LIMITED' })).toBe(1)
    expect(await valueOf(registry, 'keyrot_ratelimit_blocks_total', { policy: 'ip-failures', code: 'KEYROT_RATE_LIMITED' })).toBe(1)
    expect(await valueOf(registry, 'keyrot_verifications_total', { result: 'KEYROT_RATE_LIMITED' })).toBe(2)
  })

  it('counts admin actions', async () => {
    const { keyring, registry, clock } = setup()
    const a = await keyring.create({ tenantId: 'acme', name: 'a' })
    const b = await keyring.create({ tenantId: 'acme', name: 'b' })
    await keyring.rotate(a.key.id)
    await keyring.emergencyRotate(b.key.id, { incidentId: 'INC-1' })
    const c = await keyring.create({ tenantId: 'acme', name: 'c' })
    await keyring.setExpiry(c.key.id, clock.now() + 1000)
    await keyring.revoke(c.key.id)
    const actions = Object.fromEntries((await samples(registry, 'keyrot_key_changes_total')).map((s) => [s.labels['action'], s.value]))
    expect(actions).toEqual({ created: 3, rotated: 1, emergency_rotated: 1, expiry_changed: 1, revoked: 1 })
  })
})

describe('createMetrics: invalidation feed', () => {
  function feedStore() {
    const store = new MemoryStore()
    const listeners = new Set<InvalidationListener>()
    const subscribe = (listener: InvalidationListener) => {
      listeners.add(listener)
      return () => listeners.delete(listener)
    }
    return { store: Object.assign(store, { subscribe }), send: (event: Parameters<InvalidationListener>[0]) => listeners.forEach((l) => l(event)) }
  }

  it('counts invalidation messages and measures the lag of stamped ones', async () => {
    const { store, send } = feedStore()
    const { registry, clock } = setup({ store })
    send({ type: 'key', keyId: 'k1', sentAt: clock.now() - 250 })
    send({ type: 'key', keyId: 'k2', sentAt: clock.now() - 1500 })
    send({ type: 'key', keyId: 'k3' })
    expect(await valueOf(registry, 'keyrot_invalidations_received_total')).toBe(3)
    expect(await valueOf(registry, 'keyrot_invalidation_lag_seconds', {}, '_count')).toBe(2)
    expect(await valueOf(registry, 'keyrot_invalidation_lag_seconds', {}, '_sum')).toBeCloseTo(1.75, 6)
    const buckets = (await samples(registry, 'keyrot_invalidation_lag_seconds')).filter((s) => s.metricName?.endsWith('_bucket'))
    expect(buckets.find((s) => s.labels['le'] === 0.25)?.value).toBe(1)
    expect(buckets.find((s) => s.labels['le'] === 1)?.value).toBe(1)
    expect(buckets.find((s) => s.labels['le'] === 2.5)?.value).toBe(2)

    send({ type: 'reset', reason: 'reconnected' })
    expect(await valueOf(registry, 'keyrot_cache_resets_total')).toBe(1)
  })

  it("counts another keyring's changes arriving through a shared store", async () => {
    const store = new MemoryStore()
    const { keyring: watched, registry } = setup({ store })
    const writer = createKeyring({ store, hasher: new FastTestHasher() })
    open.push({ keyring: writer })
    const { key } = await writer.create({ tenantId: 'acme', name: 'ci' })
    await writer.revoke(key.id)
    expect(watched).toBeDefined()
    expect(await valueOf(registry, 'keyrot_invalidations_received_total')).toBeGreaterThanOrEqual(1)
  })
})

describe('createMetrics: keys by tenant and state', () => {
  it('is off by default', async () => {
    const { registry } = setup()
    expect(registry.getSingleMetric('keyrot_keys')).toBeUndefined()
  })

  it('counts keys by tenant and state at scrape time', async () => {
    const { keyring, registry, clock } = setup({ tenantStates: true })
    const a = await keyring.create({ tenantId: 'acme', name: 'a', expiresAt: clock.now() + 1000 })
    const b = await keyring.create({ tenantId: 'acme', name: 'b' })
    await keyring.create({ tenantId: 'globex', name: 'c' })
    await keyring.rotate(b.key.id)
    const r = await keyring.create({ tenantId: 'globex', name: 'r' })
    await keyring.revoke(r.key.id)
    clock.advance(2000)
    expect(a.key.tenantId).toBe('acme')

    expect(await valueOf(registry, 'keyrot_keys', { tenant: 'acme', state: 'active' })).toBe(1)
    expect(await valueOf(registry, 'keyrot_keys', { tenant: 'acme', state: 'grace' })).toBe(1)
    expect(await valueOf(registry, 'keyrot_keys', { tenant: 'acme', state: 'expired' })).toBe(1)
    expect(await valueOf(registry, 'keyrot_keys', { tenant: 'acme', state: 'revoked' })).toBe(0)
    expect(await valueOf(registry, 'keyrot_keys', { tenant: 'globex', state: 'active' })).toBe(1)
    expect(await valueOf(registry, 'keyrot_keys', { tenant: 'globex', state: 'revoked' })).toBe(1)

    await registry.metrics() // a full scrape fills the deadline gauge from the same listing
    expect(await valueOf(registry, 'keyrot_next_grace_deadline_timestamp_seconds')).toBe((b.key.createdAt + 3_600_000) / 1000)

    await keyring.revoke(b.key.id)
    const text = await registry.metrics()
    expect(text).toContain('keyrot_keys{tenant="acme",state="grace"} 0')
    expect(text).toContain('keyrot_keys{tenant="acme",state="revoked"} 1')
    expect(text).toMatch(/^keyrot_next_grace_deadline_timestamp_seconds \+Inf$/m)
  })

  it('keeps the largest tenants and sums the rest under _other', async () => {
    const { keyring, registry } = setup({ tenantStates: true, maxTenants: 2 })
    for (const [tenant, count] of [['big', 3], ['mid', 2], ['small1', 1], ['small2', 1]] as const) {
      for (let i = 0; i < count; i++) await keyring.create({ tenantId: tenant, name: `k${i}` })
    }
    const tenants = new Set((await samples(registry, 'keyrot_keys')).map((s) => s.labels['tenant']))
    expect(tenants).toEqual(new Set(['big', 'mid', '_other']))
    expect(await valueOf(registry, 'keyrot_keys', { tenant: '_other', state: 'active' })).toBe(2)
    expect(await valueOf(registry, 'keyrot_keys', { tenant: 'big', state: 'active' })).toBe(3)
  })

  it('survives a store failure during a scrape: the gauge is empty and the failure counted', async () => {
    const store = new MemoryStore()
    const { keyring, registry } = setup({ store, tenantStates: true })
    await keyring.create({ tenantId: 'acme', name: 'a' })
    store.list = async () => {
      throw new StoreUnavailableError('down for the test')
    }
    const text = await registry.metrics()
    expect(text).toContain('keyrot_keys_collect_errors_total 1')
    // prom-client writes NaN as "Nan"; Prometheus parses it case-insensitively.
    expect(text).toMatch(/^keyrot_next_grace_deadline_timestamp_seconds nan$/im)
    expect(await samples(registry, 'keyrot_keys')).toEqual([])
  })
})

describe('createMetrics: labels and secrets', () => {
  it('never exposes key ids, client IPs or tokens, and has no tenant label by default', async () => {
    const { keyring, registry } = setup()
    const { token, key } = await keyring.create({ tenantId: 'tenant-xyz', name: 'ci' })
    const next = await keyring.rotate(key.id)
    await keyring.verify(token, { clientIp: '127.0.0.1', userAgent: 'curl/8' })
    await keyring.verify(next.token, { clientIp: '::1', userAgent: 'curl/8' })
    await keyring.verify(next.token.slice(0, -1), { clientIp: '127.0.0.1' })
    const text = await registry.metrics()
    for (const secretOrId of [token, next.token, key.id, next.key.id, key.familyId, '127.0.0.1', '::1', 'tenant-xyz', 'curl/8']) {
      expect(text).not.toContain(secretOrId)
    }
    const labelNames = new Set([...text.matchAll(/[{,]([a-z_]+)="/g)].map((m) => m[1]))
    expect(labelNames).toEqual(new Set(['result', 'cache', 'le', 'policy', 'code', 'action', 'kind']))
  })
})

describe('createMetrics: lifecycle and options', () => {
  it('uses the global registry by default and removes its metrics on close', async () => {
    const keyring = createKeyring({ hasher: new FastTestHasher() })
    open.push({ keyring })
    const metrics = createMetrics({ keyring })
    expect(metrics.registry).toBe(globalRegistry)
    expect(globalRegistry.getSingleMetric('keyrot_verifications_total')).toBeDefined()
    metrics.close()
    metrics.close()
    expect(globalRegistry.getSingleMetric('keyrot_verifications_total')).toBeUndefined()
  })

  it('stops counting after close, and a new set can join the same registry', async () => {
    const { keyring, registry, metrics } = setup()
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    metrics.close()
    expect(registry.getMetricsAsArray()).toEqual([])
    await keyring.verify(token)
    const again = createMetrics({ keyring, registry })
    open.push({ keyring, metrics: again })
    expect(await valueOf(registry, 'keyrot_verifications_total', { result: 'ok' })).toBe(0)
    await keyring.verify(token)
    expect(await valueOf(registry, 'keyrot_verifications_total', { result: 'ok' })).toBe(1)
  })

  it('applies a custom prefix to every metric', async () => {
    const { registry } = setup({ prefix: 'api_keys_' })
    const names = registry.getMetricsAsArray().map((m) => m.name)
    expect(names.length).toBeGreaterThan(5)
    for (const metricName of names) expect(metricName.startsWith('api_keys_')).toBe(true)
  })

  it('rejects impossible options with a TypeError naming the option', () => {
    const keyring = createKeyring({ hasher: new FastTestHasher() })
    open.push({ keyring })
    const registry = new Registry()
    expect(() => createMetrics({ keyring, registry, prefix: 'bad-prefix' })).toThrow(/prefix/)
    expect(() => createMetrics({ keyring, registry, maxTenants: -1 })).toThrow(/maxTenants/)
    expect(() => createMetrics({ keyring, registry, durationBuckets: [0.1, 0.05] })).toThrow(/durationBuckets/)
    expect(() => createMetrics({ keyring, registry, lagBuckets: [] })).toThrow(/lagBuckets/)
    expect(() => createMetrics({ keyring: {} as Keyring, registry })).toThrow(TypeError)
    expect(() => createMetrics({ keyring, registry: {} as Registry })).toThrow(/registry/)
    expect(registry.getMetricsAsArray()).toEqual([])
  })
})
