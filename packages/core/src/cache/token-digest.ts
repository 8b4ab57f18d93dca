import * as crypto from 'node:crypto'
import { randomBytes } from 'node:crypto'

const oneShotHash = (crypto as { hash?: (algorithm: string, data: string, encoding: 'binary') => string }).hash

/**
 * A digest function salted with a fresh per-process random pepper: the key
 * under which caches remember tokens without holding them. Not reversible,
 * not stable across processes. Uses one-shot `crypto.hash` (Node >= 20.12),
 * which allocates no Hash object: half the cost of `createHash()`.
 *
 * The first 12 bytes of the SHA-256, one character per byte ('binary', that
 * is latin1): a 12-character string is copied out of the digest, not kept as
 * a slice of it, so each cached key holds 32 bytes for it (a base64 digest
 * takes 64). 96 bits are ample here: without the pepper nobody can compute
 * a digest offline, so matching a proven token's digest takes about 2^96
 * requests, and an accidental collision among a million cached keys has a
 * chance of about 2^-57.
 */
const DIGEST_LENGTH = 12

export function createTokenDigester(): (token: string) => string {
  const pepper = randomBytes(32).toString('base64')
  if (oneShotHash !== undefined) return (token) => oneShotHash('sha256', pepper + token, 'binary').slice(0, DIGEST_LENGTH)
  return (token) => crypto.createHash('sha256').update(pepper).update(token).digest('binary').slice(0, DIGEST_LENGTH)
}
