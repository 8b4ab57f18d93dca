import { Counter, Gauge, type Registry } from 'prom-client'
import type { Keyring } from '../lifecycle/keyring.js'

/**
 * The store-outage metrics, read from `keyring.outageStats()` at scrape time
 * (nothing is counted per request here: the keyring keeps the totals).
 *
 * - `store_up`: 1 while key reads work, 0 while the store circuit is open.
 * - `store_outages_total`: times the store circuit opened.
 * - `stale_verifications_total`: verifications answered from a confirmed
 *   state while the store could not answer (`cache.staleIfError`).
 * - `ratelimit_fallbacks_total`: rate-limit decisions taken by this
 *   replica's own counters because the shared limiter could not answer.
 */
export function registerOutageMetrics(keyring: Keyring, name: (suffix: string) => string, registers: Registry[]): void {
  const total = (counter: Counter, value: number) => {
    counter.reset()
    counter.inc(value)
  }
  new Gauge({
    name: name('store_up'),
    help: 'Whether this replica reads keys from the store (1) or answers from confirmed states because the store cannot answer (0).',
    registers,
    collect() {
      this.set(keyring.outageStats().storeUp ? 1 : 0)
    },
  })
  new Counter({
    name: name('store_outages_total'),
    help: 'Store outages seen by this replica (times key reads started failing).',
    registers,
    collect() {
      total(this, keyring.outageStats().storeOutages)
    },
  })
  new Counter({
    name: name('stale_verifications_total'),
    help: 'Verifications answered from a confirmed key state while the store could not answer (cache.staleIfError).',
    registers,
    collect() {
      total(this, keyring.outageStats().staleVerifications)
    },
  })
  new Counter({
    name: name('ratelimit_fallbacks_total'),
    help: "Rate-limit decisions taken by this replica's own counters because the shared limiter could not answer.",
    registers,
    collect() {
      total(this, keyring.outageStats().rateLimitFallbacks)
    },
  })
}
