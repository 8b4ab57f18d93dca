import type { KeyRecord, Logger } from '@keyrot/core'
import { runScript } from './connection.js'
import { CorruptRecordError } from './record-codec.js'
import type { KeyLayout } from './keys.js'
import type { RedisClient } from './options.js'
import { defineLuaScript } from './scripts.js'

/**
 * KEYS: import index entry. ARGV: keyId, pexpireat ('' for none).
 * Claims the entry unless another key holds it; replies with the holder.
 * The entry is outside the key family's slot: it is found by the token alone.
 */
const PUT_IMPORT_INDEX = `
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then return held end
redis.call('SET', KEYS[1], ARGV[1])
if ARGV[2] ~= '' then redis.call('PEXPIREAT', KEYS[1], ARGV[2]) else redis.call('PERSIST', KEYS[1]) end
return ARGV[1]
`

/** KEYS: import index entry. ARGV: keyId. Deletes the entry only if that key holds it. */
const DROP_IMPORT_INDEX = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`

const IMPORT_SCRIPTS = Object.freeze({
  putImportIndex: defineLuaScript('putImportIndex', PUT_IMPORT_INDEX, 1),
  dropImportIndex: defineLuaScript('dropImportIndex', DROP_IMPORT_INDEX, 1),
})

/**
 * The index of imported keys in Redis: `<prefix>:import:<index>` holds the
 * key id (see `keyring.import()` in core). A legacy token has no key id, so
 * the entry cannot carry the family's hash tag: it is written and dropped by
 * its own one-key scripts, next to (not inside) the record's scripts. It
 * follows the key: expiring `retention` after the key's deadline or its
 * revocation, like the record.
 */
export interface ImportIndexContext {
  layout: KeyLayout
  retentionMs: number
  logger: Logger
}

const INDEX = /^[A-Za-z0-9_-]{1,128}$/

export function isImportIndex(index: unknown): index is string {
  return typeof index === 'string' && INDEX.test(index)
}

/** When the entry of a key with deadline `expiresAt` expires, as a script argument (`''`: never). */
function expiryArg(expiresAt: number | null, retentionMs: number): string {
  return expiresAt === null ? '' : String(expiresAt + retentionMs)
}

export async function findImported(redis: RedisClient, context: ImportIndexContext, index: string): Promise<string | null> {
  if (!isImportIndex(index)) return null
  const keyId = await redis.get(context.layout.importIndex(index))
  if (keyId !== null && typeof keyId !== 'string') throw new CorruptRecordError('an import index entry is not a string')
  return keyId
}

export async function putImportIndex(redis: RedisClient, context: ImportIndexContext, index: string, keyId: string, expiresAt: number | null): Promise<string> {
  const reply = await runScript(redis, IMPORT_SCRIPTS.putImportIndex, [context.layout.importIndex(index)], [keyId, expiryArg(expiresAt, context.retentionMs)])
  if (typeof reply !== 'string') throw new CorruptRecordError('putImportIndex did not reply with a key id')
  return reply
}

export async function dropImportIndex(redis: RedisClient, context: ImportIndexContext, index: string, keyId: string): Promise<void> {
  await runScript(redis, IMPORT_SCRIPTS.dropImportIndex, [context.layout.importIndex(index)], [keyId])
}

/**
 * Brings an imported key's entry in line with its record after a change:
 * expiring with the record (retention after the later of its deadline and
 * its revocation). A revoked key keeps its entry so that importing its token
 * again (re-running an import file) finds the revoked key instead of minting
 * a live one. A failure is logged, not thrown: the change itself is stored,
 * and an entry that outlives its key only maps a token to a key that then
 * fails (or is gone).
 */
export async function followImported(redis: RedisClient, context: ImportIndexContext, record: KeyRecord): Promise<void> {
  const index = record.importIndex
  if (index === undefined || !isImportIndex(index)) return
  try {
    const until = record.revokedAt !== null && (record.expiresAt === null || record.revokedAt > record.expiresAt) ? record.revokedAt : record.expiresAt
    await putImportIndex(redis, context, index, record.id, until)
  } catch (error) {
    context.logger.warn({ event: 'import_index.update_failed', keyId: record.id, err: { message: (error as Error).message } }, 'keyrot could not update an imported key index entry')
  }
}
