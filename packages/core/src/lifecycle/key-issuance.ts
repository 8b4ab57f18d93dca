import { InvalidInputError } from '../errors.js'
import type { ResolvedKeyringOptions } from '../options.js'
import type { SecretSealer } from '../signing/sealer.js'
import { generateSigningSecret, SIGNING_PREFIX, type CreateSigningSecretInput, type IssuedSigningSecret } from '../signing/secret.js'
import { assertValidPrefix, generateToken, newKeyId } from '../token/format.js'
import { toApiKey, type ApiKey, type KeyRecord } from '../types.js'
import { checkKeyDraft } from './key-draft.js'
import type { KeyringContext } from './keyring-context.js'
import type { CreateKeyInput, IssuedKey, RotateOptions } from './keyring-types.js'
import { assertRotatable, newRecord, restamp, successorDraft, type RecordDraft } from './succession.js'
import { checkGrace, checkName } from './validate.js'

// The keyring's operations that mint a token: create, signing secrets, and
// rotation and emergency rotation (a successor). The doc comments of
// the `Keyring` methods that run them say what each promises.

/** `keyring.create()` and `keyring.createSigningSecret()` (`signing`: the signing prefix is allowed). */
export async function issueKey(context: KeyringContext, input: CreateKeyInput, signing: boolean): Promise<IssuedKey> {
  context.assertOpen()
  if (input === null || typeof input !== 'object') throw new InvalidInputError('input', 'must be an object')
  const now = context.clock.now()
  const prefix = input.prefix ?? context.options.prefix
  try {
    assertValidPrefix(prefix)
  } catch (error) {
    throw new InvalidInputError('prefix', (error as Error).message)
  }
  if (!signing && prefix === SIGNING_PREFIX) {
    throw new InvalidInputError('prefix', `'${SIGNING_PREFIX}' is reserved for signing secrets: use createSigningSecret()`)
  }
  const checked = checkKeyDraft(input, context.store, now)
  const credits = checked.credits
  const draft = { ...checked.draft, prefix }
  for (let attempt = 0; ; attempt++) {
    const { token, record } = await mint(context.options, draft, newKeyId(), null, now)
    try {
      await context.store.insert(record)
      context.reset.noteKnown(record.id)
      // The family's balance, before the token leaves: no verify can come first.
      if (credits) await context.store.adjustCredits?.({ familyId: record.familyId, change: { set: credits.remaining }, refill: credits.config.refill, now })
    } catch (error) {
      // A key id collision (2^-59 per pair) is retried with a new id.
      if (error instanceof InvalidInputError && error.field === 'id' && attempt < 3) continue
      throw error
    }
    const key = toApiKey(record, now)
    context.events.emit('key.created', { key, at: now })
    context.audit('key.created', { keyId: key.id, tenantId: key.tenantId })
    // Returns once the action is in the shared history (or its failed append was logged): a
    // later action, on any replica, is recorded after it.
    await context.historySettled()
    return { token, key }
  }
}

/** `keyring.createSigningSecret()`. */
export async function issueSigningSecret(context: KeyringContext, input: CreateSigningSecretInput): Promise<IssuedSigningSecret> {
  sealerOf(context.options)
  if (input === null || typeof input !== 'object') throw new InvalidInputError('input', 'must be an object')
  const { token, key } = await issueKey(
    context,
    { tenantId: input.tenantId, name: input.name, expiresAt: input.expiresAt, expiresIn: input.expiresIn, metadata: input.metadata, prefix: SIGNING_PREFIX },
    true,
  )
  return { secret: token, key }
}

/** `keyring.rotate()`. */
export async function rotateKey(context: KeyringContext, keyId: string, options: RotateOptions): Promise<IssuedKey & { previous: ApiKey }> {
  context.assertOpen()
  const now = context.clock.now()
  const gracePeriodMs = options.gracePeriod === undefined ? context.options.gracePeriodMs : checkGrace(options.gracePeriod, 'gracePeriod')
  const old = await context.mustGet(keyId)
  assertRotatable(old, now)
  const { token, record } = await mint(context.options, successorDraft(old, options, now, context.options.prefix), newKeyId(old.familyId), old.id, now)
  // The grace period starts when the rotation is written, not before the
  // (slow, Argon2) hashing of the new token: clients get all of it.
  const at = Math.max(now, context.clock.now())
  restamp(record, now, at, options.expiresAt === undefined)
  const { previous, next } = await context.store.rotate({ oldKeyId: old.id, newKey: record, graceDeadline: at + gracePeriodMs, now: at })
  context.reset.observe(previous, true)
  context.reset.noteKnown(next.id)
  context.invalidate(old.id)
  const result = { token, key: toApiKey(next, at), previous: toApiKey(previous, at) }
  context.events.emit('key.rotated', { previous: result.previous, next: result.key, gracePeriodMs, at })
  context.audit('key.rotated', { keyId: old.id, newKeyId: next.id, tenantId: old.tenantId, gracePeriodMs, graceEndsAt: previous.expiresAt })
  await context.historySettled()
  return result
}

/** `keyring.emergencyRotate()`. */
export async function emergencyRotateKey(
  context: KeyringContext,
  keyId: string,
  options: { incidentId: string; reason?: string } & Omit<RotateOptions, 'gracePeriod'>,
): Promise<IssuedKey & { revoked: ApiKey }> {
  context.assertOpen()
  const now = context.clock.now()
  const incidentId = checkName(options?.incidentId, 'incidentId')
  const reason = options.reason === undefined ? `emergency rotation (${incidentId})` : checkName(options.reason, 'reason')
  const old = await context.mustGet(keyId)
  assertRotatable(old, now, '; to stop a key that is in its grace period, revoke it')
  const { token, record } = await mint(context.options, successorDraft(old, options, now, context.options.prefix), newKeyId(old.familyId), old.id, now)
  const at = Math.max(now, context.clock.now())
  restamp(record, now, at, options.expiresAt === undefined)
  const { revoked, next } = await context.store.emergencyRotate({ oldKeyId: old.id, newKey: record, at, reason, incidentId })
  context.reset.observe(revoked, true)
  context.reset.noteKnown(next.id)
  context.invalidate(old.id)
  const result = { token, key: toApiKey(next, at), revoked: toApiKey(revoked, at) }
  context.events.emit('key.emergency_rotated', { revoked: result.revoked, next: result.key, incidentId, at })
  context.audit('key.emergency_rotated', { keyId: old.id, newKeyId: next.id, tenantId: old.tenantId, incidentId, reason })
  await context.historySettled()
  return result
}

async function mint(
  options: ResolvedKeyringOptions,
  draft: RecordDraft,
  id: string,
  rotatedFrom: string | null,
  now: number,
): Promise<{ token: string; record: KeyRecord }> {
  // A signing secret is kept encrypted, not hashed: HMAC needs the secret itself.
  const signing = draft.prefix === SIGNING_PREFIX
  const token = signing ? generateSigningSecret() : generateToken(draft.prefix, id)
  const hash = signing ? sealerOf(options).seal(token, id) : await options.hasher.hash(token)
  return { token, record: newRecord(draft, id, rotatedFrom, now, hash) }
}

function sealerOf(options: ResolvedKeyringOptions): SecretSealer {
  const sealer = options.signing
  if (!sealer) throw new TypeError('signing secrets need master keys: createKeyring({ signing: { masterKeys: [{ id, key }] } })')
  return sealer
}
