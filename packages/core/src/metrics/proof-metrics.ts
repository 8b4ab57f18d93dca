import { Counter, Gauge, type Registry } from 'prom-client'
import type { Keyring } from '../lifecycle/keyring.js'
import { SHARED_PROOF_RESULTS, type SharedProofResult } from '../proof/shared-proofs.js'

/**
 * `keyrot_argon2_queue_length` (Argon2 runs of `verify()` waiting for a slot)
 * and `keyrot_shared_proofs_total{result}` (see `SharedProofResult`), both read
 * from `keyring.proofStats()` at scrape time: nothing runs per request.
 */
export function registerProofMetrics(keyring: Keyring, registers: Registry[], name: (suffix: string) => string): void {
  if (typeof keyring.proofStats !== 'function') return
  new Gauge({
    name: name('argon2_queue_length'),
    help: 'Argon2 runs of verify() waiting for a free slot on this replica (tokens not proven before). Long: new tokens soon get KEYROT_OVERLOADED.',
    registers,
    collect() {
      this.set(keyring.proofStats().argon2QueueLength)
    },
  })
  const reported = new Map<SharedProofResult, number>()
  new Counter({
    name: name('shared_proofs_total'),
    help: 'Shared proof outcomes: hit (accepted with one HMAC), absent, stale (other proof key), mismatch (wrong secret), shared, refused, failed.',
    labelNames: ['result'] as const,
    registers,
    collect() {
      const stats = keyring.proofStats().sharedProofs
      for (const result of SHARED_PROOF_RESULTS) {
        const total = stats?.[result] ?? 0
        const delta = total - (reported.get(result) ?? 0)
        if (delta > 0) this.inc({ result }, delta)
        else this.inc({ result }, 0)
        reported.set(result, total)
      }
    },
  })
}
