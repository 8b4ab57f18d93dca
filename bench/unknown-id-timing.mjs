// How long a failed verify takes for an unknown key id and for an existing
// key id with a wrong secret: the timing difference docs/security.md speaks
// of (an unknown id costs no Argon2 run). Real Argon2 at the OWASP defaults,
// in-memory store, no rate limits (each token is fresh, so the negative
// cache would not change a figure). Interleaved samples, medians printed.
// Build first: node scripts/setup.mjs --build-only && node bench/unknown-id-timing.mjs
import { Argon2Hasher, createKeyring, generateToken, MemoryStore, newKeyId } from '@keyrot/core'

const SAMPLES = 40
const keyring = createKeyring({ store: new MemoryStore(), hasher: new Argon2Hasher(), rateLimit: false })
const { key } = await keyring.create({ tenantId: 'acme', name: 'timing' })

async function timed(token) {
  const started = performance.now()
  const result = await keyring.verify(token)
  if (result.ok) throw new Error('a made-up token verified')
  return performance.now() - started
}

const unknown = []
const existing = []
for (let i = 0; i < SAMPLES; i++) {
  unknown.push(await timed(generateToken('sk_live', newKeyId())))
  existing.push(await timed(generateToken('sk_live', key.id)))
}
const median = (samples) => [...samples].sort((a, b) => a - b)[samples.length >> 1]
console.log(
  `[timing] failed verify, median of ${SAMPLES}: unknown key id ${median(unknown).toFixed(2)} ms, ` +
    `existing key id with a wrong secret ${median(existing).toFixed(2)} ms (Argon2id OWASP defaults)`,
)
await keyring.close()
