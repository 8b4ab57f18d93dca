import { LRUCache } from 'lru-cache'
import type { TypedEmitter } from '../events.js'
import { errorFields, type Logger } from '../logger.js'
import {
  dueWindowOf,
  effectivePolicy,
  type ResolvedRotationPolicyOptions,
  type RotationDue,
  type RotationPolicy,
  type TenantPolicy,
} from '../policy/policy-options.js'
import type { KeyStore } from '../store/store.js'
import type { KeyFields } from '../types.js'

/** Tenants whose policy a replica keeps; past it the oldest read is dropped (and read again when needed). */
const MAX_TENANTS = 10_000
/** Keys whose `key.rotation-due` this process already emitted (or saw marked by another). */
const MAX_NOTIFIED = 100_000
/** How long the fleet-wide "already notified" marker is kept past the key's due date. */
const MARKER_AFTER_DUE_MS = 30 * 86_400_000

interface TenantEntry {
  policy: RotationPolicy
  readAt: number
  refreshing: boolean
}

/** What the verifier keeps per cached record in its warning window: the policy it was judged under and the answers. */
interface RecordVerdict {
  policy: RotationPolicy
  warning: RotationDue
  overdue: RotationDue
}

export interface RotationPolicyCheckOptions {
  options: ResolvedRotationPolicyOptions
  store: KeyStore
  events: TypedEmitter
  logger: Logger
  now: () => number
}

function samePolicy(a: RotationPolicy, b: RotationPolicy): boolean {
  return a.maxAgeMs === b.maxAgeMs && a.rotationWarningMs === b.rotationWarningMs && a.enforce === b.enforce
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown })?.then === 'function'
}

/**
 * The rotation policy on the verify path (docs/policies.md#rotation-policy).
 * The verifier calls `check()` once per successful proof, after status and
 * expiry; it exists only when `createKeyring({ policy })` is set, so a
 * keyring without a policy pays nothing.
 *
 * Cost per request: one tenant lookup in a map and some arithmetic on the
 * record; only a key in its warning window looks up the answer kept per
 * cached record (a `WeakMap`, so it lives as long as the cached state). A tenant's policy is read from the store the first time a
 * tenant is seen (that verify waits for it once), then refreshed in the
 * background every `tenantRefresh`. A store that cannot answer leaves the
 * keyring's defaults in force (logged once per outage), never a failed verify.
 *
 * `key.rotation-due` fires once per key and process; with a store that has
 * `markRotationDue` (both bundled stores), once per key for the whole fleet:
 * the first replica to set the marker emits it. The marker write is not
 * awaited by the verify.
 */
export class RotationPolicyCheck {
  readonly #options: ResolvedRotationPolicyOptions
  readonly #store: KeyStore
  readonly #events: TypedEmitter
  readonly #logger: Logger
  readonly #now: () => number
  /** Insertion-ordered, the oldest dropped past the bound: a plain `Map` read costs less than an LRU's recency update on every verify. */
  readonly #tenants = new Map<string, TenantEntry>()
  /** The store keeps tenant policies: decided once, not per verify. */
  readonly #perTenant: boolean
  readonly #loading = new Map<string, Promise<RotationPolicy>>()
  readonly #verdicts = new WeakMap<KeyFields, RecordVerdict>()
  readonly #notified = new LRUCache<string, true>({ max: MAX_NOTIFIED })
  #failing = false

  constructor({ options, store, events, logger, now }: RotationPolicyCheckOptions) {
    this.#options = options
    this.#store = store
    this.#events = events
    this.#logger = logger
    this.#now = now
    this.#perTenant = typeof store.getTenantPolicy === 'function'
  }

  /**
   * Where a proven key stands: `undefined` before its warning window (or
   * when no policy applies), else its `RotationDue`. Synchronous but for the
   * first sight of a tenant whose store holds tenant policies.
   */
  check(record: KeyFields, now: number): RotationDue | undefined | Promise<RotationDue | undefined> {
    if (record.revokedAt !== null || record.rotatedTo !== null) return undefined
    const policy = this.policyFor(record.tenantId, now)
    return isPromise(policy) ? policy.then((resolved) => this.#judge(record, resolved, now)) : this.#judge(record, policy, now)
  }

  /** The policy in force for a tenant as this replica knows it. */
  policyFor(tenantId: string, now: number): RotationPolicy | Promise<RotationPolicy> {
    if (!this.#perTenant) return this.#options.defaults
    const entry = this.#tenants.get(tenantId)
    if (entry === undefined) return this.#load(tenantId)
    if (now - entry.readAt >= this.#options.tenantRefreshMs && !entry.refreshing) {
      entry.refreshing = true
      void this.#load(tenantId)
    }
    return entry.policy
  }

  /** After a tenant policy change on this replica: in force here at once. */
  noteTenantPolicy(tenantId: string, override: TenantPolicy | null): void {
    this.#remember(tenantId, effectivePolicy(this.#options.defaults, override))
  }

  #remember(tenantId: string, policy: RotationPolicy): void {
    const entry = this.#tenants.get(tenantId)
    // The same policy keeps its object: verdicts kept per record stay valid.
    const kept = entry && samePolicy(entry.policy, policy) ? entry.policy : policy
    this.#tenants.delete(tenantId)
    if (this.#tenants.size >= MAX_TENANTS) this.#tenants.delete(this.#tenants.keys().next().value as string)
    this.#tenants.set(tenantId, { policy: kept, readAt: this.#now(), refreshing: false })
  }

  #load(tenantId: string): Promise<RotationPolicy> {
    let pending = this.#loading.get(tenantId)
    if (pending) return pending
    pending = (async () => {
      let policy = this.#options.defaults
      try {
        const override = (await this.#store.getTenantPolicy?.(tenantId)) ?? null
        policy = effectivePolicy(this.#options.defaults, override)
        if (this.#failing) {
          this.#failing = false
          this.#logger.info({ event: 'policy.read_recovered' }, 'keyrot reads tenant rotation policies again')
        }
      } catch (error) {
        // The last known policy stays; a tenant never seen gets the defaults until the next read.
        policy = this.#tenants.get(tenantId)?.policy ?? policy
        if (!this.#failing) {
          this.#failing = true
          this.#logger.warn({ event: 'policy.read_failed', tenantId, ...errorFields(error) }, 'keyrot could not read a tenant rotation policy; the last known one (or the defaults) applies')
        }
      } finally {
        this.#loading.delete(tenantId)
      }
      this.#remember(tenantId, policy)
      return policy
    })()
    this.#loading.set(tenantId, pending)
    return pending
  }

  #judge(record: KeyFields, policy: RotationPolicy, now: number): RotationDue | undefined {
    // The common case, a key before its warning, is arithmetic only: no lookup, no allocation.
    const maxAgeMs = policy.maxAgeMs
    if (maxAgeMs === 0) return undefined
    const dueAt = record.createdAt + maxAgeMs
    if (now < dueAt - policy.rotationWarningMs || now < record.createdAt) return undefined
    // In the window: the answer objects are built once per cached record and policy.
    let verdict = this.#verdicts.get(record)
    if (verdict === undefined || verdict.policy !== policy) {
      const window = dueWindowOf(record, policy) as { dueAt: number; warnFrom: number }
      verdict = {
        policy,
        warning: Object.freeze({ ...window, overdue: false, enforced: policy.enforce }),
        overdue: Object.freeze({ ...window, overdue: true, enforced: policy.enforce }),
      }
      this.#verdicts.set(record, verdict)
    }
    const due = now >= dueAt ? verdict.overdue : verdict.warning
    if (this.#events.has('key.rotation-due') && !this.#notified.has(record.id)) this.#notify(record, due, now)
    return due
  }

  #notify(record: KeyFields, due: RotationDue, now: number): void {
    this.#notified.set(record.id, true)
    const emit = () =>
      this.#events.emit('key.rotation-due', {
        keyId: record.id,
        tenantId: record.tenantId,
        createdAt: record.createdAt,
        dueAt: due.dueAt,
        overdue: due.overdue,
        enforced: due.enforced,
        at: now,
      })
    const mark = this.#store.markRotationDue
    if (typeof mark !== 'function') return emit()
    mark.call(this.#store, record.id, now, due.dueAt + MARKER_AFTER_DUE_MS).then(
      (first) => {
        if (first) emit()
      },
      (error: unknown) => {
        // Better twice than never: the marker is only there to keep the fleet to one event.
        this.#logger.warn({ event: 'policy.mark_failed', keyId: record.id, ...errorFields(error) }, 'keyrot could not mark a key as notified for rotation; emitting anyway')
        emit()
      },
    )
  }
}
