import { KeyNotFoundError } from '@keyrot/core'
import type { Cluster, Redis } from 'ioredis'
import { CliError, EXIT_ERROR } from './exit-codes.js'

/** The RedisStore's default `keyPrefix`. */
export const DEFAULT_KEY_PREFIX = 'keyrot'

/** SCAN rounds per node at most: the hint must never make a failed lookup slow on a big Redis. */
const MAX_SCAN_ROUNDS = 20

/** Key prefixes under which keyrot data lives (`<prefix>:tenants`), found with a bounded SCAN. */
async function prefixesHolding(client: Redis | Cluster, pattern: string, suffix: RegExp): Promise<Set<string>> {
  const found = new Set<string>()
  const nodes: Redis[] = 'nodes' in client && typeof (client as Cluster).nodes === 'function' && (client as Cluster).isCluster ? (client as Cluster).nodes('master') : [client as Redis]
  for (const node of nodes) {
    let cursor = '0'
    for (let round = 0; round < MAX_SCAN_ROUNDS; round++) {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
      for (const key of keys) {
        const match = suffix.exec(key)
        if (match) found.add(key.slice(0, match.index))
      }
      cursor = next
      if (cursor === '0') break
    }
  }
  return found
}

/**
 * A lookup of `keyId` failed under `keyPrefix`: when other prefixes hold
 * keyrot data (a RedisStore built with another `keyPrefix`), say so and how
 * to point the command at them. Returns the error to report.
 */
export async function withPrefixHint(error: KeyNotFoundError, client: Redis | Cluster, keyPrefix: string): Promise<Error> {
  let holding: Set<string>
  let withKey: Set<string>
  try {
    withKey = await prefixesHolding(client, `*:rec:${error.keyId ?? ''}`, /:\{[^}]*\}:rec:[^:]+$/)
    holding = await prefixesHolding(client, '*:tenants', /:tenants$/)
  } catch {
    return error
  }
  withKey.delete(keyPrefix)
  holding.delete(keyPrefix)
  if (withKey.size === 0 && holding.size === 0) return error
  const hint =
    withKey.size > 0
      ? `this key exists under key prefix ${[...withKey].map((p) => JSON.stringify(p)).join(', ')}`
      : `other key prefixes hold keyrot data: ${[...holding].sort().map((p) => JSON.stringify(p)).join(', ')}`
  const example = [...withKey][0] ?? [...holding].sort()[0]
  return new CliError(
    `${error.message} (key prefix ${JSON.stringify(keyPrefix)}); ${hint}: pass --key-prefix ${example} or set KEYROT_KEY_PREFIX`,
    { exitCode: EXIT_ERROR, code: error.code, cause: error },
  )
}
