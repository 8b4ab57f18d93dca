import { mkdirSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { describeMachine } from './lib/machine.js'
import { killAllChildren } from './lib/processes.js'
import { FULL, QUICK } from './lib/profile.js'
import { startRedis, type BenchRedis } from './lib/redis-server.js'
import { SECTION_IDS, type RunContext, type SectionId, type SectionReport } from './lib/report.js'
import { renderCheck, renderTable } from './lib/table.js'
import { allowlistImportSection } from './sections/allowlist-import.js'
import { argon2Section } from './sections/argon2.js'
import { creditsSection } from './sections/credits.js'
import { HTTP_FRAMEWORKS, httpSection } from './sections/http.js'
import { memorySection } from './sections/memory.js'
import { peersSection } from './sections/peers.js'
import { propagationSection } from './sections/propagation.js'
import { proofsSection } from './sections/proofs.js'
import { verifySection } from './sections/verify.js'
import { policySection } from './sections/policy.js'

const USAGE = `Usage: npm run bench -- [--quick] [--only ${SECTION_IDS.join(',')}] [--out <file.json>] [--max-keys <n>]

  --quick       smaller counts: a smoke run in under a minute (figures are rough)
  --only        run only these sections (comma-separated)
  --out         also write the JSON report here
  --max-keys    largest key count of the scale runs (default 1000000; quick: 10000)
  --frameworks  HTTP section: only these frameworks (comma-separated; default all)

Starts its own redis-server on a free loopback port (no persistence) and stops
it at the end. Prints one table per section and the targets met or missed,
then writes bench/results/<timestamp>.json, and bench/results/latest.json
after a complete full run (a --quick run writes bench/results/quick-latest.json).`

const SECTIONS: Record<SectionId, (context: RunContext) => Promise<SectionReport>> = {
  verify: verifySection,
  http: httpSection,
  peers: peersSection,
  propagation: propagationSection,
  memory: memorySection,
  argon2: argon2Section,
  proofs: proofsSection,
  credits: creditsSection,
  policy: policySection,
  'allowlist-import': allowlistImportSection,
}

function parseCommandLine() {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      out: { type: 'string' },
      'max-keys': { type: 'string' },
      frameworks: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  })
  if (values.help) {
    console.log(USAGE)
    process.exit(0)
  }
  const only = values.only === undefined ? [...SECTION_IDS] : values.only.split(',').map((s) => s.trim()).filter(Boolean)
  for (const id of only) {
    if (!(SECTION_IDS as readonly string[]).includes(id)) throw new TypeError(`--only: unknown section '${id}' (sections: ${SECTION_IDS.join(', ')})`)
  }
  const profile = values.quick ? QUICK : FULL
  const maxKeys = values['max-keys'] === undefined ? Math.max(...profile.scale.levels) : Number(values['max-keys'])
  if (!Number.isInteger(maxKeys) || maxKeys < 1) throw new TypeError(`--max-keys must be a positive integer; got ${values['max-keys']}`)
  const frameworks = values.frameworks?.split(',').map((s) => s.trim()).filter(Boolean)
  for (const framework of frameworks ?? []) {
    if (!(HTTP_FRAMEWORKS as readonly string[]).includes(framework)) throw new TypeError(`--frameworks: unknown framework '${framework}' (frameworks: ${HTTP_FRAMEWORKS.join(', ')})`)
  }
  return { profile, only: only as SectionId[], out: values.out, maxKeys, frameworks }
}

async function main(): Promise<void> {
  const { profile, only, out, maxKeys, frameworks } = parseCommandLine()
  const started = Date.now()
  const log = (message: string) => console.error(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(3)}s] ${message}`)
  const redis: BenchRedis = await startRedis()
  const machine = describeMachine(redis.version)
  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`
  console.log(`keyrot benchmarks (${profile.name}): ${command}`)
  console.log(`machine: ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGiB} GiB, Node ${machine.node}, Linux ${machine.kernel}, redis-server ${machine.redis} on 127.0.0.1:${redis.port}`)
  if (machine.cores <= 2) console.log(`note: ${machine.cores} cores: load generators, servers and redis-server share them, so HTTP and propagation figures are lower bounds.`)
  const busy = () => {
    const [oneMinute] = loadavg()
    if ((oneMinute ?? 0) > machine.cores * 0.5) console.log(`warning: load average ${(oneMinute ?? 0).toFixed(2)} on ${machine.cores} cores before this section: other work shares the machine, figures will be low and noisy.`)
  }
  busy()
  console.log('')

  const reports: SectionReport[] = []
  const failures: Array<{ id: SectionId; error: string }> = []
  try {
    for (const id of only) {
      const sectionStarted = Date.now()
      log(`section ${id}`)
      const loadBefore = loadavg()[0] ?? 0
      if (reports.length > 0 || failures.length > 0) busy()
      try {
        redis.cli('FLUSHALL')
        const report = await SECTIONS[id]({ profile, redis, maxKeys, log, ...(frameworks ? { frameworks } : {}) })
        report.elapsedMs = Date.now() - sectionStarted
        report.loadAverage = { before: Math.round(loadBefore * 100) / 100, after: Math.round((loadavg()[0] ?? 0) * 100) / 100 }
        reports.push(report)
        for (const table of report.tables) console.log(`${renderTable(table)}\n`)
        for (const check of report.checks) console.log(renderCheck(check))
        for (const note of report.notes) console.log(`note: ${note}`)
        console.log('')
      } catch (error) {
        const message = error instanceof Error ? (error.stack ?? error.message) : String(error)
        failures.push({ id, error: message })
        console.error(`section ${id} failed: ${message}\n`)
      }
    }
  } finally {
    killAllChildren()
    redis.cli('FLUSHALL')
    await redis.stop()
  }

  const checks = reports.flatMap((r) => r.checks)
  console.log(`targets: ${checks.filter((c) => c.met).length} met, ${checks.filter((c) => !c.met).length} missed`)
  for (const check of checks) console.log(`  ${check.met ? 'met   ' : 'MISSED'}  ${check.name}: ${check.measured}`)

  const finishedAt = new Date()
  const document = {
    command,
    profile: profile.name,
    startedAt: new Date(started).toISOString(),
    elapsedSec: Math.round((Date.now() - started) / 1000),
    machine,
    options: { only, maxKeys, ...(frameworks ? { frameworks } : {}) },
    checks,
    sections: Object.fromEntries(reports.map((r) => [r.id, { title: r.title, elapsedMs: r.elapsedMs, loadAverage: r.loadAverage, tables: r.tables, notes: r.notes, data: r.data }])),
    failures,
  }
  const resultsDir = fileURLToPath(new URL('../results/', import.meta.url))
  const stamp = finishedAt.toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')
  // latest.json holds the last complete full run; quick and partial runs never replace it.
  const complete = profile.name === 'full' && only.length === SECTION_IDS.length && failures.length === 0 && frameworks === undefined
  const targets = profile.name === 'quick' ? [resolve(resultsDir, 'quick-latest.json')] : [resolve(resultsDir, `${stamp}.json`)]
  if (complete) targets.push(resolve(resultsDir, 'latest.json'))
  if (out) targets.push(resolve(out))
  for (const target of targets) {
    mkdirSync(dirname(target), { recursive: true })
    writeFileSync(target, `${JSON.stringify(document, null, 2)}\n`)
  }
  console.log(`\nJSON report: ${targets.join(', ')} (${document.elapsedSec} s)`)
  if (failures.length > 0) {
    console.error(`${failures.length} section(s) failed: ${failures.map((f) => f.id).join(', ')}`)
    process.exitCode = 1
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAllChildren()
    process.exit(130)
  })
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error)
  killAllChildren()
  process.exit(1)
})
