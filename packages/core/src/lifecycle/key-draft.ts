import { checkCredits } from '../credits/credits.js'
import { InvalidInputError } from '../errors.js'
import type { KeyStore } from '../store/store.js'
import { checkAllowedIps } from './allowed-ips.js'
import { requireCreditStore } from './credits.js'
import type { CreateKeyInput } from './keyring-types.js'
import type { RecordDraft } from './succession.js'
import { checkDuration, checkMetadata, checkName, checkRateLimit, checkScopes, checkTenantId, checkTimestamp } from './validate.js'

/** `expiresAt`, or `expiresIn` counted from `now` (the key's `createdAt`): one of them, in the future. */
function expiryOf(input: Pick<CreateKeyInput, 'expiresAt' | 'expiresIn'>, now: number): number | null {
  if (input.expiresIn !== undefined) {
    if (input.expiresAt !== undefined && input.expiresAt !== null) throw new InvalidInputError('expiresIn', 'give expiresAt or expiresIn, not both')
    const lifetime = checkDuration(input.expiresIn, 'expiresIn')
    if (lifetime === 0) throw new InvalidInputError('expiresIn', 'must be longer than 0')
    return checkTimestamp(now + lifetime, 'expiresIn')
  }
  const expiresAt = checkTimestamp(input.expiresAt, 'expiresAt')
  if (expiresAt !== null && expiresAt <= now) throw new InvalidInputError('expiresAt', 'must be in the future')
  return expiresAt
}

/**
 * Checks what a new key is made of (everything but its prefix and secret),
 * for `create()` and `import()` alike, so an imported key is held to the
 * same rules as one created here. Returns the record draft and the credits
 * it starts with (`null`: unlimited), to be written once the record is.
 */
export function checkKeyDraft(
  input: Omit<CreateKeyInput, 'prefix'>,
  store: KeyStore,
  now: number,
): { draft: Omit<RecordDraft, 'prefix'>; credits: ReturnType<typeof checkCredits> } {
  const expiresAt = expiryOf(input, now)
  // A key with credits needs a store that keeps balances (left out, it would silently be unlimited).
  const credits = checkCredits(input.credits)
  if (credits) requireCreditStore(store)
  const draft = {
    ...(credits ? { credits: credits.config } : {}),
    tenantId: checkTenantId(input.tenantId),
    name: checkName(input.name),
    scopes: checkScopes(input.scopes),
    metadata: checkMetadata(input.metadata),
    rateLimit: checkRateLimit(input.rateLimit),
    expiresAt,
    allowedIps: checkAllowedIps(input.allowedIps) ?? undefined,
  }
  return { draft, credits }
}
