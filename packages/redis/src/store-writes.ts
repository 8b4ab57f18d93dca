import {
  InvalidInputError,
  isKeyId,
  KeyNotFoundError,
  StoreResetError,
  StoreUnavailableError,
  type EmergencyRotateInput,
  type KeyRecord,
  type RevokeInput,
  type RotateInput,
} from '@keyrot/core'
import type { Cluster } from 'ioredis'
import * as compliance from './compliance/compliance-store.js'
import { runScript, runScriptAndWait } from './connection.js'
import { encodeHash } from './hash-codec.js'
import { keyMessage } from './invalidation.js'
import type { KeyLayout } from './keys.js'
import type { DurableOperation, RedisClient, ResolvedRedisStoreOptions } from './options.js'
import { CorruptRecordError, encodeRecord, optionalArg } from './record-codec.js'
import { okPayload, requireRecord, tagged } from './replies.js'
import { writeRotationUsage } from './rotation-usage.js'
import { SCRIPTS, type LuaScript } from './scripts.js'
import type { StoreIdentity } from './store-identity.js'
import type { UsageDelta } from './usage-batcher.js'

/** What a `RecordWriter` uses of the store that owns it. */
export interface RecordWriterContext {
  options: ResolvedRedisStoreOptions
  layout: KeyLayout
  compliance: compliance.ComplianceKeys
  identity: StoreIdentity
  /** Runs `work` on the store's data connection once it is ready, within `budgetMs`; rejects once the store is closed. */
  call<T>(what: string, keyId: string | undefined, budgetMs: number, work: (redis: RedisClient) => Promise<T>): Promise<T>
  /** Logs a warning once per `code` for the store's lifetime. */
  warnOnce(code: string, fields: object, message: string): void
  /** Brings an imported key's index entry in line with its changed record (see import-index.ts); never throws. */
  followImported(record: KeyRecord): Promise<void>
}

/**
 * The writes of a `RedisStore`: each change to a key record is one Lua
 * script, indexed first, followed by the store's change sequence (see
 * store-identity.ts), waited on by replicas when durability asks for it, and
 * published to other replicas (from inside the script on a standalone Redis,
 * with SPUBLISH after it on a Cluster). Usage counts are written here too.
 */
export class RecordWriter {
  readonly #context: RecordWriterContext

  constructor(context: RecordWriterContext) {
    this.#context = context
  }

  async insert(record: KeyRecord): Promise<void> {
    const { layout, options } = this.#context
    if (!isKeyId(record.id)) throw new InvalidInputError('id', 'must be a 16-character key id')
    const keys = [layout.record(record.id), layout.credential(record.id)]
    const reply = await this.#write('insert', 'insert a key', record.id, SCRIPTS.insert, keys, [options.retentionMs, ...encodeRecord(record)], record)
    okPayload(reply, record.id)
  }

  async rotate(input: RotateInput): Promise<{ previous: KeyRecord; next: KeyRecord }> {
    const { oldKeyId, newKey } = input
    assertSameFamily(oldKeyId, newKey)
    const args = [input.now, input.graceDeadline, this.#context.options.retentionMs, this.#channelArg, this.#keyMessage(oldKeyId), newKey.id, ...encodeRecord(newKey)]
    const [previous, next] = await this.#succession('rotate', 'rotate a key', SCRIPTS.rotate, oldKeyId, newKey, args, input.now)
    return { previous, next }
  }

  async revoke(input: RevokeInput): Promise<KeyRecord> {
    const { layout, options } = this.#context
    const { keyId } = input
    if (!isKeyId(keyId)) throw new KeyNotFoundError(keyId)
    const keys = [layout.record(keyId), layout.credential(keyId)]
    const args = [input.at, optionalArg(input.reason), optionalArg(input.incidentId), options.retentionMs, this.#channelArg, keyMessage(keyId, options.clock.now())]
    const reply = await this.#write('revoke', 'revoke a key', keyId, SCRIPTS.revoke, keys, args)
    const [changed, record] = okPayload(reply, keyId)
    if (changed === 1) await this.#publishAfter(keyId)
    const revoked = requireRecord(record)
    await this.#context.followImported(revoked)
    return revoked
  }

  async emergencyRotate(input: EmergencyRotateInput): Promise<{ revoked: KeyRecord; next: KeyRecord }> {
    const { oldKeyId, newKey } = input
    assertSameFamily(oldKeyId, newKey)
    const args = [input.at, input.reason, input.incidentId, this.#context.options.retentionMs, this.#channelArg, this.#keyMessage(oldKeyId), newKey.id, ...encodeRecord(newKey)]
    const [revoked, next] = await this.#succession('emergencyRotate', 'rotate a key in an emergency', SCRIPTS.emergencyRotate, oldKeyId, newKey, args, input.at)
    return { revoked, next }
  }

  /**
   * A rotation's write, shared by `rotate` and `emergencyRotate`: the script
   * on the old and the new key, the change published for the old one, and
   * the old key's import index followed. Answers the old and the new record.
   */
  async #succession(
    operation: 'rotate' | 'emergencyRotate',
    what: string,
    script: LuaScript,
    oldKeyId: string,
    newKey: KeyRecord,
    args: (string | number)[],
    at: number,
  ): Promise<[KeyRecord, KeyRecord]> {
    const reply = await this.#write(operation, what, oldKeyId, script, successionKeys(this.#context.layout, oldKeyId, newKey.id), args, newKey)
    const [old, next] = okPayload(reply, oldKeyId, newKey.id, at)
    await this.#publishAfter(oldKeyId)
    const pair: [KeyRecord, KeyRecord] = [requireRecord(old), requireRecord(next)]
    await this.#context.followImported(pair[0])
    return pair
  }

  #keyMessage(keyId: string): string {
    return keyMessage(keyId, this.#context.options.clock.now())
  }

  async setExpiry(keyId: string, expiresAt: number | null): Promise<KeyRecord> {
    const { layout, options } = this.#context
    if (!isKeyId(keyId)) throw new KeyNotFoundError(keyId)
    const keys = [layout.record(keyId), layout.credential(keyId)]
    const args = [expiresAt === null ? '' : String(expiresAt), options.retentionMs, this.#channelArg, keyMessage(keyId, options.clock.now())]
    const reply = await this.#write('setExpiry', 'change a key expiry', keyId, SCRIPTS.setExpiry, keys, args)
    const [record] = okPayload(reply, keyId)
    await this.#publishAfter(keyId)
    const changed = requireRecord(record)
    await this.#context.followImported(changed)
    return changed
  }

  async setAllowedIps(keyId: string, allowedIps: string[] | null): Promise<KeyRecord> {
    const { layout, options } = this.#context
    if (!isKeyId(keyId)) throw new KeyNotFoundError(keyId)
    const args = [allowedIps === null ? '' : JSON.stringify(allowedIps), this.#channelArg, keyMessage(keyId, options.clock.now())]
    const reply = await this.#write('setExpiry', 'change a key allowlist', keyId, SCRIPTS.setAllowedIps, [layout.record(keyId)], args)
    const [record] = okPayload(reply, keyId)
    await this.#publishAfter(keyId)
    return requireRecord(record)
  }

  async updateHash(keyId: string, hash: string, replacing?: string): Promise<boolean> {
    const { layout } = this.#context
    if (!isKeyId(keyId)) throw new KeyNotFoundError(keyId)
    const keys = [layout.record(keyId), layout.credential(keyId)]
    const stored = encodeHash(hash)
    const args = [hash, stored.version, stored.value]
    if (replacing !== undefined) {
      const expected = encodeHash(replacing)
      args.push(replacing, expected.version, expected.value)
    }
    const rest = okPayload(await this.#write(null, 'update a key hash', keyId, SCRIPTS.updateHash, keys, args), keyId)
    // ['0']: the stored hash was no longer `replacing` (another verify upgraded it first).
    return rest[0] !== '0'
  }

  async putProof(keyId: string, proof: string): Promise<boolean> {
    const { layout } = this.#context
    if (!isKeyId(keyId) || typeof proof !== 'string' || proof.length === 0 || proof.length > 128) return false
    const keys = [layout.record(keyId), layout.credential(keyId)]
    const { tag } = tagged(await this.#write(null, 'share a proof', keyId, SCRIPTS.putProof, keys, [proof]))
    if (tag === 'ok') return true
    if (tag === 'refused') return false
    throw new CorruptRecordError(`putProof replied with the unknown tag ${JSON.stringify(tag.slice(0, 40))}`)
  }

  /** Not through `#write`: a pending reset refuses the other writes, not this one (it is how a reset store gets its revocations back). */
  async restoreRevocation(record: KeyRecord): Promise<boolean> {
    const { layout, options, identity } = this.#context
    if (!isKeyId(record.id) || record.revokedAt === null) throw new InvalidInputError('record', 'a restored revocation must be a revoked key record')
    const keys = [layout.record(record.id), layout.credential(record.id)]
    const args = [options.retentionMs, this.#channelArg, keyMessage(record.id, options.clock.now()), ...encodeRecord(record)]
    const [changed] = await this.#context.call('write a revocation back', record.id, options.timeoutMs, async (redis) => {
      await this.#index(redis, record)
      const reply = okPayload(await runScript(redis, SCRIPTS.restoreRevocation, keys, args), record.id)
      if (reply[0] === 1) await identity.advance(redis)
      return reply
    })
    if (changed === 1) await this.#publishAfter(record.id)
    return changed === 1
  }

  /** Writes one batch of usage counts (the `UsageBatcher`'s flush). */
  async writeUsage(batch: UsageDelta[]): Promise<void> {
    const { layout } = this.#context
    await this.#context.call('record usage', undefined, this.#context.options.timeoutMs, async (redis) => {
      // Sent back to back without waiting for replies (Redis pipelining; on a
      // Cluster ioredis sends each to its node); one script per key and batch.
      await Promise.all([
        ...batch.map((delta) =>
          runScript(redis, SCRIPTS.recordUsage, [layout.record(delta.keyId)], [
            delta.count,
            delta.lastUsedAt,
            delta.lastUsedInGraceAt === null ? '' : delta.lastUsedInGraceAt,
          ]),
        ),
        ...batch.flatMap((delta) => (delta.rotation ? [writeRotationUsage(redis, layout, delta.keyId, delta.rotation)] : [])),
        ...batch.map((delta) => compliance.writeDailyUsage(redis, this.#context.compliance, delta)),
      ])
    })
  }

  /** Standalone scripts publish from inside Lua; a Cluster needs SPUBLISH to the channel's own slot. */
  get #channelArg(): string {
    return this.#context.options.cluster ? '' : this.#context.layout.channel
  }

  async #publishAfter(keyId: string): Promise<void> {
    const { options, layout } = this.#context
    if (!options.cluster) return
    try {
      await this.#context.call('publish an invalidation', keyId, options.timeoutMs, (redis) =>
        (redis as Cluster).spublish(layout.channel, keyMessage(keyId, options.clock.now())),
      )
    } catch (error) {
      // The change is stored; replicas see it after their cache.stateTtl.
      options.logger.warn({ event: 'invalidation.publish_failed', keyId, err: { message: (error as Error).message } }, 'keyrot could not publish an invalidation')
    }
  }

  async #write(
    operation: DurableOperation | null,
    what: string,
    keyId: string,
    script: LuaScript,
    keys: string[],
    args: (string | number)[],
    indexed?: KeyRecord,
  ): Promise<unknown> {
    const { identity } = this.#context
    const { durability, timeoutMs } = this.#context.options
    const durable = operation !== null && durability.operations.has(operation)
    if (operation !== null) {
      // Nobody builds on a store that lost its data by accident: an operator accepts the reset first.
      await identity.confirm()
      if (identity.resetPending) throw new StoreResetError(`The Redis store was reset; ${what} waits for \`keyrot store accept-reset\`.`, { keyId })
    }
    return this.#context.call(what, keyId, timeoutMs + (durable ? durability.timeoutMs : 0), async (redis) => {
      // Index first: an entry whose record never got written is pruned by list().
      if (indexed) await this.#index(redis, indexed)
      // The change sequence moves after the write (see store-identity.ts); usage and re-hashes do not move it.
      if (!durable) {
        if (operation === null) return runScript(redis, script, keys, args)
        // Sent back to back on one connection, so Redis runs the increment after the write (but for a
        // NOSCRIPT retry, whose EVAL comes after it); one round trip instead of two.
        const [reply] = await Promise.all([runScript(redis, script, keys, args), identity.advance(redis)])
        return reply
      }
      // The increment is queued behind the script (and before any WAIT, which then covers it too).
      const [{ reply, acknowledged, attached }] = await Promise.all([
        runScriptAndWait(redis, script, keys, args, durability.replicas, durability.timeoutMs),
        identity.advance(redis),
      ])
      if (attached === 0) {
        this.#context.warnOnce('durability.no_replica', {}, 'keyrot durability: the primary has no replica attached; WAIT has nothing to wait for')
      } else if (acknowledged < durability.replicas) {
        const message = `${what}: written on the primary but acknowledged by ${acknowledged} of ${durability.replicas} replica(s) within ${durability.timeoutMs} ms`
        // Revoke and setExpiry are safe to retry; an operation that minted a token must return it.
        if (operation === 'revoke' || operation === 'setExpiry') throw new StoreUnavailableError(`The Redis store could not ${message}.`, { keyId })
        this.#context.options.logger.error({ event: 'durability.shortfall', keyId, operation, acknowledged }, `keyrot ${message}`)
      }
      return reply
    })
  }

  async #index(redis: RedisClient, record: KeyRecord): Promise<void> {
    const { layout } = this.#context
    await Promise.all([redis.sadd(layout.tenants, record.tenantId), redis.hsetnx(layout.tenantIndex(record.tenantId), record.id, String(record.createdAt))])
  }
}

function assertSameFamily(oldKeyId: string, newKey: KeyRecord): void {
  if (!isKeyId(oldKeyId)) throw new KeyNotFoundError(oldKeyId)
  if (!isKeyId(newKey.id) || newKey.familyId !== oldKeyId.slice(0, 10) || !newKey.id.startsWith(newKey.familyId)) {
    // One hash slot per rotation: the successor must be in the old key's family.
    throw new InvalidInputError('id', `the successor of ${oldKeyId} must be a key id of the same family`)
  }
}

/** The keys a rotation's script touches: the old and the new key's record and credential. */
function successionKeys(layout: KeyLayout, oldKeyId: string, newKeyId: string): string[] {
  return [layout.record(oldKeyId), layout.credential(oldKeyId), layout.record(newKeyId), layout.credential(newKeyId)]
}
