import * as crypto from 'node:crypto'
import { randomBytes } from 'node:crypto'

const oneShotHash = (crypto as { hash?: (algorithm: string, data: string, encoding: 'base64') => string }).hash

/**
 * A digest function salted with a fresh per-process random pepper: the key
 * under which caches remember tokens without holding them. Not reversible,
 * not stable across processes. Uses one-shot `crypto.hash` (Node >= 20.12),
 * which allocates no Hash object: half the cost of `createHash()`.
 */
export function createTokenDigester(): (token: string) => string {
  const pepper = randomBytes(32).toString('base64')
  if (oneShotHash !== undefined) return (token) => oneShotHash('sha256', pepper + token, 'base64')
  return (token) => crypto.createHash('sha256').update(pepper).update(token).digest('base64')
}
