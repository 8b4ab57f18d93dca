// A CPU profile of the Koa path: a Koa app behind apiKeyAuth (memory store,
// the benchmark's default abuse protection, a cached key) in a child process
// run with --cpu-prof, pinned to core 0; autocannon on core 1 (taskset, when
// there are 2 cores). Prints the top frames by self time and the CPU time
// per request, and keeps the .cpuprofile for a closer look (Chrome DevTools,
// speedscope).
// Build first: node scripts/setup.mjs --build-only && node bench/koa-profile.mjs [--seconds 8] [--app keyrot|hand-rolled|bare] [--framework koa|express] [--top 25]
import { execFileSync, fork } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  options: {
    serve: { type: 'boolean', default: false },
    app: { type: 'string', default: 'keyrot' },
    framework: { type: 'string', default: 'koa' },
    seconds: { type: 'string', default: '8' },
    top: { type: 'string', default: '25' },
  },
})

if (values.serve && values.framework === 'express') await serveExpress(values.app)
else if (values.serve) await serve(values.app)
else await profile()

/** The same app on Express 5, for `--framework express`. */
async function serveExpress(kind) {
  const { createKeyring, FastTestHasher } = await import('@keyrot/core')
  const { apiKeyAuth } = await import('@keyrot/express')
  const { default: express } = await import('express')
  const { createHash } = await import('node:crypto')
  const keyring = createKeyring({ hasher: new FastTestHasher(), rateLimit: { perKey: { limit: 1_000_000_000, window: '1m' } }, proofKey: null })
  const { token, key } = await keyring.create({ tenantId: 'acme', name: 'profile' })
  if (!(await keyring.verify(token)).ok) throw new Error('the key was refused')
  const app = express()
  if (kind === 'keyrot') app.use(apiKeyAuth({ keyring }))
  else if (kind === 'hand-rolled') {
    const sha = (t) => createHash('sha256').update(t).digest('hex')
    const keys = new Map([[sha(token), { id: key.id, revokedAt: null, expiresAt: key.expiresAt }]])
    app.use(function handRolledAuth(req, res, next) {
      const header = req.headers.authorization ?? ''
      const found = header.startsWith('Bearer ') ? keys.get(sha(header.slice(7))) : undefined
      if (!found || found.revokedAt !== null || (found.expiresAt !== null && found.expiresAt <= Date.now())) {
        res.status(401).json({ error: { code: 'invalid_key' } })
        return
      }
      req.apiKey = found
      next()
    })
  } else if (kind !== 'bare') throw new TypeError(`--app must be keyrot, hand-rolled or bare; got ${kind}`)
  app.get('/hello', (_req, res) => {
    res.send('hello world')
  })
  const server = app.listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  process.on('message', (message) => {
    if (message === 'cpu') process.send({ cpu: process.cpuUsage() })
    if (message === 'stop') {
      server.close()
      void keyring.close().then(() => process.exit(0))
    }
  })
  process.send({ port: server.address().port, token })
}

async function serve(kind) {
  const { createKeyring, FastTestHasher } = await import('@keyrot/core')
  const { apiKeyAuth } = await import('@keyrot/koa')
  const { default: Koa } = await import('koa')
  const { createHash } = await import('node:crypto')
  // The bench's protection: defaults plus a per-key quota that never refuses (bench/src/lib/keyrings.ts).
  const keyring = createKeyring({ hasher: new FastTestHasher(), rateLimit: { perKey: { limit: 1_000_000_000, window: '1m' } }, proofKey: null })
  const { token, key } = await keyring.create({ tenantId: 'acme', name: 'profile' })
  if (!(await keyring.verify(token)).ok) throw new Error('the key was refused')
  const app = new Koa()
  if (kind === 'keyrot') app.use(apiKeyAuth({ keyring }))
  else if (kind === 'hand-rolled') {
    const sha = (t) => createHash('sha256').update(t).digest('hex')
    const keys = new Map([[sha(token), { id: key.id, scopes: key.scopes, revokedAt: null, expiresAt: key.expiresAt }]])
    app.use(async function handRolledAuth(ctx, next) {
      const header = ctx.get('authorization')
      const found = header.startsWith('Bearer ') ? keys.get(sha(header.slice(7))) : undefined
      if (!found || found.revokedAt !== null || (found.expiresAt !== null && found.expiresAt <= Date.now())) {
        ctx.status = 401
        ctx.body = { error: { code: 'invalid_key' } }
        return
      }
      ctx.state.apiKey = found
      await next()
    })
  } else if (kind !== 'bare') throw new TypeError(`--app must be keyrot, hand-rolled or bare; got ${kind}`)
  app.use((ctx) => {
    ctx.body = 'hello world'
  })
  const server = app.listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  process.on('message', (message) => {
    if (message === 'cpu') process.send({ cpu: process.cpuUsage() })
    if (message === 'stop') {
      server.close()
      void keyring.close().then(() => process.exit(0))
    }
  })
  process.send({ port: server.address().port, token })
}

function pin(pid, core) {
  if (cpus().length < 2) return false
  try {
    execFileSync('taskset', ['-a', '-p', '-c', String(core), String(pid)], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

function nextMessage(child) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the app sent nothing within 20 s')), 20_000)
    child.once('message', (message) => {
      clearTimeout(timer)
      resolve(message)
    })
    child.once('exit', (code) => reject(new Error(`the app exited (${code})`)))
  })
}

async function profile() {
  const seconds = Number(values.seconds)
  if (!(seconds > 0 && seconds <= 60)) throw new TypeError('--seconds must be in (0, 60]')
  const { default: autocannon } = await import('autocannon')
  const dir = mkdtempSync(join(tmpdir(), 'keyrot-koa-profile-'))
  const child = fork(fileURLToPath(import.meta.url), ['--serve', '--app', values.app, '--framework', values.framework], { execArgv: ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-interval', '200'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const killer = setTimeout(() => child.kill('SIGKILL'), (seconds + 60) * 1000)
  try {
    const { port, token } = await nextMessage(child)
    const pinned = pin(child.pid, 0) && pin(process.pid, 1)
    const load = (duration) => autocannon({ url: `http://127.0.0.1:${port}/hello`, headers: { authorization: `Bearer ${token}` }, connections: 50, duration, timeout: 10 })
    await load(1)
    child.send('cpu')
    const before = (await nextMessage(child)).cpu
    const result = await load(seconds)
    child.send('cpu')
    const after = (await nextMessage(child)).cpu
    if (result.non2xx > 0 || result.errors > 0) throw new Error(`${result.non2xx} non-2xx responses, ${result.errors} errors`)
    const cpuUs = after.user - before.user + (after.system - before.system)
    console.log(`${values.framework}, ${values.app}: ${Math.round(result['2xx'] / result.duration)} req/s, server CPU ${(cpuUs / result['2xx']).toFixed(1)} µs per request (${pinned ? 'pinned: app core 0, autocannon core 1' : 'not pinned'})`)
    child.send('stop')
    await new Promise((resolve) => child.once('exit', resolve))
  } finally {
    clearTimeout(killer)
    if (child.exitCode === null) child.kill('SIGKILL')
    pin(process.pid, `0-${cpus().length - 1}`)
  }
  const file = readdirSync(dir).find((name) => name.endsWith('.cpuprofile'))
  if (!file) throw new Error(`no profile written in ${dir}`)
  printTop(JSON.parse(readFileSync(join(dir, file), 'utf8')), Number(values.top))
  console.log(`\nprofile: ${join(dir, file)}`)
}

function printTop(profile, top) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const self = new Map()
  const deltas = profile.timeDeltas
  let total = 0
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i])
    const dt = deltas[i] ?? 0
    const frame = node.callFrame
    if (frame.functionName === '(idle)') continue
    total += dt
    const where = frame.url ? `${frame.url.replace(/^.*\/node_modules\//, '').replace(/^.*\/packages\//, 'packages/').replace(/^file:\/\//, '')}:${frame.lineNumber + 1}` : ''
    const name = `${frame.functionName || '(anonymous)'} ${where}`.trim()
    self.set(name, (self.get(name) ?? 0) + dt)
  }
  // Self time by where the code lives: keyrot's packages, each dependency, Node's internals.
  const owners = new Map()
  for (const [name, time] of self) {
    const where = name.split(' ').at(-1) ?? ''
    const owner = where.startsWith('packages/') ? where.split('/').slice(0, 2).join('/') : where.startsWith('node:') ? 'node' : where.includes(':') ? where.split('/')[0] : name
    owners.set(owner, (owners.get(owner) ?? 0) + time)
  }
  console.log('\nself time by owner:')
  for (const [owner, time] of [...owners.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(`${((100 * time) / total).toFixed(1).padStart(5)}%  ${owner}`)
  const rows = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)
  console.log(`\ntop ${top} frames by self time (busy time ${(total / 1000).toFixed(0)} ms, idle excluded):`)
  for (const [name, time] of rows) console.log(`${((100 * time) / total).toFixed(1).padStart(5)}%  ${name}`)
}
