import {
  emptyRotationUsage,
  InvalidInputError,
  isKeyId,
  StoreUnavailableError,
  type EmergencyRotateInput,
  type InvalidationListener,
  type KeyRecord,
  type KeyStore,
  type ListQuery,
  type RevokeInput,
  type RotateInput,
  type RotationUsage,
  type RotationUsageQuery,
  type RotationUse,
  MAX_CREDITS,
  type AdjustCreditsInput,
  type CreditsRefill,
  type CreditsState,
  type SpendCreditsInput,
  type TenantPolicy,
} from '@keyrot/core'
import type { Cluster, Redis } from 'ioredis'
import { checkDurability, UnsafeRedisConfigError } from './durability-check.js'
import { duplicateForData, duplicateForSubscriber, runScript, whenReady, withDeadline } from './connection.js'
import { ClusterTransport, InvalidationFeed, StandaloneTransport } from './invalidation.js'
import { startupError, trackLastError } from './startup.js'
import { reportOutages } from './outage-log.js'
import { adjustCredits, readCredits, spendCredits } from './credits.js'
import { KeyLayout } from './keys.js'
import * as compliance from './compliance/compliance-store.js'
import { dropImportIndex, findImported, followImported, isImportIndex, putImportIndex, type ImportIndexContext } from './import-index.js'
import { listRecords } from './list.js'
import { resolveRedisStoreOptions, type RedisClient, type RedisStoreOptions, type ResolvedRedisStoreOptions } from './options.js'
import { migrateRecords, type MigrationOptions, type MigrationReport } from './migrate.js'
import { decodeRecord } from './record-codec.js'
import { okPayload } from './replies.js'
import { SCRIPTS } from './scripts.js'
import { StoreIdentity } from './store-identity.js'
import { readRotationUsage } from './rotation-usage.js'
import { RecordWriter } from './store-writes.js'
import { UsageBatcher } from './usage-batcher.js'

/**
 * A `KeyStore` on Redis or Redis Cluster, shared by every replica.
 *
 * - Only hashes reach Redis. The credential verify reads expires in Redis at
 *   the key's deadline (`PEXPIREAT`), on every replica at once; the record
 *   that says why a key fails outlives it by `retention`.
 * - Each write (insert, rotate, revoke, emergency rotation, setExpiry) is one
 *   Lua script: atomic, one round trip. Of concurrent rotations of one key
 *   exactly one succeeds, because the script checks `rotatedTo` and sets it
 *   with no other command in between.
 * - Every call fails with `StoreUnavailableError` within `timeout` when
 *   Redis is down or silent; nothing waits on an offline queue.
 * - Changes are published on an invalidation channel; `subscribe()` hands
 *   them (and `reset`s when messages may have been lost) to keyrings.
 *
 * @example
 * import Redis from 'ioredis'
 * const store = new RedisStore({ client: new Redis(process.env.REDIS_URL) })
 * const keyring = createKeyring({ store })
 */
export class RedisStore implements KeyStore {
  readonly options: ResolvedRedisStoreOptions
  readonly layout: KeyLayout
  readonly #data: RedisClient
  readonly #compliance: compliance.ComplianceKeys
  readonly #usage: UsageBatcher
  readonly #identity: StoreIdentity
  readonly #writer: RecordWriter
  #feed: InvalidationFeed | null = null
  readonly #warned = new Set<string>()
  #closed = false

  constructor(options: RedisStoreOptions) {
    this.options = resolveRedisStoreOptions(options)
    this.layout = new KeyLayout(this.options.keyPrefix)
    this.#compliance = new compliance.ComplianceKeys(this.options.keyPrefix)
    const { client, cluster, timeoutMs, durability } = this.options
    // Commands may legitimately last as long as a WAIT; the store's own deadline is the tighter bound.
    this.#data = duplicateForData(client, cluster, timeoutMs + durability.timeoutMs)
    // A restarted Redis breaks the connection: the next "not found" or admin write looks at the store first.
    this.#data.on('ready', () => this.#identity.connectionRenewed())
    this.#data.on('error', (error: Error) => this.#warnOnce('redis.error', { err: { message: error.message } }, 'keyrot Redis connection error'))
    reportOutages(this.#data, options.logger)
    this.#usage = new UsageBatcher({
      flushIntervalMs: this.options.usageFlushIntervalMs,
      maxPendingKeys: this.options.usageMaxPendingKeys,
      logger: this.options.logger,
      write: (batch) => this.#writer.writeUsage(batch),
    })
    this.#identity = new StoreIdentity({
      layout: this.layout,
      clock: this.options.clock,
      logger: this.options.logger,
      intervalMs: this.options.resetCheckIntervalMs,
      alwaysConfirm: this.options.cluster,
      run: (what, work) => this.#call(what, undefined, this.options.timeoutMs, work),
    })
    this.#writer = new RecordWriter({
      options: this.options,
      layout: this.layout,
      compliance: this.#compliance,
      identity: this.#identity,
      call: (what, keyId, budgetMs, work) => this.#call(what, keyId, budgetMs, work),
      warnOnce: (code, fields, message) => this.#warnOnce(code, fields, message),
      followImported: (record) => this.#followImported(record),
    })
  }

  /**
   * Resolves once the data connection is ready, or throws `StoreUnavailableError`
   * after `timeoutMs` naming the address, the cause and the option. Then takes
   * the store's identity (see store-identity.ts) and checks that Redis keeps
   * keys (see `requireDurability`).
   */
  waitUntilReady(timeoutMs = 5_000): Promise<void> {
    this.#lastError ??= trackLastError(this.#data)
    const lastError = this.#lastError
    const waiting = (async () => {
      await withDeadline(timeoutMs, 'connect', undefined, () => whenReadyOrWait(this.#data)).catch((error: unknown) => {
        throw startupError(error, this.#data, lastError(), timeoutMs)
      })
      await this.#identity.check()
      this.#identity.start()
      await this.#checkDurability()
    })()
    // Called without await at start-up, a failure must not crash a server
    // that runs on later: the rejection counts as handled, and a caller that
    // awaits still gets it.
    waiting.catch(() => {})
    return waiting
  }

  async #checkDurability(): Promise<void> {
    const report = await this.#call('check persistence settings', undefined, this.options.timeoutMs, (redis) => checkDurability(redis))
    if (report.source === 'unknown') {
      this.#warnOnce('durability.unknown', {}, 'keyrot could not read Redis persistence settings (CONFIG and INFO refused); check appendonly and maxmemory-policy yourself')
      return
    }
    if (report.problems.length === 0) return
    if (this.options.requireDurability) throw new UnsafeRedisConfigError(report.problems)
    for (const problem of report.problems) this.#warnOnce(`durability.${problem.split(/[ :]/)[0]}`, { problem }, `keyrot Redis can lose or evict keys: ${problem}`)
  }

  #lastError: (() => Error | undefined) | undefined

  // ---------------------------------------------------------------- reads

  async get(keyId: string): Promise<KeyRecord | null> {
    if (!isKeyId(keyId)) return null
    // Taken before any await: a keyring calls get() synchronously after reading the same clock.
    const askedAt = this.options.clock.now()
    return this.#call('read a key', keyId, this.options.timeoutMs, async (redis) => {
      const [recordReply, credentialLive] = okPayload(
        await runScript(redis, SCRIPTS.read, [this.layout.record(keyId), this.layout.credential(keyId)], []),
        keyId,
      )
      const record = decodeRecord(recordReply)
      if (record === null) {
        // "Not found" is trusted only from a store that did not lose its data: look first.
        await this.#identity.confirm()
        return null
      }
      if (credentialLive !== 1 && record.revokedAt === null) {
        // Redis removed the credential at the deadline (by its own clock) or
        // lost it: the key no longer verifies, whatever this host's clock
        // says. A host whose clock lags Redis's is told the key expired just
        // before it asked.
        record.expiresAt = Math.min(record.expiresAt ?? askedAt - 1, askedAt - 1)
      }
      return record
    })
  }

  async list(query: ListQuery): Promise<KeyRecord[]> {
    this.#assertOpen()
    return listRecords(query, {
      layout: this.layout,
      step: (what, work) => this.#call(what, undefined, this.options.timeoutMs, work),
      get: (keyId) => this.get(keyId),
    })
  }

  // ---------------------------------------------------------------- writes (see store-writes.ts)

  insert(record: KeyRecord): Promise<void> {
    return this.#writer.insert(record)
  }

  rotate(input: RotateInput): Promise<{ previous: KeyRecord; next: KeyRecord }> {
    return this.#writer.rotate(input)
  }

  revoke(input: RevokeInput): Promise<KeyRecord> {
    return this.#writer.revoke(input)
  }

  emergencyRotate(input: EmergencyRotateInput): Promise<{ revoked: KeyRecord; next: KeyRecord }> {
    return this.#writer.emergencyRotate(input)
  }

  setExpiry(keyId: string, expiresAt: number | null): Promise<KeyRecord> {
    return this.#writer.setExpiry(keyId, expiresAt)
  }

  /** Sets or lifts (`null`) a key's `allowedIps`; published like `setExpiry` (and made durable as it is). */
  setAllowedIps(keyId: string, allowedIps: string[] | null): Promise<KeyRecord> {
    return this.#writer.setAllowedIps(keyId, allowedIps)
  }

  // ---------------------------------------------------------------- imported keys (see import-index.ts)

  findImported(index: string): Promise<string | null> {
    return this.#call('find an imported key', undefined, this.options.timeoutMs, (redis) => findImported(redis, this.#importContext, index))
  }

  async putImportIndex(index: string, keyId: string, expiresAt: number | null): Promise<string> {
    if (!isImportIndex(index) || !isKeyId(keyId)) throw new InvalidInputError('importIndex', 'must be an index and a key id')
    return this.#call('index an imported key', keyId, this.options.timeoutMs, (redis) => putImportIndex(redis, this.#importContext, index, keyId, expiresAt))
  }

  async dropImportIndex(index: string, keyId: string): Promise<void> {
    if (!isImportIndex(index)) return
    await this.#call('drop an imported key index entry', keyId, this.options.timeoutMs, (redis) => dropImportIndex(redis, this.#importContext, index, keyId))
  }

  get #importContext(): ImportIndexContext {
    return { layout: this.layout, retentionMs: this.options.retentionMs, logger: this.options.logger }
  }

  async #followImported(record: KeyRecord): Promise<void> {
    if (record.importIndex === undefined) return
    await this.#call('update an imported key index entry', record.id, this.options.timeoutMs, (redis) => followImported(redis, this.#importContext, record)).catch(() => undefined)
  }

  updateHash(keyId: string, hash: string, replacing?: string): Promise<boolean> {
    return this.#writer.updateHash(keyId, hash, replacing)
  }

  /**
   * Keeps a shared proof on the key's record (the `proof` field), unless the
   * key is gone, revoked, rotated or past its deadline. One script, so a
   * revocation (which drops the field) and a late proof never interleave.
   */
  putProof(keyId: string, proof: string): Promise<boolean> {
    return this.#writer.putProof(keyId, proof)
  }

  /**
   * Converts records written by earlier releases (record format 1) to the
   * compact format 2, in batches; idempotent (docs/redis.md#migrating-records).
   * Not needed for correctness: both formats are read and updated.
   */
  migrateRecords(options: MigrationOptions = {}): Promise<MigrationReport> {
    this.#assertOpen()
    return migrateRecords(
      {
        layout: this.layout,
        cluster: this.options.cluster,
        retentionMs: this.options.retentionMs,
        now: () => this.options.clock.now(),
        step: (what, work) => this.#call(what, undefined, this.options.timeoutMs, work),
      },
      options,
    )
  }

  // ---------------------------------------------------------------- usage

  recordUsage(keyId: string, at: number, inGrace: boolean, rotation?: RotationUse): void {
    if (isKeyId(keyId)) this.#usage.record(keyId, at, inGrace, rotation)
  }

  /**
   * Rotation uses of `keyId` as every replica flushed them (see
   * `rotation-usage.ts` in core). A use shows once its replica flushed it:
   * up to `usage.flushInterval` later; a replica that crashes loses its
   * unflushed interval.
   */
  rotationUsage(keyId: string, query: RotationUsageQuery): Promise<RotationUsage> {
    if (!isKeyId(keyId)) return Promise.resolve(emptyRotationUsage(keyId, query))
    return this.#call('read rotation usage', keyId, this.options.timeoutMs, (redis) => readRotationUsage(redis, this.layout, keyId, query))
  }

  /** Writes the usage counts gathered so far (also done every `usage.flushInterval` and on `close()`). */
  flushUsage(): Promise<void> {
    return this.#usage.flush()
  }

  // ---------------------------------------------------------------- credits (see credits.ts)

  /** One script, one round trip; atomic across replicas. */
  spendCredits(input: SpendCreditsInput): Promise<{ ok: boolean; state: CreditsState }> {
    return this.#call('spend credits', undefined, this.options.timeoutMs, (redis) => spendCredits(redis, this.layout.prefix, input))
  }

  readCredits(familyId: string, refill: CreditsRefill | null, now: number): Promise<CreditsState> {
    return this.#call('read credits', undefined, this.options.timeoutMs, (redis) => readCredits(redis, this.layout.prefix, familyId, refill, now))
  }

  adjustCredits(input: AdjustCreditsInput): Promise<CreditsState> {
    return this.#call('change credits', undefined, this.options.timeoutMs, (redis) => adjustCredits(redis, this.layout.prefix, input, MAX_CREDITS))
  }

  // ---------------------------------------------------------------- rotation policies (compliance/compliance-store.ts)

  /** Uses per key from the UTC day of `since` on (see `KeyStore.usageSince`); flushed uses only. */
  usageSince(keyIds: readonly string[], since: number): Promise<Map<string, number>> {
    return this.#call('read daily usage', undefined, this.options.timeoutMs, (redis) => compliance.readUsageSince(redis, this.#compliance, keyIds, since))
  }

  getTenantPolicy(tenantId: string): Promise<TenantPolicy | null> {
    return this.#call('read a tenant policy', undefined, this.options.timeoutMs, (redis) => compliance.readTenantPolicy(redis, this.#compliance, tenantId))
  }

  setTenantPolicy(tenantId: string, policy: TenantPolicy | null): Promise<void> {
    return this.#call('write a tenant policy', undefined, this.options.timeoutMs, (redis) => compliance.writeTenantPolicy(redis, this.#compliance, tenantId, policy))
  }

  markRotationDue(keyId: string, at: number, untilAt: number): Promise<boolean> {
    if (!isKeyId(keyId)) return Promise.resolve(false)
    return this.#call('mark a key due for rotation', keyId, this.options.timeoutMs, (redis) => compliance.markRotationDue(redis, this.#compliance, keyId, at, untilAt))
  }

  // ---------------------------------------------------------------- invalidation

  subscribe(listener: InvalidationListener): () => void {
    const feed = this.#invalidationFeed()
    const stopResets = this.#identity.subscribe(listener)
    const stopFeed = feed ? feed.subscribe(listener) : () => {}
    return () => {
      stopResets()
      stopFeed()
    }
  }

  // ---------------------------------------------------------------- resets

  /** Whether Redis came back empty or rolled back and no operator accepted it yet (see store-identity.ts). */
  resetPending(): boolean {
    return this.#identity.resetPending
  }

  /** The unaccepted reset (cause, what was seen, when), or `null`. Current as of the last look (`waitUntilReady()` looks). */
  pendingReset(): { cause: 'empty' | 'rollback'; detail: string; at: number } | null {
    const flag = this.#identity.pendingReset
    return flag ? { ...flag } : null
  }

  /** Accepts a reset for every process sharing this Redis: admin writes work again. */
  acceptReset(): Promise<void> {
    return this.#identity.accept()
  }

  /** Writes a revocation back to a reset store (allowed while other writes are refused); see `KeyStore.restoreRevocation`. */
  restoreRevocation(record: KeyRecord): Promise<boolean> {
    return this.#writer.restoreRevocation(record)
  }

  /**
   * Whether this replica would hear of a change made elsewhere now. `false`
   * while the invalidation subscriber is disconnected, not yet subscribed or
   * missing heartbeats: keyrings then cache no key state they read (states
   * cached before stay trusted for at most `cache.stateTtl`). Always `true` with
   * `invalidation: false` (then `cache.stateTtl` alone bounds staleness).
   */
  invalidationLive(): boolean {
    if (this.options.invalidation === null) return true
    return this.#invalidationFeed()?.live ?? false
  }

  /** Resolves once the invalidation subscription is live (no-op when `invalidation: false`). */
  async invalidationReady(timeoutMs = 5_000): Promise<void> {
    const feed = this.#invalidationFeed()
    if (feed) await withDeadline(timeoutMs, 'subscribe to invalidations', undefined, () => feed.ready())
  }

  #invalidationFeed(): InvalidationFeed | null {
    if (this.#feed || this.#closed || this.options.invalidation === null) return this.#feed
    const { client, cluster, timeoutMs, invalidation, clock, logger } = this.options
    const subscriber = duplicateForSubscriber(client, cluster, timeoutMs)
    const publisher = () => this.#data
    const transport = cluster
      ? new ClusterTransport(subscriber as Cluster, publisher, this.layout.channel)
      : new StandaloneTransport(subscriber as Redis, publisher, this.layout.channel)
    this.#feed = new InvalidationFeed({ transport, ...invalidation, clock, logger })
    return this.#feed
  }

  // ---------------------------------------------------------------- plumbing

  /** Runs `work` on the data connection once it is ready, within `budgetMs`. */
  #call<T>(what: string, keyId: string | undefined, budgetMs: number, work: (redis: RedisClient) => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new StoreUnavailableError('The Redis store is closed.', { keyId }))
    const redis = this.#data
    return withDeadline(budgetMs, what, keyId, async () => {
      await whenReady(redis)
      return work(redis)
    })
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreUnavailableError('The Redis store is closed.')
  }

  #warnOnce(code: string, fields: object, message: string): void {
    if (this.#warned.has(code)) return
    this.#warned.add(code)
    this.options.logger.warn({ event: code, ...fields }, message)
  }

  /** Flushes usage counts, stops the invalidation feed and closes the store's own connections (never the application's client). */
  async close(): Promise<void> {
    if (this.#closed) return
    await this.#usage.close()
    this.#closed = true
    this.#identity.close()
    await this.#feed?.close()
    this.#data.disconnect()
  }
}

/** Like `whenReady`, but also waits through a reconnection (for startup checks, not requests). */
function whenReadyOrWait(connection: RedisClient): Promise<void> {
  if (connection.status === 'ready') return Promise.resolve()
  return new Promise((resolve) => connection.once('ready', () => resolve()))
}
