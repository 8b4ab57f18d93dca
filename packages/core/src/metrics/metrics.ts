import { Counter, Gauge, Histogram, register as globalRegistry, type Registry } from 'prom-client'
import { ERROR_CODES } from '../errors.js'
import type { KeyringEventName, KeyringListener } from '../events.js'
import type { Keyring } from '../lifecycle/keyring.js'
import { errorFields } from '../logger.js'
import { registerProofMetrics } from './proof-metrics.js'
import type { KeyState } from '../types.js'
import { registerOutageMetrics } from './outage-metrics.js'
import { countTenantFailures } from './tenant-failures.js'

/** Seconds. Cached verifies take microseconds, an Argon2 proof tens of milliseconds. */
export const DEFAULT_DURATION_BUCKETS: readonly number[] = Object.freeze([
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
])

/** Seconds, from publish on one replica to receipt on another. */
export const DEFAULT_LAG_BUCKETS: readonly number[] = Object.freeze([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10])

/** Label value of `keyrot_keys` for every tenant past `maxTenants`. Cannot clash: tenant ids start with a letter or digit. */
export const OTHER_TENANTS = '_other'

const KEY_STATES: readonly KeyState[] = ['active', 'grace', 'expired', 'revoked']
const ADMIN_ACTIONS = ['created', 'rotated', 'revoked', 'emergency_rotated', 'expiry_changed'] as const
const METRIC_PREFIX = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
/** Codes only admin calls return: not pre-initialised in `verifications_total` (still counted if ever reported). */
const ADMIN_ONLY_CODES: ReadonlySet<string> = new Set(['KEYROT_ALREADY_ROTATED', 'KEYROT_INVALID_INPUT'])
/** Each rate-limit policy with the code it answers. An event without a policy counts as `other`. */
const RATE_LIMIT_POLICIES = [
  ['ip-block', 'KEYROT_IP_BLOCKED'],
  ['ip-failures', 'KEYROT_RATE_LIMITED'],
  ['network-failures', 'KEYROT_RATE_LIMITED'],
  ['key-failures', 'KEYROT_RATE_LIMITED'],
  ['per-key', 'KEYROT_RATE_LIMITED'],
] as const

export interface MetricsOptions {
  /** The keyring to observe. Its events feed the counters; its cache and store feed the gauges at scrape time. */
  keyring: Keyring
  /** Registry the metrics join. Default: prom-client's global `register`. */
  registry?: Registry
  /** Prefix of every metric name. Default `'keyrot_'`; `''` for none. */
  prefix?: string
  /**
   * Export `keyrot_keys{tenant,state}`. Each scrape then lists every key in
   * the store (O(keys) read): leave it off for stores with many keys, or
   * scrape this registry less often. Default `false`.
   */
  tenantStates?: boolean
  /**
   * Most tenants that get their own `tenant` label in `keyrot_keys`; the
   * others (fewest keys first) are summed under `tenant="_other"`, so the
   * series count stays bounded. Default `50`. `0`: every key is counted
   * under `_other` (per-state totals only).
   */
  maxTenants?: number
  /**
   * Export `keyrot_tenant_failures_total{tenant}` (failed verifications of a
   * tenant's keys; the first `maxTenants` tenants seen get their own label).
   * It tells readers of `/metrics` which tenant a failing key id belongs to.
   * Default `false`.
   */
  tenantFailures?: boolean
  /** Buckets (seconds) of the verification duration histogram. Default {@link DEFAULT_DURATION_BUCKETS}. */
  durationBuckets?: readonly number[]
  /** Buckets (seconds) of the invalidation delivery lag histogram. Default {@link DEFAULT_LAG_BUCKETS}. */
  lagBuckets?: readonly number[]
  /**
   * Count a malformed token, an unknown key id and a wrong secret under
   * their own codes, time failed verifications, and export
   * `keyrot_cache_entries{kind="states"}`. Default `false`: the three fold
   * into `result="KEYROT_INVALID_KEY"` (what HTTP clients see), failures are
   * not timed and the states gauge is left out, since each of these tells
   * whoever reads the metrics whether a probed key id exists (an unknown id
   * costs no Argon2 run and caches no state). Turn it on only where the
   * metrics are private.
   */
  splitInvalidKey?: boolean
}

interface ResolvedMetricsOptions {
  keyring: Keyring
  registry: Registry
  prefix: string
  tenantStates: boolean
  maxTenants: number
  tenantFailures: boolean
  durationBuckets: number[]
  lagBuckets: number[]
  splitInvalidKey: boolean
}

/** The metrics of one keyring. */
export interface KeyrotMetrics {
  /** The registry the metrics were added to: serve `await registry.metrics()` with `registry.contentType`. */
  readonly registry: Registry
  /** Stops observing the keyring and removes these metrics from the registry. Idempotent. */
  close(): void
}

function checkBuckets(value: readonly number[] | undefined, fallback: readonly number[], name: string): number[] {
  if (value === undefined) return [...fallback]
  if (!Array.isArray(value) || value.length === 0 || value.some((bucket, i) => !(bucket > 0) || !Number.isFinite(bucket) || (i > 0 && bucket <= (value[i - 1] as number)))) {
    throw new TypeError(`${name} must be a non-empty, strictly increasing array of positive numbers of seconds`)
  }
  return [...value]
}

function flag(value: boolean | undefined, name: string): boolean {
  if (value !== undefined && typeof value !== 'boolean') throw new TypeError(`${name} must be a boolean; got ${String(value)}`)
  return value ?? false
}

/** The failures an outsider could tell apart by probing, and the one code they fold into by default. */
const INVALID_KEY_CODES: ReadonlySet<string> = new Set(['KEYROT_MALFORMED_TOKEN', 'KEYROT_KEY_NOT_FOUND', 'KEYROT_INVALID_SECRET'])

function resolveMetricsOptions(options: MetricsOptions): ResolvedMetricsOptions {
  if (options === null || typeof options !== 'object') throw new TypeError('createMetrics options must be an object')
  const keyring = options.keyring
  if (!keyring || typeof keyring.on !== 'function' || typeof keyring.cacheStats !== 'function') {
    throw new TypeError('createMetrics needs { keyring }: a keyring from createKeyring()')
  }
  const registry = options.registry ?? globalRegistry
  if (typeof registry.registerMetric !== 'function' || typeof registry.metrics !== 'function') {
    throw new TypeError('registry must be a prom-client Registry')
  }
  const prefix = options.prefix ?? 'keyrot_'
  if (typeof prefix !== 'string' || (prefix !== '' && !METRIC_PREFIX.test(prefix))) {
    throw new TypeError(`prefix must match ${METRIC_PREFIX.source} (or be empty); got ${JSON.stringify(prefix)}`)
  }
  const maxTenants = options.maxTenants ?? 50
  if (!Number.isInteger(maxTenants) || maxTenants < 0) throw new TypeError(`maxTenants must be a non-negative integer; got ${String(maxTenants)}`)
  return {
    keyring,
    registry,
    prefix,
    tenantStates: options.tenantStates ?? false,
    maxTenants,
    tenantFailures: options.tenantFailures ?? false,
    durationBuckets: checkBuckets(options.durationBuckets, DEFAULT_DURATION_BUCKETS, 'durationBuckets'),
    lagBuckets: checkBuckets(options.lagBuckets, DEFAULT_LAG_BUCKETS, 'lagBuckets'),
    splitInvalidKey: flag(options.splitInvalidKey, 'splitInvalidKey'),
  }
}

/**
 * Prometheus metrics for a keyring. Counters move on the keyring's events
 * (after each final decision); gauges are read at scrape time. No label ever
 * carries a key id, a client IP or a secret: `result`, `code`, `policy`,
 * `cache`, `kind`, `action` and `state` take a fixed set of values, and the
 * opt-in `tenant` label of `keyrot_keys` is capped by `maxTenants`.
 *
 * See docs/observability.md for every metric and example queries.
 *
 * @example
 * import { Registry } from 'prom-client'
 * const registry = new Registry()
 * createMetrics({ keyring, registry })
 * app.get('/metrics', metricsHandler(registry))
 */
export function createMetrics(options: MetricsOptions): KeyrotMetrics {
  const config = resolveMetricsOptions(options)
  const { keyring, registry, prefix } = config
  const registers = [registry]
  const names: string[] = []
  const name = (suffix: string): string => {
    const full = prefix + suffix
    names.push(full)
    return full
  }
  const unsubscribers: Array<() => void> = []
  const on = <E extends KeyringEventName>(event: E, listener: KeyringListener<E>): void => {
    unsubscribers.push(keyring.on(event, listener))
  }

  const verifications = new Counter({
    name: name('verifications_total'),
    help: 'Verification attempts by result: ok, or the KEYROT_* error code (KEYROT_INVALID_KEY for a malformed token, an unknown key id or a wrong secret, unless split).',
    labelNames: ['result'] as const,
    registers,
  })
  verifications.inc({ result: 'ok' }, 0)
  for (const code of Object.keys(ERROR_CODES)) {
    if (ADMIN_ONLY_CODES.has(code) || (!config.splitInvalidKey && INVALID_KEY_CODES.has(code))) continue
    verifications.inc({ result: code }, 0)
  }
  const folds = (code: string): boolean => !config.splitInvalidKey && INVALID_KEY_CODES.has(code)

  const duration = new Histogram({
    name: name('verification_duration_seconds'),
    help: 'Time spent in verify(). cache="hit": no store read and no hashing; "miss": either ran; "none": failed verifications.',
    labelNames: ['result', 'cache'] as const,
    buckets: config.durationBuckets,
    registers,
  })
  duration.zero({ result: 'ok', cache: 'hit' })
  duration.zero({ result: 'ok', cache: 'miss' })
  duration.zero({ result: 'error', cache: 'none' })

  const graceVerifications = new Counter({
    name: name('grace_verifications_total'),
    help: 'Successful verifications made with a key in its grace period: clients that have not migrated to the new key.',
    registers,
  })

  const rateLimitBlocks = new Counter({
    name: name('ratelimit_blocks_total'),
    help: 'Requests refused by abuse protection, by policy (ip-block, ip-failures, network-failures, key-failures, per-key) and code (KEYROT_IP_BLOCKED, KEYROT_RATE_LIMITED).',
    labelNames: ['policy', 'code'] as const,
    registers,
  })
  for (const [policy, code] of RATE_LIMIT_POLICIES) rateLimitBlocks.inc({ policy, code }, 0)

  const keyChanges = new Counter({
    name: name('key_changes_total'),
    help: 'Admin actions on keys made through this process, by action.',
    labelNames: ['action'] as const,
    registers,
  })
  for (const action of ADMIN_ACTIONS) keyChanges.inc({ action }, 0)

  const invalidations = new Counter({
    name: name('invalidations_received_total'),
    help: "Invalidation messages received from the store: another process changed a key's state.",
    registers,
  })
  const invalidationLag = new Histogram({
    name: name('invalidation_lag_seconds'),
    help: 'Delivery lag of invalidation messages stamped by the sender (receive time minus send time, includes clock skew).',
    buckets: config.lagBuckets,
    registers,
  })
  const cacheResets = new Counter({
    name: name('cache_resets_total'),
    help: 'Times every cached key state was dropped because the invalidation feed may have lost messages.',
    registers,
  })

  registerOutageMetrics(keyring, name, registers)
  const storeResets = new Counter({
    name: name('store_resets_total'),
    help: 'Times the store came back empty or rolled back (cause="empty|rollback").',
    labelNames: ['cause'] as const,
    registers,
  })
  const keysLost = new Counter({
    name: name('keys_lost_total'),
    help: 'Keys this replica knew that a reset store no longer had.',
    registers,
  })
  // Leak reports (docs/leak-response.md): providers are the handler's configured names, a bounded set.
  const leakReports = new Counter({
    name: name('leak_reports_total'),
    help: 'Tokens in verified leak reports, by provider and label (true_positive: a real secret of one of our keys).',
    labelNames: ['provider', 'label'] as const,
    registers,
  })
  const keysLeaked = new Counter({
    name: name('keys_leaked_total'),
    help: 'Keys a leak report proved public, by provider and the action applied (revoke, emergencyRotate, notify).',
    labelNames: ['provider', 'action'] as const,
    registers,
  })

  // Lifetime totals of successful verifications, for the hit-ratio gauge.
  let cachedOk = 0
  let uncachedOk = 0

  new Gauge({
    name: name('cache_entries'),
    help: 'Entries in the verification cache: kind="proofs" (tokens proven by Argon2), kind="states" (key states trusted for stateTtl).',
    labelNames: ['kind'] as const,
    registers,
    collect() {
      const stats = keyring.cacheStats()
      this.set({ kind: 'proofs' }, stats.proofs)
      // A probe of an existing id caches its state, of an unknown id nothing: private metrics only.
      if (config.splitInvalidKey) this.set({ kind: 'states' }, stats.states)
    },
  })
  new Gauge({
    name: name('cache_hit_ratio'),
    help: 'Share of successful verifications served from the cache since start (NaN before the first). Prefer rates of verification_duration_seconds_count by cache.',
    registers,
    collect() {
      const total = cachedOk + uncachedOk
      this.set(total === 0 ? Number.NaN : cachedOk / total)
    },
  })

  registerProofMetrics(keyring, registers, name)

  if (config.tenantStates) {
    // A registry collects every metric concurrently: the gauges and counter
    // registered after keyrot_keys wait for this scrape's listing.
    let counting: Promise<void> = Promise.resolve()
    new Gauge({
      name: name('keys'),
      help: `Keys by tenant and state (active, grace, expired, revoked), counted at scrape time. Tenants past the largest ${config.maxTenants} share tenant="${OTHER_TENANTS}".`,
      labelNames: ['tenant', 'state'] as const,
      registers,
      collect() {
        counting = (async () => {
          this.reset()
          nextGraceDeadline.set(Number.NaN) // until the store answers
          let keys
          try {
            keys = await keyring.list()
          } catch (error) {
            collectErrors.inc()
            keyring.options.logger.warn({ event: 'metrics.collect_failed', metric: `${prefix}keys`, ...errorFields(error) }, 'keyrot could not count keys for metrics')
            return
          }
          for (const [tenant, counts] of countByTenant(keys, config.maxTenants)) {
            for (const state of KEY_STATES) this.set({ tenant, state }, counts[state])
          }
          let soonest = Number.POSITIVE_INFINITY
          for (const key of keys) if (key.state === 'grace' && key.expiresAt !== null && key.expiresAt < soonest) soonest = key.expiresAt
          nextGraceDeadline.set(soonest / 1000)
        })()
        return counting
      },
    })
    // Filled by the keyrot_keys collect above, from the same listing.
    const nextGraceDeadline = new Gauge({
      name: name('next_grace_deadline_timestamp_seconds'),
      help: 'Unix time when the soonest grace period ends, among keys in grace; +Inf when no key is in grace. Counted at scrape time.',
      registers,
      async collect() {
        await counting
      },
    })
    const collectErrors = new Counter({
      name: name('keys_collect_errors_total'),
      help: 'Scrapes where keys could not be counted because the store failed; keyrot_keys is then empty.',
      registers,
      async collect() {
        await counting
      },
    })
  }

  on('verification.succeeded', (event) => {
    verifications.inc({ result: 'ok' })
    if (event.cached) cachedOk++
    else uncachedOk++
    duration.observe({ result: 'ok', cache: event.cached ? 'hit' : 'miss' }, event.durationMs / 1000)
    if (event.state === 'grace') graceVerifications.inc()
  })
  on('verification.failed', (event) => {
    // An unknown id answers without an Argon2 run: its duration would tell it from a wrong secret.
    if (folds(event.code)) return void verifications.inc({ result: 'KEYROT_INVALID_KEY' })
    verifications.inc({ result: event.code })
    if (event.durationMs !== undefined) duration.observe({ result: 'error', cache: 'none' }, event.durationMs / 1000)
  })
  if (config.tenantFailures) {
    unsubscribers.push(countTenantFailures({ keyring, name: name('tenant_failures_total'), registers, maxTenants: config.maxTenants }))
  }
  on('ratelimit.blocked', (event) => rateLimitBlocks.inc({ policy: event.policy ?? 'other', code: event.code }))
  on('key.created', () => keyChanges.inc({ action: 'created' }))
  on('key.rotated', () => keyChanges.inc({ action: 'rotated' }))
  on('key.revoked', () => keyChanges.inc({ action: 'revoked' }))
  on('key.emergency_rotated', () => keyChanges.inc({ action: 'emergency_rotated' }))
  on('key.expiry_changed', () => keyChanges.inc({ action: 'expiry_changed' }))
  on('invalidation.received', (event) => {
    invalidations.inc()
    if (event.lagMs !== undefined) invalidationLag.observe(event.lagMs / 1000)
  })
  on('cache.reset', () => cacheResets.inc())
  on('store.reset', (event) => storeResets.inc({ cause: event.cause }))
  on('keys.lost', (event) => keysLost.inc(event.count))
  on('leak.reported', (event) => {
    if (event.truePositives > 0) leakReports.inc({ provider: event.provider, label: 'true_positive' }, event.truePositives)
    if (event.falsePositives > 0) leakReports.inc({ provider: event.provider, label: 'false_positive' }, event.falsePositives)
  })
  on('key.leaked', (event) => keysLeaked.inc({ provider: event.provider, action: event.action }))

  let closed = false
  return {
    registry,
    close() {
      if (closed) return
      closed = true
      for (const unsubscribe of unsubscribers) unsubscribe()
      for (const metric of names) registry.removeSingleMetric(metric)
    },
  }
}

type StateCounts = Record<KeyState, number>

/** Per-tenant state counts; tenants beyond the `maxTenants` largest are summed under {@link OTHER_TENANTS}. */
function countByTenant(keys: ReadonlyArray<{ tenantId: string; state: KeyState }>, maxTenants: number): Map<string, StateCounts> {
  const byTenant = new Map<string, StateCounts & { total: number }>()
  for (const key of keys) {
    let counts = byTenant.get(key.tenantId)
    if (!counts) byTenant.set(key.tenantId, (counts = { active: 0, grace: 0, expired: 0, revoked: 0, total: 0 }))
    counts[key.state]++
    counts.total++
  }
  const ranked = [...byTenant].sort(([a, x], [b, y]) => y.total - x.total || (a < b ? -1 : a > b ? 1 : 0))
  const result = new Map<string, StateCounts>()
  let other: StateCounts | undefined
  for (const [index, [tenant, counts]] of ranked.entries()) {
    if (index < maxTenants) {
      result.set(tenant, counts)
      continue
    }
    other ??= { active: 0, grace: 0, expired: 0, revoked: 0 }
    for (const state of KEY_STATES) other[state] += counts[state]
  }
  if (other) result.set(OTHER_TENANTS, other)
  return result
}
