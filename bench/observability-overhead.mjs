// What observability costs on the hot path: cached verifies per second with
// no listener, with createMetrics, and with metrics plus an audit log whose
// logger drops lines (the cost of building them, not of writing them).
// Build first: node scripts/setup.mjs --build-only && node bench/observability-overhead.mjs
import { attachAuditLog, createKeyring, createMetrics, FastTestHasher } from '@keyrot/core'
import { Registry } from 'prom-client'

const VERIFIES = 100_000
const ROUNDS = 7
const dropLines = { info() {}, warn() {}, error() {} }

async function measure(label, attach) {
  const keyring = createKeyring({ hasher: new FastTestHasher(), rateLimit: false })
  attach(keyring)
  const { token } = await keyring.create({ tenantId: 'acme', name: 'bench' })
  const request = { clientIp: '127.0.0.1', userAgent: 'bench' }
  for (let i = 0; i < 20_000; i++) await keyring.verify(token, request) // warm up
  const perVerify = []
  for (let round = 0; round < ROUNDS; round++) {
    const started = process.hrtime.bigint()
    for (let i = 0; i < VERIFIES; i++) await keyring.verify(token, request)
    perVerify.push(Number(process.hrtime.bigint() - started) / VERIFIES)
  }
  perVerify.sort((a, b) => a - b)
  const median = perVerify[Math.floor(ROUNDS / 2)]
  console.log(`${label.padEnd(40)} ${median.toFixed(0).padStart(6)} ns per cached verify (median of ${ROUNDS} x ${VERIFIES})`)
  await keyring.close()
}

await measure('no listener', () => {})
await measure('createMetrics', (keyring) => createMetrics({ keyring, registry: new Registry() }))
await measure('createMetrics + attachAuditLog', (keyring) => {
  createMetrics({ keyring, registry: new Registry() })
  attachAuditLog(keyring, dropLines)
})
