import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer as createHttpServer, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateToken, newKeyId, tokenHash } from '@keyrot/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ensureBuilt } from '../support/build.js'
import { ControlledRedis } from '../support/redis-process.js'
import { admin, callWithKey, closeAgents, percentile, sleep, startReplicas, type IssuedKeyBody, type Replica } from '../support/replicas.js'
import { ensureBuilt as ensureCliBuilt, killChildren, runKeyrot, startServe, type ServeProcess } from '../cli/keyrot-bin.js'

/**
 * The leak response end to end: this test plays GitHub and GitLab (their own
 * P-256 key pairs, their public-keys JSON served on loopback), posts signed
 * reports to `keyrot serve`, and watches three replicas on the same Redis
 * refuse the leaked key. Replicas trust cached states for 60 s, so a refusal
 * within the bounds below came through the invalidation feed.
 */

interface Provider {
  keyId: string
  privateKey: KeyObject
  document: string
}

function provider(keyId: string): Provider {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const pem = publicKey.export({ type: 'spki', format: 'pem' }) as string
  return { keyId, privateKey, document: JSON.stringify({ public_keys: [{ key_identifier: keyId, key: pem, is_current: true }] }) }
}

const github = provider('github-kid-1')
const gitlab = provider('gitlab-kid-1')
/** Neither program publishes a response deadline; 10 s is the deadline of GitHub's webhooks, the nearest published figure. */
const PROVIDER_TIMEOUT_MS = 10_000

let redis: ControlledRedis
let replicas: Replica[]
let keysServer: Server
let keysBase: string
let serve: ServeProcess

beforeAll(async () => {
  await ensureBuilt()
  ensureCliBuilt()
  redis = await ControlledRedis.start()
  keysServer = createHttpServer((req, res) => {
    const document = req.url === '/github-keys' ? github.document : req.url === '/gitlab-keys' ? gitlab.document : null
    if (document === null) {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(document)
  })
  await new Promise<void>((resolve) => keysServer.listen(0, '127.0.0.1', resolve))
  keysBase = `http://127.0.0.1:${(keysServer.address() as { port: number }).port}`
  replicas = await startReplicas(3, { redisUrl: redis.url, stateTtlMs: 60_000 })
  serve = await startServe(['--redis', redis.url], {
    env: { KEYROT_GITHUB_KEYS_URL: `${keysBase}/github-keys`, KEYROT_GITLAB_KEYS_URL: `${keysBase}/gitlab-keys` },
  })
}, 240_000)

afterAll(async () => {
  killChildren()
  closeAgents()
  await Promise.all((replicas ?? []).map((replica) => replica.stop()))
  await new Promise((resolve) => keysServer?.close(resolve))
  await redis?.stop()
})

function signedReport(items: unknown[], as: Provider, name: 'github' | 'gitlab') {
  const body = JSON.stringify(items)
  const signature = sign('sha256', Buffer.from(body), { key: as.privateKey, dsaEncoding: 'der' }).toString('base64')
  return {
    body,
    headers: { 'content-type': 'application/json', [`${name}-public-key-identifier`]: as.keyId, [`${name}-public-key-signature`]: signature },
  }
}

async function post(base: string, name: 'github' | 'gitlab', report: { body: string; headers: Record<string, string> }) {
  const response = await fetch(`${base}/v1/leak-reports/${name}`, { method: 'POST', headers: report.headers, body: report.body })
  const text = await response.text()
  return { status: response.status, headers: response.headers, body: JSON.parse(text) as any, text }
}

async function createKey(name = 'leak-test'): Promise<IssuedKeyBody> {
  return admin<IssuedKeyBody>(replicas[0] as Replica, 'create', { tenantId: 'acme', name })
}

/** Every replica accepts the key (and caches its state). */
async function expectLiveEverywhere(token: string): Promise<void> {
  const answers = await Promise.all(replicas.map((replica) => callWithKey(replica, token)))
  expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200])
}

const URL_FOUND = 'https://github.com/acme/app/blob/0123abc/.env'

describe('leak reports through keyrot serve, three replicas on one Redis', () => {
  it('labels a live key, a revoked key, a random match and a bad checksum; the live key is refused on every replica', async () => {
    const live = await createKey()
    const revoked = await createKey()
    await admin(replicas[1] as Replica, 'revoke', { keyId: revoked.key.id, reason: 'retired' })
    await expectLiveEverywhere(live.token)
    const random = generateToken('sk_live', newKeyId())
    const last = live.token.at(-1)
    const badChecksum = live.token.slice(0, -1) + (last === 'A' ? 'B' : 'A')
    const tokens = [live.token, revoked.token, random, badChecksum]

    const answer = await post(serve.url, 'github', signedReport(tokens.map((token) => ({ token, type: 'keyrot_api_key', url: URL_FOUND, source: 'content' })), github, 'github'))

    expect(answer.status).toBe(200)
    expect(answer.body.map((entry: { label: string }) => entry.label)).toEqual(['true_positive', 'true_positive', 'false_positive', 'false_positive'])
    expect(answer.body.map((entry: { token_hash: string }) => entry.token_hash)).toEqual(tokens.map(tokenHash))
    for (const token of tokens) expect(answer.text).not.toContain(token)
    const refused = await Promise.all(replicas.map((replica) => callWithKey(replica, live.token)))
    expect(refused.map((exchange) => exchange.status)).toEqual([401, 401, 401])
    const { key } = await admin<{ key: Record<string, unknown> }>(replicas[2] as Replica, 'key', { keyId: live.key.id })
    expect(key).toMatchObject({ state: 'revoked', incidentId: 'leak:github', revokedReason: `public leak reported by github (revoke): ${URL_FOUND}` })
    const { key: old } = await admin<{ key: Record<string, unknown> }>(replicas[2] as Replica, 'key', { keyId: revoked.key.id })
    expect(old).toMatchObject({ revokedReason: 'retired', incidentId: null })
    // Recorded: the metrics of the server that answered (on its loopback metrics listener).
    const metrics = await (await fetch(serve.metricsUrl as string)).text()
    expect(metrics).toMatch(/keyrot_leak_reports_total\{provider="github",label="true_positive"\} [1-9]/)
    expect(metrics).toMatch(/keyrot_keys_leaked_total\{provider="github",action="revoke"\} [1-9]/)
  })

  it('report-to-refusal on all three replicas over 50 trials', async () => {
    const totals: number[] = []
    const answers: number[] = []
    for (let trial = 0; trial < 50; trial++) {
      const live = await createKey(`trial-${trial}`)
      await expectLiveEverywhere(live.token)
      const report = signedReport([{ token: live.token, type: 'keyrot_api_key', url: URL_FOUND }], github, 'github')
      const started = performance.now()
      const answered = post(serve.url, 'github', report).then((answer) => {
        answers.push(performance.now() - started)
        return answer
      })
      // Each replica is asked until it refuses (at most 8 s), as a client would keep calling.
      const refusedAt = await Promise.all(
        replicas.map(async (replica) => {
          while (performance.now() - started < 8_000) {
            const exchange = await callWithKey(replica, live.token)
            if (exchange.status === 401) return performance.now() - started
            await sleep(2)
          }
          return Number.POSITIVE_INFINITY
        }),
      )
      expect((await answered).status).toBe(200)
      totals.push(Math.max(...refusedAt))
    }
    const p50 = percentile(totals, 50)
    const p99 = percentile(totals, 99)
    console.log(
      `[leak] report-to-refusal on 3 replicas over 50 trials: p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${Math.max(...totals).toFixed(1)} ms; ` +
        `report answered p50 ${percentile(answers, 50).toFixed(1)} ms, p99 ${percentile(answers, 99).toFixed(1)} ms`,
    )
    // A cache expiry would take 60 s: refusals within these bounds came through the invalidation feed
    // (generous for a loaded 2-core machine; with 50 trials p99 is the slowest one).
    expect(p50).toBeLessThan(1_000)
    expect(p99).toBeLessThan(5_000)
  }, 180_000)

  it('refuses a forged signature, an unknown key id and a body altered after signing with 401, revoking nothing', async () => {
    const live = await createKey()
    await expectLiveEverywhere(live.token)
    const items = [{ token: live.token, type: 'keyrot_api_key', url: URL_FOUND }]
    const forged = signedReport(items, provider(gitlab.keyId), 'gitlab')
    const unknown = signedReport(items, provider('gitlab-kid-unknown'), 'gitlab')
    const genuine = signedReport(items, gitlab, 'gitlab')
    const altered = { headers: genuine.headers, body: genuine.body.replace(URL_FOUND, 'https://example.test/') }
    for (const report of [forged, unknown, altered]) {
      const answer = await post(serve.url, 'gitlab', report)
      expect(answer.status).toBe(401)
      expect(answer.body.error.code).toBe('KEYROT_LEAK_SIGNATURE_INVALID')
    }
    await expectLiveEverywhere(live.token)
    // The genuine one, on GitLab's route, is acted on.
    expect((await post(serve.url, 'gitlab', genuine)).body[0].label).toBe('true_positive')
    const refused = await Promise.all(replicas.map((replica) => callWithKey(replica, live.token)))
    expect(refused.map((exchange) => exchange.status)).toEqual([401, 401, 401])
  })

  it('answers a redelivered report the same and changes nothing', async () => {
    const live = await createKey()
    const report = signedReport([{ token: live.token, type: 'keyrot_api_key', url: URL_FOUND }], github, 'github')
    const first = await post(serve.url, 'github', report)
    const before = await admin<{ key: Record<string, unknown> }>(replicas[0] as Replica, 'key', { keyId: live.key.id })
    const second = await post(serve.url, 'github', report)
    expect(second.status).toBe(200)
    expect(second.text).toBe(first.text)
    expect(await admin(replicas[0] as Replica, 'key', { keyId: live.key.id })).toEqual(before)
  })

  it('answers a 1,000-token batch within the providers\' deadline', async () => {
    const live = await Promise.all(Array.from({ length: 10 }, (_, i) => createKey(`batch-${i}`)))
    const items: Array<{ token: string; type: string; url: string }> = live.map(({ token }) => ({ token, type: 'keyrot_api_key', url: URL_FOUND }))
    for (let i = items.length; i < 1_000; i++) {
      // Half well-formed tokens of key ids that do not exist (a store look-up each), half with a broken checksum (no I/O).
      const token = generateToken('sk_live', newKeyId())
      items.push({ token: i % 2 === 0 ? token : token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A'), type: 'keyrot_api_key', url: URL_FOUND })
    }
    const report = signedReport(items, github, 'github')
    const started = performance.now()
    const answer = await post(serve.url, 'github', report)
    const ms = performance.now() - started
    console.log(`[leak] 1,000-token batch (10 live keys, ${report.body.length} bytes) answered in ${ms.toFixed(0)} ms; deadline assumed ${PROVIDER_TIMEOUT_MS} ms`)
    expect(answer.status).toBe(200)
    expect(answer.body.filter((entry: { label: string }) => entry.label === 'true_positive')).toHaveLength(10)
    expect(ms).toBeLessThan(PROVIDER_TIMEOUT_MS)
    const refused = await Promise.all(live.map(({ token }) => callWithKey(replicas[1] as Replica, token)))
    expect(refused.every((exchange) => exchange.status === 401)).toBe(true)
  }, 60_000)

  it('answers 503 with Retry-After while the keys endpoint is down, and revokes nothing unverified', async () => {
    const closed = createHttpServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const deadUrl = `http://127.0.0.1:${(closed.address() as { port: number }).port}/keys`
    await new Promise((resolve) => closed.close(resolve))
    const isolated = await startServe(['--redis', redis.url], { env: { KEYROT_GITHUB_KEYS_URL: deadUrl } })
    const live = await createKey()
    await expectLiveEverywhere(live.token)
    const answer = await post(isolated.url, 'github', signedReport([{ token: live.token, type: 'keyrot_api_key', url: URL_FOUND }], github, 'github'))
    expect(answer.status).toBe(503)
    expect(answer.body.error.code).toBe('KEYROT_LEAK_KEYS_UNAVAILABLE')
    expect(Number(answer.headers.get('retry-after'))).toBeGreaterThan(0)
    // No GitLab keys URL: no GitLab route.
    expect((await post(isolated.url, 'gitlab', signedReport([], gitlab, 'gitlab'))).status).toBe(404)
    await expectLiveEverywhere(live.token)
    // Rate-limited per client address (120 a minute), before any work: the 121st report in the minute hears 429.
    const statuses: number[] = []
    for (let i = 0; i < 125; i++) statuses.push((await post(isolated.url, 'github', signedReport([], github, 'github'))).status)
    expect(statuses.filter((status) => status === 429).length).toBeGreaterThanOrEqual(5)
    isolated.child.kill('SIGTERM')
    await isolated.exited
  })
})

describe('keyrot scan', () => {
  it('finds planted tokens in a directory, reports key ids and liveness, revokes the live ones with --revoke, never prints a secret', async () => {
    const live = await createKey('scan-live')
    const revoked = await createKey('scan-revoked')
    await admin(replicas[0] as Replica, 'revoke', { keyId: revoked.key.id })
    const unknown = generateToken('sk_live', newKeyId())
    const dir = mkdtempSync(join(tmpdir(), 'keyrot-scan-'))
    try {
      mkdirSync(join(dir, 'logs', 'old'), { recursive: true })
      writeFileSync(join(dir, 'logs', 'app.log'), `started\nGET /v1/x Authorization: Bearer ${live.token}\n`)
      writeFileSync(join(dir, 'logs', 'old', 'config.env'), `API_KEY=${revoked.token}\nOTHER=${unknown}\n`)
      writeFileSync(join(dir, 'README.md'), 'no secrets here\n')
      const secrets = [live.token, revoked.token, unknown]

      const report = await runKeyrot(['scan', dir, '--json', '--redis', redis.url])
      expect(report.code, report.stderr).toBe(0)
      const findings = (JSON.parse(report.stdout) as { findings: Array<{ location: string; keyId: string; status: string }> }).findings
      expect(findings).toEqual([
        { location: `${join(dir, 'logs', 'app.log')}:2`, prefix: 'sk_live', keyId: live.key.id, status: 'live' },
        { location: `${join(dir, 'logs', 'old', 'config.env')}:1`, prefix: 'sk_live', keyId: revoked.key.id, status: 'revoked' },
        { location: `${join(dir, 'logs', 'old', 'config.env')}:2`, prefix: 'sk_live', keyId: expect.any(String), status: 'unknown_key' },
      ])
      await expectLiveEverywhere(live.token)
      const piped = await runKeyrot(['scan', '-', '--json', '--redis', redis.url], { input: `log line\ntoken=${live.token} again\n` })
      expect(piped.code, piped.stderr).toBe(0)
      expect(JSON.parse(piped.stdout).findings).toEqual([{ location: '<stdin>:2', prefix: 'sk_live', keyId: live.key.id, status: 'live' }])

      const revoking = await runKeyrot(['scan', dir, '--revoke', '--redis', redis.url])
      expect(revoking.code, revoking.stderr).toBe(0)
      expect(revoking.stdout).toContain('live: revoked now')
      for (const output of [report.stdout, report.stderr, piped.stdout, piped.stderr, revoking.stdout, revoking.stderr]) {
        for (const secret of secrets) expect(output).not.toContain(secret.slice(-49))
      }
      const refused = await Promise.all(replicas.map((replica) => callWithKey(replica, live.token)))
      expect(refused.map((exchange) => exchange.status)).toEqual([401, 401, 401])
      const { key } = await admin<{ key: Record<string, unknown> }>(replicas[0] as Replica, 'key', { keyId: live.key.id })
      expect(key).toMatchObject({ incidentId: 'leak:scan', revokedReason: `found by keyrot scan: ${join(dir, 'logs', 'app.log')}:2` })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
