import { Redis } from 'ioredis'
import { randomBytes } from 'node:crypto'
const r = new Redis({ port: 17391 })
const N = Number(process.argv[2] ?? 100000)
const mode = process.argv[3]
await r.flushall()
const used = async () => Number(/used_memory:(\d+)/.exec(await r.info('memory'))[1])
const base = await used()
const alpha = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
const rid = (n) => Array.from(randomBytes(n), (b) => alpha[b % 62]).join('')
const now = Date.now()
for (let i = 0; i < N; i += 1000) {
  const p = r.pipeline()
  for (let j = i; j < i + 1000; j++) {
    const id = rid(16), fam = id.slice(0, 10), t = `tenant-${j % 1000}`
    const rec = `keyrot:{${fam}}:rec:${id}`
    if (mode === 'zset') { p.hset(rec, 'v', 2, 't', t, 'n', `bulk ${j}`, 'p', 'sk_live', 's', 'read', 'c', now, 'h', randomBytes(52)); p.zadd(`keyrot:tenant:{${t}}`, now, id) }
    if (mode === 'noindex') { p.hset(rec, 'v', 2, 't', t, 'n', `bulk ${j}`, 'p', 'sk_live', 's', 'read', 'c', now, 'h', randomBytes(52)) }
    if (mode === 'cred') { p.hset(rec, 'v', 2, 't', t, 'n', `bulk ${j}`, 'p', 'sk_live', 's', 'read', 'c', now, 'h', randomBytes(52)); p.set(`keyrot:{${fam}}:cred:${id}`, '1', 'PX', 3600000) }
    if (mode === 'hidx') { p.hset(rec, 'v', 2, 't', t, 'n', `bulk ${j}`, 'p', 'sk_live', 's', 'read', 'c', now, 'h', randomBytes(52)); p.hset(`keyrot:tenant:{${t}}:${id.charCodeAt(15) % 16}`, id, now) }
  }
  await p.exec()
}
console.log(mode, N, ((await used()) - base) / N, 'B/key', await r.call('MEMORY', 'USAGE', (await r.keys('keyrot:{*:rec:*'))[0] ?? '', 'SAMPLES', '0'))
r.disconnect()
