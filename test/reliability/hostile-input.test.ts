import { ERROR_CODES, generateToken, newKeyId, type ErrorCode } from '@keyrot/core'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'
import { headerLine, jsonOf, type TestResponse } from '../http/client.js'
import { hostileHeaders, nodeVerdict } from '../http/hostile-credentials.js'
import { ensureBuilt } from '../support/build.js'
import { rawRequest } from '../support/raw-http.js'
import { countBy } from '../support/load.js'
import { admin, closeAgents, startReplica, type IssuedKeyBody, type Replica } from '../support/replicas.js'
import { corpusBytes, SecretLedger, suiteArtefacts } from '../support/secret-scan.js'

/**
 * 20,000 generated requests with hostile credential headers against one
 * replica process on Redis (built packages, real Argon2): huge values,
 * unicode, control characters, wrong schemes, truncated tokens, tokens with
 * a right checksum and a wrong secret, unknown key ids, a revoked key, two
 * credentials at once. Never a 5xx, never a crash, always a JSON error with
 * a code from the table, except where Node's own HTTP parser refuses the
 * bytes first (a bare 400 for control characters, 431 for an oversized
 * head): those are expected explicitly and counted.
 */

const RUNS = 20_000
const CONCURRENCY = 16
const SEED = Number(process.env.KEYROT_HOSTILE_SEED ?? Date.now() % 2 ** 31)

let redis: RedisServer
let replica: Replica
let valid: IssuedKeyBody
let revoked: IssuedKeyBody
const ledger = new SecretLedger()
/** Every answer to a hostile request (status, headers, body), for the secrets scan. */
const hostileAnswers: string[] = []

beforeAll(async () => {
  await ensureBuilt()
  redis = await startRedisServer()
  replica = await startReplica({ name: 'H', redisUrl: redis.url })
  valid = await admin<IssuedKeyBody>(replica, 'create', { tenantId: 'acme', name: 'hostile-valid' })
  revoked = await admin<IssuedKeyBody>(replica, 'create', { tenantId: 'acme', name: 'hostile-revoked' })
  await admin(replica, 'revoke', { keyId: revoked.key.id })
  ledger.addToken(valid.token)
  ledger.addToken(revoked.token)
}, 120_000)

afterAll(async () => {
  closeAgents()
  await replica?.stop()
  await redis?.stop()
})

/** Requests whose expected answer is known exactly, mixed into the hostile ones. */
interface HostileCase {
  lines: Buffer[]
  /** The one code the answer must carry, when known. */
  expect: ErrorCode | undefined
}

function wellFormedHeaders(): fc.Arbitrary<HostileCase> {
  const scheme = fc.constantFrom('Bearer ', 'bearer ')
  const unknownId = fc.constantFrom('sk_live', 'sk_test', 'pk_live_eu').map((prefix) => generateToken(prefix, newKeyId()))
  return fc.oneof<fc.Arbitrary<HostileCase>[]>(
    fc.tuple(scheme, unknownId).map(([s, token]) => ({ lines: [headerLine('Authorization', s + token)], expect: 'KEYROT_INVALID_KEY' as const })),
    // The right key id with a fresh secret and a valid checksum: a wrong secret reaching Argon2.
    fc.constant(null).map(() => ({ lines: [headerLine('X-API-Key', generateToken('sk_live', valid.key.id))], expect: 'KEYROT_INVALID_KEY' as const })),
    fc.constant({ lines: [headerLine('Authorization', `Bearer ${revoked.token}`)], expect: 'KEYROT_KEY_REVOKED' as const }),
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 200 }).map((value) => ({ lines: [headerLine('Authorization', `Bearer ${value.replace(/[\r\n]/g, '')}`)], expect: undefined })),
  )
}

describe('hostile input', () => {
  it(`answers ${RUNS.toLocaleString('en')} hostile requests with a JSON error and a known code, never a 5xx or a crash`, async () => {
    const arbitrary = fc.oneof(
      { weight: 2, arbitrary: hostileHeaders(valid.token).map((lines): HostileCase => ({ lines, expect: undefined })) },
      { weight: 1, arbitrary: hostileHeaders(revoked.token).map((lines): HostileCase => ({ lines, expect: undefined })) },
      { weight: 1, arbitrary: wellFormedHeaders() },
    )
    const samples = fc.sample(arbitrary, { numRuns: RUNS, seed: SEED })
    const known = new Set(Object.keys(ERROR_CODES))
    const outcomes: string[] = []
    const problems: string[] = []
    const describeCase = (lines: Buffer[]) =>
      lines
        .map((line) => line.toString('latin1').replaceAll(valid.token, '<valid token>').replaceAll(revoked.token, '<revoked token>').slice(0, 160))
        .join(' | ')

    const judge = (sample: HostileCase, response: TestResponse): string => {
      hostileAnswers.push(`${response.status} ${JSON.stringify(response.headers)} ${response.body}`)
      const node = nodeVerdict(sample.lines)
      if (response.status === 431) {
        if (node.tooLarge === false) problems.push(`431 for a head Node should accept: ${describeCase(sample.lines)}`)
        return '431 (Node: head too large)'
      }
      if (node.refusesBytes && response.status === 400 && response.body === '') return '400 (Node: bytes refused)'
      const body = jsonOf(response) as { error?: { code?: string } } | undefined
      const code = body?.error?.code
      if (response.status >= 500 || code === undefined || !known.has(code) || ERROR_CODES[code as ErrorCode].status !== response.status) {
        problems.push(`${response.status} ${response.body.slice(0, 120)} for ${describeCase(sample.lines)}`)
      } else if (sample.expect !== undefined && code !== sample.expect) {
        problems.push(`${code} instead of ${sample.expect} for ${describeCase(sample.lines)}`)
      } else if (response.headers['content-type'] !== 'application/json; charset=utf-8') {
        problems.push(`content-type ${response.headers['content-type']} for ${describeCase(sample.lines)}`)
      }
      return `${response.status} ${code}`
    }

    const started = performance.now()
    let next = 0
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < samples.length) {
          const sample = samples[next++] as (typeof samples)[number]
          try {
            outcomes.push(judge(sample, await rawRequest(replica.port, '/v1/whoami', sample.lines)))
          } catch (error) {
            outcomes.push('no answer')
            problems.push(`no answer (${(error as Error).message}) for ${describeCase(sample.lines)}`)
          }
        }
      }),
    )
    const seconds = (performance.now() - started) / 1000
    console.log(`[hostile-input] ${outcomes.length} requests in ${seconds.toFixed(1)} s (seed ${SEED}, KEYROT_HOSTILE_SEED to replay): ${JSON.stringify(countBy(outcomes, (o) => o))}`)
    for (const problem of problems.slice(0, 10)) console.log(`[hostile-input] ${problem}`)

    expect(outcomes).toHaveLength(RUNS)
    expect(problems).toEqual([])
    expect(outcomes.some((o) => o.startsWith('5'))).toBe(false)
    expect(replica.alive()).toBe(true)
    // Nothing reached the error handler and nothing was logged as an error.
    const logs = replica.logs()
    expect(logs.filter((line) => typeof line.level === 'number' && line.level >= 50)).toEqual([])
    expect(logs.filter((line) => line.msg === 'request failed')).toEqual([])
    // Every kind of answer the generators aim at came up.
    for (const expected of ['400 KEYROT_INVALID_REQUEST', '401 KEYROT_INVALID_KEY', '401 KEYROT_KEY_REVOKED', '400 (Node: bytes refused)']) {
      expect(outcomes).toContain(expected)
    }
  }, 240_000)

  it('leaves no token in Redis, the replica log, events, error answers or metrics', async () => {
    const corpora = [...(await suiteArtefacts(redis.port, [replica])), { source: `answers to hostile requests (${hostileAnswers.length})`, content: hostileAnswers.join('\n') }]
    const hits = ledger.scan(corpora)
    console.log(`[hostile-input] secrets scan: ${ledger.tokens} tokens in ${corpora.length} sources, ${corpusBytes(corpora)} bytes: ${hits.length} hits`)
    expect(hostileAnswers.length).toBe(RUNS)
    expect(hits).toEqual([])
  }, 60_000)
})
