// The in-process cost of a cache hit, quickly: the floor (one SHA-256 and one
// Map get), keyring.verify() and authenticate() with the benchmark's default
// abuse protection (bench/src/lib/keyrings.ts), and with rateLimit: false.
// For iterating on the hot path; `npm run bench -- --only verify` has the
// published figures.
// Build first: node scripts/setup.mjs --build-only && node bench/hit-path.mjs
import { createHash } from 'node:crypto'
import { authenticate, createKeyring, FastTestHasher } from '@keyrot/core'

const KEYS = 1_000
const OPS = 200_000
const ROUNDS = 5

async function time(label, op, floorNs) {
  for (let i = 0; i < 50_000; i++) await op(i)
  const perOp = []
  for (let round = 0; round < ROUNDS; round++) {
    const started = process.hrtime.bigint()
    for (let i = 0; i < OPS; i++) await op(i)
    perOp.push(Number(process.hrtime.bigint() - started) / OPS)
  }
  perOp.sort((a, b) => a - b)
  const median = perOp[Math.floor(ROUNDS / 2)]
  console.log(`${label.padEnd(58)} ${median.toFixed(0).padStart(6)} ns${floorNs ? `  ${(median / floorNs).toFixed(2)}x floor` : ''}`)
  return median
}

function timeSync(label, op) {
  for (let i = 0; i < 50_000; i++) op(i)
  const perOp = []
  for (let round = 0; round < ROUNDS; round++) {
    const started = process.hrtime.bigint()
    for (let i = 0; i < OPS; i++) op(i)
    perOp.push(Number(process.hrtime.bigint() - started) / OPS)
  }
  perOp.sort((a, b) => a - b)
  const median = perOp[Math.floor(ROUNDS / 2)]
  console.log(`${label.padEnd(58)} ${median.toFixed(0).padStart(6)} ns`)
  return median
}

async function keys(rateLimit) {
  const keyring = createKeyring({ hasher: new FastTestHasher(), rateLimit, proofKey: null })
  const tokens = []
  for (let i = 0; i < KEYS; i++) tokens.push((await keyring.create({ tenantId: `t${i % 10}`, name: `k${i}` })).token)
  for (const token of tokens) if (!(await keyring.verify(token)).ok) throw new Error('refused')
  return { keyring, tokens }
}

const { tokens: floorTokens } = await keys(false)
const table = new Map(floorTokens.map((t, i) => [createHash('sha256').update(t).digest('base64'), i]))
const floor = timeSync('floor: SHA-256 + Map.get', (i) => table.get(createHash('sha256').update(floorTokens[i % KEYS]).digest('base64')))

for (const [name, rateLimit] of [['default protection + per-key quota', { perKey: { limit: 1_000_000_000, window: '1m' } }], ['rateLimit: false', false]]) {
  const { keyring, tokens } = await keys(rateLimit)
  const context = { clientIp: '127.0.0.1', userAgent: 'bench' }
  await time(`verify, ${name}`, (i) => keyring.verify(tokens[i % KEYS], context), floor)
  const requests = tokens.map((token) => ({ authorization: `Bearer ${token}`, clientIp: '127.0.0.1', userAgent: 'bench' }))
  await time(`authenticate, ${name}`, (i) => authenticate(keyring, requests[i % KEYS]), floor)
  await keyring.close()
}
