import { AsyncLocalStorage } from 'node:async_hooks'

const actors = new AsyncLocalStorage<string>()

/** Longest actor kept: an identity, not a document. */
const MAX_ACTOR_LENGTH = 200

/**
 * Runs `work` on behalf of `actor` (an admin identity such as
 * `api-key:<keyId>` or `cli:<user>`): the admin actions it starts are
 * recorded in the shared history with that actor, the "who" of evidence
 * reports. Carried by async context, so the keyring's admin methods keep
 * their signatures and every caller (the admin API, the CLI, your code) can
 * name itself without threading an argument through.
 *
 * @example
 * await runAsActor(`api-key:${req.apiKey.id}`, () => keyring.rotate(keyId))
 */
export function runAsActor<T>(actor: string, work: () => T): T {
  if (typeof actor !== 'string' || actor.length === 0) throw new TypeError('actor must be a non-empty string')
  return actors.run(actor.length > MAX_ACTOR_LENGTH ? `${actor.slice(0, MAX_ACTOR_LENGTH - 1)}…` : actor, work)
}

/** The actor of the admin action running now, if its caller named one. */
export function currentActor(): string | undefined {
  return actors.getStore()
}
