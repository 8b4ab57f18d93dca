import { availableParallelism } from 'node:os'
import { duration, percent } from '../lib/format.js'
import { call, closeClient, postJson } from '../lib/http-client.js'
import { startWorker, type Worker } from '../lib/processes.js'
import type { RunContext, SectionReport } from '../lib/report.js'
import { roundSummary, summarize } from '../lib/stats.js'
import type { Check } from '../lib/table.js'
import { preciseNow } from '../lib/timing.js'
import type { ReplicaConfig, WatchReply } from '../workers/replica.js'

/**
 * Section 4: replicas (Express + apiKeyAuth + RedisStore) on one Redis.
 *
 * Revocation: a key is verified (and cached) on every replica, revoked
 * through replica 0's admin route, then each other replica is polled over
 * HTTP with the revoked token until it answers 401. Timed from the revoke
 * call's acknowledgement (and from its start) to the 401 that arrived last.
 *
 * Grace deadline: a key is rotated with a short grace period; every replica
 * polls its own keyring with the old token every ~1 ms from shortly before
 * the deadline; the skew is the spread of their first refusals.
 */

const REVOKE_TARGET_P99_MS = 10
const SKEW_TARGET_P99_MS = 5

interface RevokeTrial {
  /** Last replica's 401 received, from the revoke's acknowledgement (ms). */
  afterAckMs: number
  /** The same from the start of the revoke call (ms). */
  afterStartMs: number
  revokeCallMs: number
  /** Per other replica: polls until the 401, and the 401's delay from the ack. */
  replicas: Array<{ polls: number; afterAckMs: number }>
  /** Last other replica's receipt of the invalidation message, from the start of the revoke call (ms). */
  invalidatedAfterStartMs: number
}

interface GraceTrial {
  skewMs: number
  /** First refusal minus deadline, per replica (ms). */
  latenessMs: number[]
}

async function newWarmKey(ports: number[], rtts: number[]): Promise<{ token: string; id: string }> {
  const key = await postJson<{ token: string; id: string }>(ports[0] as number, '/admin/keys')
  for (let pass = 0; pass < 2; pass++) {
    for (const port of ports) {
      const started = preciseNow()
      const reply = await call(port, 'GET', '/hello', { token: key.token })
      if (pass === 1) rtts.push(preciseNow() - started)
      if (reply.status !== 200) throw new Error(`a fresh key was refused by the replica on port ${port}: ${reply.status} ${reply.body}`)
    }
  }
  return key
}

async function revokeTrial(ports: number[], maxWaitMs: number, rtts: number[]): Promise<RevokeTrial> {
  const { token, id } = await newWarmKey(ports, rtts)
  const startedAt = preciseNow()
  await postJson(ports[0] as number, `/admin/keys/${id}/revoke`)
  const ackAt = preciseNow()
  const replicas = await Promise.all(
    ports.slice(1).map(async (port) => {
      for (let polls = 1; ; polls++) {
        const reply = await call(port, 'GET', '/hello', { token })
        const at = preciseNow()
        if (reply.status === 401) return { polls, receivedAt: at }
        if (reply.status !== 200) throw new Error(`replica on port ${port} answered ${reply.status} ${reply.body}`)
        if (at - ackAt > maxWaitMs) throw new Error(`replica on port ${port} still accepted a revoked key after ${maxWaitMs} ms`)
      }
    }),
  )
  const last = Math.max(...replicas.map((r) => r.receivedAt))
  const receipts = await Promise.all(ports.slice(1).map((port) => postJson<{ at: number | null }>(port, `/bench/invalidated/${id}`)))
  if (receipts.some((r) => r.at === null)) throw new Error('a replica refused the revoked key but never received its invalidation message')
  return {
    invalidatedAfterStartMs: Math.max(...receipts.map((r) => r.at as number)) - startedAt,
    afterAckMs: last - ackAt,
    afterStartMs: last - startedAt,
    revokeCallMs: ackAt - startedAt,
    replicas: replicas.map((r) => ({ polls: r.polls, afterAckMs: r.receivedAt - ackAt })),
  }
}

async function graceTrial(ports: number[], graceMs: number, maxWaitMs: number, rtts: number[]): Promise<GraceTrial> {
  const { token, id } = await newWarmKey(ports, rtts)
  const { deadline } = await postJson<{ deadline: number }>(ports[0] as number, `/admin/keys/${id}/rotate`, { graceMs })
  const watches = await Promise.all(
    ports.map((port) => postJson<WatchReply>(port, '/bench/watch', { token, deadline, leadMs: 20, maxWaitMs }, graceMs + maxWaitMs + 10_000)),
  )
  const firsts = watches.map((w, i) => {
    if (w.firstRejectAt === null) throw new Error(`replica ${i} still accepted the old key ${maxWaitMs} ms after its grace deadline`)
    if (w.code !== 'KEYROT_KEY_EXPIRED') throw new Error(`replica ${i} refused the old key with ${w.code}, expected KEYROT_KEY_EXPIRED`)
    return w.firstRejectAt
  })
  return { skewMs: Math.max(...firsts) - Math.min(...firsts), latenessMs: firsts.map((at) => at - deadline) }
}

export async function propagationSection(context: RunContext): Promise<SectionReport> {
  const { profile, redis } = context
  const { replicas: count, trials, graceMs, maxWaitMs } = profile.propagation
  const workers: Worker[] = []
  const ports: number[] = []
  try {
    for (let i = 0; i < count; i++) {
      const { worker, ready } = await startWorker<{ port: number }>('replica', {
        config: { redisUrl: redis.url, keyPrefix: 'bench-propagation' } satisfies ReplicaConfig,
        timeoutMs: 20_000,
      })
      workers.push(worker)
      ports.push(ready.port)
    }
    context.log(`propagation: ${count} replicas, ${trials} revocation trials`)
    const rtts: number[] = []
    const revokes: RevokeTrial[] = []
    for (let t = 0; t < trials; t++) revokes.push(await revokeTrial(ports, maxWaitMs, rtts))
    context.log(`propagation: ${trials} grace-deadline trials (${graceMs} ms grace each)`)
    const graces: GraceTrial[] = []
    for (let t = 0; t < trials; t++) graces.push(await graceTrial(ports, graceMs, maxWaitMs, rtts))

    const afterAck = summarize(revokes.map((r) => r.afterAckMs))
    const afterStart = summarize(revokes.map((r) => r.afterStartMs))
    const revokeCall = summarize(revokes.map((r) => r.revokeCallMs))
    const invalidated = summarize(revokes.map((r) => r.invalidatedAfterStartMs))
    const perReplica = revokes.flatMap((r) => r.replicas)
    const firstPoll = perReplica.filter((r) => r.polls === 1).length / perReplica.length
    const rtt = summarize(rtts)
    const skew = summarize(graces.map((g) => g.skewMs))
    const lateness = summarize(graces.flatMap((g) => g.latenessMs))

    const checks: Check[] = [
      {
        name: `revocation reaches every other replica (${count} replicas, ${trials} trials)`,
        target: `p99 < ${REVOKE_TARGET_P99_MS} ms`,
        measured: `p50 ${duration(afterAck.p50)}, p99 ${duration(afterAck.p99)} after the revoke's acknowledgement`,
        met: afterAck.p99 < REVOKE_TARGET_P99_MS,
        ...(afterAck.p99 < REVOKE_TARGET_P99_MS
          ? {}
          : { explanation: `the invalidation is published by the revoke script itself; the rest is pub/sub delivery, a store read on each replica and the polling request (loopback GET round trip p50 ${duration(rtt.p50)}), with ${count} replicas, the controller and redis-server on ${availableParallelism()} cores.` }),
      },
      {
        name: `grace-deadline skew across ${count} replicas (${trials} trials)`,
        target: `p99 < ${SKEW_TARGET_P99_MS} ms`,
        measured: `p50 ${duration(skew.p50)}, p99 ${duration(skew.p99)}`,
        met: skew.p99 < SKEW_TARGET_P99_MS,
        ...(skew.p99 < SKEW_TARGET_P99_MS
          ? {}
          : { explanation: 'each replica polls every ~1 ms with a timer; with more replicas than cores a replica can wait a scheduler slice before its next poll.' }),
      },
    ]
    return {
      id: 'propagation',
      title: 'Propagation',
      tables: [
        {
          title: `Propagation: ${count} replicas (Express + apiKeyAuth + RedisStore) on one Redis, ${trials} trials each`,
          columns: ['measure', 'p50', 'p99', 'max'],
          rows: [
            ['revoke -> last other replica answers 401 (from ack)', duration(afterAck.p50), duration(afterAck.p99), duration(afterAck.max)],
            ['revoke -> last other replica answers 401 (from start)', duration(afterStart.p50), duration(afterStart.p99), duration(afterStart.max)],
            ['revoke call (admin route on replica 0)', duration(revokeCall.p50), duration(revokeCall.p99), duration(revokeCall.max)],
            ['revoke start -> last other replica receives the invalidation', duration(invalidated.p50), duration(invalidated.p99), duration(invalidated.max)],
            ['loopback GET /hello round trip (resolution)', duration(rtt.p50), duration(rtt.p99), duration(rtt.max)],
            [`grace-deadline skew across replicas (${graceMs} ms grace)`, duration(skew.p50), duration(skew.p99), duration(skew.max)],
            ['first refusal after the deadline, per replica', duration(lateness.p50), duration(lateness.p99), duration(lateness.max)],
          ],
          notes: [
            `Revocation: ${percent(firstPoll)} of replica polls after the acknowledgement were already refused (the invalidation arrived before the controller heard the ack).`,
            'Times are to the arrival of the 401 at the controller, so they include one loopback request; revoke start and ack are read by the controller.',
            'Invalidation receipt: read on each replica (keyring event invalidation.received) with the same epoch clock as the controller.',
            'Grace skew: each replica polls keyring.verify() every ~1 ms from 20 ms before the deadline; all replicas share this machine\'s clock.',
          ],
        },
      ],
      checks,
      notes: [],
      data: {
        replicas: count,
        trials,
        graceMs,
        revoke: { afterAckMs: roundSummary(afterAck), afterStartMs: roundSummary(afterStart), revokeCallMs: roundSummary(revokeCall), invalidatedAfterStartMs: roundSummary(invalidated), refusedOnFirstPoll: firstPoll },
        roundTripMs: roundSummary(rtt),
        grace: { skewMs: roundSummary(skew), latenessMs: roundSummary(lateness) },
      },
    }
  } finally {
    closeClient()
    await Promise.all(workers.map((w) => w.stop()))
  }
}
