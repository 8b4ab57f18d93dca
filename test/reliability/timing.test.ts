import { randomInt } from 'node:crypto'
import { Argon2Hasher, createKeyring, MemoryStore, type Hasher, type Keyring, type KeyringEventName } from '@keyrot/core'
import { describe, expect, it } from 'vitest'
import { withChecksum } from '../http/hostile-credentials.js'
import { SecretLedger } from '../support/secret-scan.js'

/**
 * Does verify() take longer for a wrong secret that shares more leading
 * characters with the right one? Interleaved samples of two classes of
 * wrong tokens (valid checksum, right key id, key state cached): the first
 * secret character already wrong, or only the last one wrong. A
 * Mann-Whitney U test compares the two distributions; |z| < 4 (two-sided
 * p > 6e-5) counts as no dependency.
 *
 * The same test must find a leak that is there: a control keyring whose
 * hasher also compares the secret character by character, spending 5 µs per
 * matching character (0.2 ms over 42), must come out with |z| > 5.
 *
 * Argon2id with small parameters (m=1024 KiB, t=1): the comparison is the
 * same at any cost, and the run stays short.
 */

const SAMPLES_PER_CLASS = 600
const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
const SECRET_LENGTH = 43

/** Mann-Whitney U z-score (normal approximation, tie-corrected) of `a` against `b`. */
function mannWhitneyZ(a: readonly number[], b: readonly number[]): number {
  const all = [...a.map((value) => ({ value, fromA: true })), ...b.map((value) => ({ value, fromA: false }))].sort((x, y) => x.value - y.value)
  const n = all.length
  let rankSumA = 0
  let tieTerm = 0
  for (let i = 0; i < n; ) {
    let j = i
    while (j + 1 < n && (all[j + 1] as { value: number }).value === (all[i] as { value: number }).value) j++
    const rank = (i + j + 2) / 2
    for (let k = i; k <= j; k++) if ((all[k] as { fromA: boolean }).fromA) rankSumA += rank
    const t = j - i + 1
    tieTerm += t ** 3 - t
    i = j + 1
  }
  const [n1, n2] = [a.length, b.length]
  const u = rankSumA - (n1 * (n1 + 1)) / 2
  const sd = Math.sqrt(((n1 * n2) / 12) * (n + 1 - tieTerm / (n * (n - 1))))
  return (u - (n1 * n2) / 2) / sd
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((x, y) => x - y)
  return sorted[Math.floor(sorted.length / 2)] as number
}

function randomSecretChar(not?: string): string {
  for (;;) {
    const char = ALPHABET[randomInt(ALPHABET.length)] as string
    if (char !== not) return char
  }
}

/** A token for `keyId` whose secret shares exactly `shared` leading characters with `secret`, with a valid checksum. */
function wrongToken(prefix: string, keyId: string, secret: string, shared: number): string {
  let wrong = secret.slice(0, shared) + randomSecretChar(secret[shared])
  while (wrong.length < SECRET_LENGTH) wrong += randomSecretChar()
  return withChecksum(`${prefix}_${keyId}_${wrong}`)
}

/** The control: Argon2, plus an early-exit comparison with the right secret that costs 5 µs per matching character. */
class LeakyHasher implements Hasher {
  readonly #inner: Hasher
  rightSecret = ''
  constructor(inner: Hasher) {
    this.#inner = inner
  }
  hash(token: string): Promise<string> {
    return this.#inner.hash(token)
  }
  async verify(hash: string, token: string): Promise<boolean> {
    const secret = token.slice(token.lastIndexOf('_') + 1, -6)
    for (let i = 0; i < secret.length && secret[i] === this.rightSecret[i]; i++) {
      const until = performance.now() + 0.005
      while (performance.now() < until) {
        // spin
      }
    }
    return this.#inner.verify(hash, token)
  }
}

interface TimingRun {
  zeroShared: number[]
  manyShared: number[]
  z: number
}

async function measure(keyring: Keyring, token: string, onSecret?: (secret: string) => void): Promise<TimingRun> {
  const last = token.lastIndexOf('_')
  const middle = token.lastIndexOf('_', last - 1)
  const prefix = token.slice(0, middle)
  const keyId = token.slice(middle + 1, last)
  const secret = token.slice(last + 1, -6)
  onSecret?.(secret)
  // Caches the key state and the proof of the right token: the wrong ones then cost no store read.
  expect((await keyring.verify(token)).ok).toBe(true)
  const plan = [...Array<number>(SAMPLES_PER_CLASS).fill(0), ...Array<number>(SAMPLES_PER_CLASS).fill(SECRET_LENGTH - 1)]
  for (let i = plan.length - 1; i > 0; i--) {
    const j = randomInt(i + 1)
    ;[plan[i], plan[j]] = [plan[j] as number, plan[i] as number]
  }
  const tokens = plan.map((shared) => wrongToken(prefix, keyId, secret, shared))
  for (let i = 0; i < 50; i++) await keyring.verify(wrongToken(prefix, keyId, secret, randomInt(SECRET_LENGTH)))
  const zeroShared: number[] = []
  const manyShared: number[] = []
  for (let i = 0; i < plan.length; i++) {
    const started = performance.now()
    const result = await keyring.verify(tokens[i] as string)
    const elapsed = performance.now() - started
    if (result.ok || result.error.code !== 'KEYROT_INVALID_SECRET') throw new Error(`a wrong secret verified as ${result.ok ? 'ok' : result.error.code}`)
    ;(plan[i] === 0 ? zeroShared : manyShared).push(elapsed)
  }
  return { zeroShared, manyShared, z: mannWhitneyZ(manyShared, zeroShared) }
}

function report(label: string, run: TimingRun): string {
  const [m0, m42] = [median(run.zeroShared) * 1000, median(run.manyShared) * 1000]
  return `[timing] ${label}: median ${m0.toFixed(0)} µs with 0 leading characters right, ${m42.toFixed(0)} µs with 42 right (diff ${(m42 - m0).toFixed(0)} µs), Mann-Whitney z = ${run.z.toFixed(2)}, n = ${run.zeroShared.length} + ${run.manyShared.length}`
}

describe('verify timing', () => {
  it('does not depend on how many leading characters of a wrong secret are right', async () => {
    const argon2 = new Argon2Hasher({ memoryCost: 1024, timeCost: 1, parallelism: 1 })
    const captured: string[] = []
    const logger = {
      info: (...args: unknown[]) => void captured.push(JSON.stringify(args)),
      warn: (...args: unknown[]) => void captured.push(JSON.stringify(args)),
      error: (...args: unknown[]) => void captured.push(JSON.stringify(args)),
    }
    const keyring = createKeyring({ store: new MemoryStore(), hasher: argon2, rateLimit: false, cache: { stateTtl: '1h' }, logger })
    const events: KeyringEventName[] = ['verification.failed', 'verification.succeeded', 'key.created']
    for (const event of events) keyring.on(event, (payload) => captured.push(JSON.stringify(payload)))
    const ledger = new SecretLedger()
    const { token } = await keyring.create({ tenantId: 'acme', name: 'timing' })
    ledger.addToken(token)
    const real = await measure(keyring, token)

    const leaky = new LeakyHasher(argon2)
    const control = createKeyring({ store: new MemoryStore(), hasher: leaky, rateLimit: false, cache: { stateTtl: '1h' } })
    const issued = await control.create({ tenantId: 'acme', name: 'timing-control' })
    const leak = await measure(control, issued.token, (secret) => (leaky.rightSecret = secret))
    console.log(report('keyring verify', real))
    console.log(report('control with a 5 µs/char early-exit compare', leak))
    await keyring.close()
    await control.close()

    expect(Math.abs(leak.z)).toBeGreaterThan(5)
    expect(Math.abs(real.z)).toBeLessThan(4)
    // No event or log line of the run carries the token.
    expect(captured.length).toBeGreaterThan(2 * SAMPLES_PER_CLASS)
    expect(ledger.scan([{ source: 'events and logs', content: captured.join('\n') }])).toEqual([])
  }, 120_000)
})
