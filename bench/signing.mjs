// What signing costs: a Standard Webhooks signature (store read, AES-GCM
// decryption, HMAC), a signed-request verification (headers, store read,
// decryption, HMAC, replay check), and one seal/open of a secret. In-memory
// store and replay store, so the figures are keyrot's own cost, not Redis's.
// Build first: node scripts/setup.mjs --build-only && node bench/signing.mjs
import { randomBytes } from 'node:crypto'
import { createKeyring, createSignedRequestVerifier, FastTestHasher, MemoryReplayStore, MemoryStore, signRequest, signWebhook } from '@keyrot/core'

const OPERATIONS = 20_000
const ROUNDS = 5
const MAX_SECONDS = 60
const benchStarted = Date.now()

async function measure(label, operation) {
  for (let i = 0; i < 2_000; i++) await operation(i) // warm up
  const perOperation = []
  for (let round = 0; round < ROUNDS && Date.now() - benchStarted < MAX_SECONDS * 1000; round++) {
    const started = process.hrtime.bigint()
    for (let i = 0; i < OPERATIONS; i++) await operation(i)
    perOperation.push(Number(process.hrtime.bigint() - started) / OPERATIONS / 1000)
  }
  perOperation.sort((a, b) => a - b)
  const median = perOperation[Math.floor(perOperation.length / 2)]
  console.log(`${label.padEnd(52)} ${median.toFixed(1).padStart(7)} µs/op  ${Math.round(1e6 / median).toLocaleString('en-US').padStart(9)} op/s  (median of ${perOperation.length} x ${OPERATIONS})`)
}

const keyring = createKeyring({
  store: new MemoryStore(),
  hasher: new FastTestHasher(),
  gracePeriod: '1h',
  signing: { masterKeys: [{ id: 'bench', key: randomBytes(32) }] },
})
const { secret, key } = await keyring.createSigningSecret({ tenantId: 'acme', name: 'bench' })
const payload = JSON.stringify({ type: 'invoice.paid', data: { id: 'in_1', amount: 4200, lines: Array.from({ length: 10 }, (_, i) => ({ i })) } })

await measure('signWebhook, one secret', (i) => signWebhook(keyring, { secretId: key.id, id: `msg_${i}`, payload }))

const verifier = createSignedRequestVerifier({ keyring, replayStore: new MemoryReplayStore({ maxEntries: 1_000_000 }) })
const signed = Array.from({ length: OPERATIONS + 2_000 }, () => signRequest({ keyId: key.id, secret, method: 'POST', url: '/v1/payments', body: payload }))
let next = 0
await measure('verify a signed request (memory store + replay store)', async () => {
  const headers = signed[next++ % signed.length]
  const outcome = await verifier.verify({ method: 'POST', pathWithQuery: '/v1/payments', headers, rawBody: payload })
  // Re-used headers after the first pass are replays: still a full verification up to the nonce check.
  if (!outcome.ok && outcome.error.code !== 'KEYROT_REPLAYED_REQUEST') throw new Error(outcome.error.code)
})

const rotated = await keyring.rotate(key.id)
await measure('signWebhook during grace (two secrets)', (i) => signWebhook(keyring, { secretId: rotated.key.id, id: `msg_${i}`, payload }))

const sealer = keyring.options.signing
await measure('seal + open one secret (AES-256-GCM)', async () => {
  sealer.open(sealer.seal(secret, key.id), key.id)
})
await keyring.close()
