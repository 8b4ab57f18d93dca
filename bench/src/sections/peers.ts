import { duration, rate, times } from '../lib/format.js'
import { runWorker } from '../lib/processes.js'
import type { RunContext, SectionReport } from '../lib/report.js'
import type { PeerSeries, PeersConfig, PeersResult } from '../workers/peers.js'

/** Section 3: keyrot against better-auth's API-key plugin and a hand-rolled SHA-256 + Map check. */
export async function peersSection(context: RunContext): Promise<SectionReport> {
  const config: PeersConfig = { ...context.profile.peers }
  context.log(`peers: ${config.keys} keys each, ${config.samples} timed hits, ${config.firstUse} first uses`)
  const result = await runWorker<PeersResult>('peers', { config, timeoutMs: 300_000 })
  const pick = (peer: PeerSeries['peer'], path: PeerSeries['path'], name?: string) => {
    const found = result.series.find((s) => s.peer === peer && s.path === path && (name === undefined || s.name === name))
    if (!found) throw new Error(`peers: no ${peer} ${path} series`)
    return found
  }
  const keyrotHit = pick('keyrot', 'hit')
  const keyrotFirst = pick('keyrot', 'first-use', 'keyrot verify, Argon2id OWASP (argon2)')
  const keyrotFirstFast = pick('keyrot', 'first-use', 'keyrot verify, FastTestHasher (tests only: no Argon2)')
  const baHit = pick('better-auth', 'hit')
  const baFirst = pick('better-auth', 'first-use')
  const handHit = pick('hand-rolled', 'hit')
  const handFirst = pick('hand-rolled', 'first-use')

  const versus = (mine: PeerSeries, theirs: PeerSeries) => {
    const factor = mine.latencyMs.p50 / theirs.latencyMs.p50
    return factor <= 1 ? `keyrot ${times(1 / factor)} faster` : `keyrot ${times(factor)} slower`
  }
  const comparisons = [
    { what: 'cache hit vs better-auth', mine: keyrotHit, theirs: baHit },
    { what: 'cache hit vs hand-rolled SHA-256 + Map', mine: keyrotHit, theirs: handHit },
    { what: 'first use vs better-auth', mine: keyrotFirst, theirs: baFirst },
    { what: 'first use vs hand-rolled SHA-256 + Map', mine: keyrotFirst, theirs: handFirst },
  ]
  const verdicts = comparisons.map(({ what, mine, theirs }) => {
    const wins = mine.latencyMs.p50 <= theirs.latencyMs.p50
    let explanation: string | undefined
    if (!wins && mine.path === 'hit') {
      explanation =
        `keyrot's hit path does more than hash and look up: a peppered digest, the abuse checks and the per-key quota, ` +
        `the key state's expiry, usage counting and a result object (the verify section splits the ${duration(mine.latencyMs.p50)}).`
    } else if (!wins) {
      explanation =
        `at first use keyrot runs Argon2id (OWASP: 19 MiB, 2 passes) once per token and process: ${duration(mine.latencyMs.p50)} of which ` +
        `${duration(Math.max(0, mine.latencyMs.p50 - keyrotFirstFast.latencyMs.p50))} is Argon2 (the same path with the test-only SHA-256 hasher takes ${duration(keyrotFirstFast.latencyMs.p50)}). ` +
        `better-auth and the hand-rolled check store an unsalted SHA-256, which is cheap on every use; every later keyrot verify of that token is a cache hit.`
    }
    return { what, verdict: `${versus(mine, theirs)} (median ${duration(mine.latencyMs.p50)} vs ${duration(theirs.latencyMs.p50)})`, keyrotFaster: wins, explanation }
  })

  return {
    id: 'peers',
    title: 'Peers',
    tables: [
      {
        title: `Peers, verify path in process (${result.keys} keys each; one verify at a time)`,
        columns: ['verify path', 'when', 'median', 'p99', 'verifies/s'],
        rows: result.series.map((s) => [s.name, s.path === 'hit' ? 'cache hit' : 'first use', duration(s.latencyMs.p50), duration(s.latencyMs.p99), rate(s.perSecond)]),
        notes: [
          'better-auth: betterAuth({ database: memoryAdapter, plugins: [apiKey()] }) with both rate limits off; auth.api.verifyApiKey({ body: { key } }).',
          `  It has no verification cache: every verify hashes (SHA-256), finds the row by a scan of the in-memory table and writes the row (${result.betterAuthWritesPerVerify.toFixed(1)} adapter writes per verify: lastRequest, updatedAt).`,
          'hand-rolled: SHA-256 of the token, Map lookup, revoked and expiry checks; no format check, no abuse protection, no cache needed.',
          'keyrot: memory store, default abuse protection with a per-key quota that never refuses; first use runs the hasher once per token.',
        ],
      },
    ],
    checks: [],
    notes: verdicts.map((v) => `${v.what}: ${v.verdict}${v.explanation ? `. Where the time goes: ${v.explanation}` : ''}`),
    data: { ...result, verdicts },
  }
}
