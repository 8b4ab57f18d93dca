import type { KeyringEventName, KeyringEvents, KeyringListener } from '../events.js'
import { errorFields, type Logger } from '../logger.js'
import { currentActor } from './actor.js'
import type { HistoryAction, HistoryEntryInput, HistoryLog } from './history.js'

/** The part of the keyring the recorder needs (no import of the keyring: no cycle). */
interface EventSource {
  on<E extends KeyringEventName>(event: E, listener: KeyringListener<E>): () => void
}

/** Appends waiting for their turn, past which an admin action goes unrecorded (logged). Admin actions are rare: this is a failing log, not a busy one. */
const MAX_PENDING = 10_000

/** One history entry per admin event. Payloads carry no token, secret or hash; neither do entries. */
export function historyEntryOf<E extends HistoryAction>(action: E, payload: KeyringEvents[E]): HistoryEntryInput {
  switch (action) {
    case 'key.created': {
      const { key, at } = payload as KeyringEvents['key.created']
      return { at, action, keyId: key.id, familyId: key.familyId, tenantId: key.tenantId, expiresAt: key.expiresAt }
    }
    case 'key.rotated': {
      const { previous, next, gracePeriodMs, at } = payload as KeyringEvents['key.rotated']
      return {
        at,
        action,
        keyId: previous.id,
        familyId: previous.familyId,
        tenantId: previous.tenantId,
        newKeyId: next.id,
        gracePeriodMs,
        expiresAt: previous.expiresAt,
      }
    }
    case 'key.revoked': {
      const { key, reason, at } = payload as KeyringEvents['key.revoked']
      return {
        at,
        action,
        keyId: key.id,
        familyId: key.familyId,
        tenantId: key.tenantId,
        ...(reason === null ? {} : { reason }),
        ...(key.incidentId === null ? {} : { incidentId: key.incidentId }),
      }
    }
    case 'key.leaked': {
      const { key, provider, sourceUrl, action: applied, newKeyId, at } = payload as KeyringEvents['key.leaked']
      return {
        at,
        action,
        keyId: key.id,
        familyId: key.familyId,
        tenantId: key.tenantId,
        incidentId: `leak:${provider}`,
        reason: leakReason(provider, sourceUrl, applied),
        ...(newKeyId === null ? {} : { newKeyId }),
      }
    }
    case 'key.emergency_rotated': {
      const { revoked, next, incidentId, at } = payload as KeyringEvents['key.emergency_rotated']
      return {
        at,
        action,
        keyId: revoked.id,
        familyId: revoked.familyId,
        tenantId: revoked.tenantId,
        newKeyId: next.id,
        incidentId,
        ...(revoked.revokedReason === null ? {} : { reason: revoked.revokedReason }),
      }
    }
    default: {
      const { key, previousExpiresAt, at } = payload as KeyringEvents['key.expiry_changed']
      return { at, action: 'key.expiry_changed', keyId: key.id, familyId: key.familyId, tenantId: key.tenantId, expiresAt: key.expiresAt, previousExpiresAt }
    }
  }
}

/** The history reason of a leak: who found the key, where, and what was done (at most 200 characters, like every reason). */
export function leakReason(provider: string, sourceUrl: string | null, action: string): string {
  const text = `public leak reported by ${provider} (${action})${sourceUrl ? `: ${sourceUrl}` : ''}`
  return text.length <= 200 ? text : `${text.slice(0, 199)}…`
}

/**
 * Writes a keyring's admin actions to a `HistoryLog` by listening to its own
 * events; the admin methods only wait for `settled()` before returning.
 *
 * Appends run one at a time, in the order of the actions, after each action
 * succeeded, and the action returns once its entry is appended: an action
 * started after another returned, on any replica, is recorded after it.
 * An append that fails is logged (`history.append_failed`, at
 * `error`) and does not fail the action: the key change already happened in
 * the store, and reporting it as failed would make the caller retry an
 * action that succeeded (a second rotation, a second key). The history is
 * the record of what happened, not a gate in front of it.
 */
export class HistoryRecorder {
  readonly log: HistoryLog
  readonly #logger: Logger
  readonly #detach: Array<() => void> = []
  #tail: Promise<void> = Promise.resolve()
  #pending = 0

  constructor(source: EventSource, log: HistoryLog, logger: Logger) {
    this.log = log
    this.#logger = logger
    const record = <E extends HistoryAction>(action: E) =>
      this.#detach.push(source.on(action, ((payload: KeyringEvents[E]) => this.#enqueue(historyEntryOf(action, payload))) as KeyringListener<E>))
    record('key.created')
    record('key.rotated')
    record('key.revoked')
    record('key.emergency_rotated')
    record('key.expiry_changed')
    record('key.leaked')
  }

  /** Resolves once every action recorded so far has been appended (or its failure logged). Never rejects. */
  settled(): Promise<void> {
    return this.#tail
  }

  /** Stops recording, waits for pending appends, then closes the log. */
  async close(): Promise<void> {
    for (const detach of this.#detach.splice(0)) detach()
    await this.#tail
    await this.log.close?.()
  }

  #enqueue(entry: HistoryEntryInput): void {
    // Emitted synchronously inside the admin call: its async context names the actor.
    const actor = currentActor()
    if (actor !== undefined) entry.actor = actor
    if (this.#pending >= MAX_PENDING) {
      this.#logger.error(
        { event: 'history.append_failed', action: entry.action, keyId: entry.keyId, err: { name: 'Error', message: `${MAX_PENDING} appends already pending` } },
        'keyrot could not record an admin action in the history',
      )
      return
    }
    this.#pending++
    this.#tail = this.#tail.then(async () => {
      try {
        await this.log.append(entry)
      } catch (error) {
        this.#logger.error(
          { event: 'history.append_failed', action: entry.action, keyId: entry.keyId, ...errorFields(error) },
          'keyrot could not record an admin action in the history',
        )
      } finally {
        this.#pending--
      }
    })
  }
}
