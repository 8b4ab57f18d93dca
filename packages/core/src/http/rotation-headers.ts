import type { RotationDue } from '../policy/policy-options.js'

/**
 * The response headers of a key due for rotation (docs/policies.md#headers):
 *
 * - `Deprecation: @<epoch seconds>` (RFC 9745, a structured-field Date): the
 *   instant the key is due (`createdAt + maxAge`); a date in the future
 *   announces it, a past one says it is overdue.
 * - `Sunset: <HTTP-date>` (RFC 8594) only when the policy is enforced: the
 *   key then stops working at that instant. Without `enforce` an overdue key
 *   keeps working, and a Sunset date would be a false promise.
 *
 * Sent only to a client that proved the key's secret (they come from a
 * successful verify), so they tell an outsider nothing.
 */
export function rotationHeaders(due: RotationDue): Readonly<Record<string, string>> {
  // The verifier hands out one frozen `RotationDue` per cached record: its headers are formatted once.
  let headers = formatted.get(due)
  if (headers === undefined) {
    const fresh: Record<string, string> = { deprecation: `@${Math.floor(due.dueAt / 1000)}` }
    if (due.enforced) fresh['sunset'] = new Date(due.dueAt).toUTCString()
    headers = Object.freeze(fresh)
    formatted.set(due, headers)
  }
  return headers
}

const formatted = new WeakMap<RotationDue, Readonly<Record<string, string>>>()
