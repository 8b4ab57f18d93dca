// What the shared admin history costs on a local redis-server: one append
// (SHA-256 in Node, one compare-and-set script), appends from 1, 2 and 4
// logs at once (each log appends one at a time; logs compete for the head),
// a keyring revoke with and without the history, verify() over the whole
// stream, and reading one family from it. Starts its own redis-server on a
// free loopback port and stops it.
// Build first: node scripts/setup.mjs --build-only && node bench/history-redis.mjs
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createKeyring, FastTestHasher } from '@keyrot/core'
import { RedisHistoryLog, RedisStore } from '@keyrot/redis'
import { Redis } from 'ioredis'

const APPENDS = 5_000
const STREAM = 100_000
const MAX_SECONDS = 120
const started = Date.now()
const inTime = () => Date.now() - started < MAX_SECONDS * 1000

const port = await new Promise((resolve) => {
  const server = createServer().listen(0, '127.0.0.1', () => {
    const { port } = server.address()
    server.close(() => resolve(port))
  })
})
const directory = mkdtempSync(join(tmpdir(), 'keyrot-bench-history-'))
const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', directory], { stdio: 'ignore' })
const stopRedis = () => {
  redis.kill('SIGKILL')
  rmSync(directory, { recursive: true, force: true })
}
process.once('exit', stopRedis)
for (let i = 0; spawnSync('redis-cli', ['-p', String(port), 'PING'], { encoding: 'utf8' }).stdout.trim() !== 'PONG'; i++) {
  if (i > 100) throw new Error('redis-server did not start')
  await new Promise((resolve) => setTimeout(resolve, 50))
}

function print(label, microseconds, note) {
  console.log(`${label.padEnd(52)} ${microseconds.toFixed(1).padStart(9)} µs/op  ${Math.round(1e6 / microseconds).toLocaleString('en-US').padStart(8)} op/s  ${note}`)
}

const client = new Redis(port, '127.0.0.1', { lazyConnect: true })
const entry = (n, familyId = 'fam0000000') => ({ at: 1_900_000_000_000 + n, action: 'key.revoked', keyId: `${familyId}${String(n % 1e6).padStart(6, '0')}`, familyId, tenantId: 'bench', reason: 'bench' })

async function appendsFrom(logCount) {
  const keyPrefix = `bench${logCount}`
  const logs = Array.from({ length: logCount }, () => new RedisHistoryLog({ client, keyPrefix, timeout: '5s' }))
  await logs[0].append(entry(0))
  for (let i = 0; i < 200; i++) await logs[0].append(entry(i)) // warm up
  let next = 0
  const perLog = logs.map(() => 0)
  const t0 = process.hrtime.bigint()
  await Promise.all(
    logs.map(async (log, l) => {
      while (next < APPENDS && inTime()) {
        await log.append(entry(next++))
        perLog[l]++
      }
    }),
  )
  const perOp = Number(process.hrtime.bigint() - t0) / next / 1000
  const check = await logs[0].verify()
  if (!check.ok || check.checked !== next + 201) throw new Error(`chain broken: ${JSON.stringify(check.problems.slice(0, 3))}`)
  print(`append, ${logCount} log${logCount > 1 ? 's' : ''} at once`, perOp, `(${next}, per log ${perLog.join('/')}; one chain of ${check.checked}, verified)`)
  await Promise.all(logs.map((log) => log.close()))
}

await appendsFrom(1)
await appendsFrom(2)
await appendsFrom(4)

// An admin action's cost with and without the history (it returns once its entry is appended).
async function revokes(label, history) {
  const store = new RedisStore({ client, keyPrefix: `bench-revoke-${history ? 'h' : 'n'}`, invalidation: false })
  const keyring = createKeyring({ store, hasher: new FastTestHasher(), rateLimit: false, ...(history ? { history: RedisHistoryLog.forStore(store) } : {}) })
  const ids = []
  for (let i = 0; i < 1_000; i++) ids.push((await keyring.create({ tenantId: 'bench', name: `k${i}` })).key.id)
  const t0 = process.hrtime.bigint()
  let done = 0
  for (; done < ids.length && inTime(); done++) await keyring.revoke(ids[done])
  const recorded = history ? ` (${(await keyring.verifyHistory()).checked} entries in the history)` : ''
  print(label, Number(process.hrtime.bigint() - t0) / done / 1000, `(${done} in a row)${recorded}`)
  await keyring.close()
}
await revokes('keyring.revoke, no history', false)
await revokes('keyring.revoke, with RedisHistoryLog', true)

// A full stream: verify() and reading one family whose entries are spread through it.
const big = new RedisHistoryLog({ client, keyPrefix: 'bench-big', timeout: '5s', maxLength: STREAM })
const filler = new Redis(port, '127.0.0.1')
let filled = 0
for (; filled < STREAM && inTime(); filled++) await big.append(entry(filled, filled % 1_000 === 0 ? 'famRARE000' : 'fam0000000'))
let t0 = process.hrtime.bigint()
const check = await big.verify()
const verifyMs = Number(process.hrtime.bigint() - t0) / 1e6
if (!check.ok) throw new Error('the big chain did not verify')
console.log(`${'verify(), whole stream'.padEnd(52)} ${verifyMs.toFixed(0).padStart(9)} ms     (${check.checked.toLocaleString('en-US')} entries, ${(await filler.memory('USAGE', 'bench-big:{history}:stream')).toLocaleString('en-US')} bytes in Redis)`)
t0 = process.hrtime.bigint()
const family = await big.read({ familyId: 'famRARE000' })
console.log(`${'read({ familyId }), one family spread over it'.padEnd(52)} ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(0).padStart(9)} ms     (${family.length} entries found, whole stream scanned)`)
t0 = process.hrtime.bigint()
const newest = await big.read({ familyId: 'fam0000000', limit: 20 })
console.log(`${'read({ familyId, limit: 20 }), a busy family'.padEnd(52)} ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(1).padStart(9)} ms     (${newest.length} entries, first page only)`)

await big.close()
filler.disconnect()
client.disconnect()
stopRedis()
