import { familyOf } from '@keyrot/core'

/**
 * Where everything lives in Redis. Every key one script touches carries the
 * key family's hash tag (`{<familyId>}`): a key and all keys rotated from it
 * share their first 10 characters, so a rotation's old and new key are in
 * one Redis Cluster hash slot.
 *
 * - `<p>:{<family>}:cred:<keyId>`: the credential verify relies on, for a
 *   key with a deadline (`1`; the hash in record format 1), with
 *   `PEXPIREAT` at the deadline; deleted on revocation.
 * - `<p>:{<family>}:rec:<keyId>`: the full record (why a key fails, usage,
 *   the hash; record-codec.ts), kept `retention` past the deadline or revocation.
 * - `<p>:{<family>}:rotm:<keyId>` / `rotc:<keyId>`: rotation telemetry (uses
 *   per minute; clients of uses in grace), TTL'd a day after the last use.
 * - `<p>:tenant:{<tenantId>}:ids`: hash of a tenant's key ids = creation
 *   time (a hash costs about 40 B per key less than a sorted set).
 * - `<p>:tenant:{<tenantId>}`: the same as a sorted set, as releases before
 *   record format 2 wrote it; read, pruned, and emptied by `store migrate`.
 * - `<p>:tenants`: set of tenant ids (for listing every key).
 * - `<p>:import:<index>`: the key id of an imported key, by the keyed index
 *   of its token (no family tag: a legacy token carries no key id); dropped
 *   on revocation, expiring `retention` after the key's deadline.
 * - `<p>:invalidation`: the pub/sub channel of changes and heartbeats.
 * - `<p>:{store}:id`, `<p>:{store}:seq`, `<p>:{store}:reset`: the store's
 *   identity, change sequence and unaccepted reset (one slot, read by one
 *   script; see store-identity.ts).
 */
export class KeyLayout {
  readonly prefix: string
  readonly tenants: string
  readonly channel: string
  readonly storeIdentity: string
  readonly storeSequence: string
  readonly storeReset: string

  constructor(prefix: string) {
    this.prefix = prefix
    this.tenants = `${prefix}:tenants`
    this.channel = `${prefix}:invalidation`
    this.storeIdentity = `${prefix}:{store}:id`
    this.storeSequence = `${prefix}:{store}:seq`
    this.storeReset = `${prefix}:{store}:reset`
  }

  record(keyId: string): string {
    return `${this.prefix}:{${familyOf(keyId)}}:rec:${keyId}`
  }

  credential(keyId: string): string {
    return `${this.prefix}:{${familyOf(keyId)}}:cred:${keyId}`
  }

  /** Rotation uses per minute: field `m<minute % retention>` = `<minute>:<count>`. */
  rotationMinutes(keyId: string): string {
    return `${this.prefix}:{${familyOf(keyId)}}:rotm:${keyId}`
  }

  /** Clients of uses in grace: field `c<ip>\n<user agent>` = `<count>:<lastSeenAt>`, plus `omitted`. */
  rotationClients(keyId: string): string {
    return `${this.prefix}:{${familyOf(keyId)}}:rotc:${keyId}`
  }

  /** An imported key's id by the keyed index of its token (see `keyring.import()`). */
  importIndex(index: string): string {
    return `${this.prefix}:import:${index}`
  }

  /** The index of earlier releases (sorted set by creation time). */
  tenant(tenantId: string): string {
    return `${this.prefix}:tenant:{${tenantId}}`
  }

  /** A tenant's key index: field `<keyId>` = creation time (epoch ms). Same slot as {@link tenant}. */
  tenantIndex(tenantId: string): string {
    return `${this.prefix}:tenant:{${tenantId}}:ids`
  }
}
