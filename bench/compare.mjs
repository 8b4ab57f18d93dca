// Compares benchmark sections of an earlier commit with this checkout on the
// same machine: "no regression" is a claim about two versions, and on a
// shared machine figures from different days (or hours) cannot carry it.
// Builds the earlier commit in a new temporary git worktree, then runs the
// chosen sections of both in turns, the side that starts alternating from
// run to run (earlier, current, current, earlier...), so a trend in the
// machine's load falls on both. Prints every target of every run side by
// side and keeps every run's JSON report in
// bench/results/compare-<commit>-<time>/ (each run of this checkout also
// writes its usual bench/results/<time>.json).
//
// node bench/compare.mjs --ref <commit> --only propagation [--runs 3] [--keep]
//
// Build this checkout first (node scripts/setup.mjs). The worktree is removed
// at the end, also after a failure or Ctrl-C, unless --keep is given.
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

class Failure extends Error {}

const root = fileURLToPath(new URL('..', import.meta.url))
const git = (...args) => execFileSync('git', ['-C', root, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim()
const cleanups = []
process.once('SIGINT', () => {
  cleanUp()
  process.exit(130)
})

try {
  main()
} catch (error) {
  // A bad command line or a failed step says what went wrong in one line; anything else is a bug here and shows its stack.
  const expected = error instanceof Failure || String(error?.code).startsWith('ERR_PARSE_ARGS')
  console.error(`compare: ${expected ? error.message : error.stack}`)
  process.exitCode = 2
} finally {
  cleanUp()
}

function main() {
  const { values } = parseArgs({
    options: {
      ref: { type: 'string' },
      only: { type: 'string' },
      runs: { type: 'string', default: '3' },
      keep: { type: 'boolean', default: false },
    },
  })
  const runs = Number(values.runs)
  if (!values.ref || !values.only) throw new Failure('usage: node bench/compare.mjs --ref <commit> --only <sections> [--runs 3] [--keep]')
  if (!Number.isInteger(runs) || runs < 1 || runs > 20) throw new Failure('--runs must be a whole number from 1 to 20')
  let sha
  try {
    sha = git('rev-parse', '--verify', `${values.ref}^{commit}`)
  } catch {
    throw new Failure(`--ref ${values.ref}: no such commit in ${root}`)
  }
  if (!existsSync(join(root, 'bench/dist/run.js'))) throw new Failure('this checkout is not built: run node scripts/setup.mjs first')
  if (git('diff', '--name-only', sha, 'HEAD', '--', 'bench/src') !== '') {
    console.log(`note: bench/src differs between ${sha.slice(0, 12)} and HEAD: each side runs its own benchmark code, so a change there shows as a difference between the versions`)
  }

  const worktree = mkdtempSync(join(tmpdir(), `keyrot-compare-${sha.slice(0, 12)}-`))
  rmSync(worktree, { recursive: true })
  git('worktree', 'add', '--detach', worktree, sha)
  if (values.keep) console.log(`the worktree stays in ${worktree} (git worktree remove --force ${worktree} removes it)`)
  else cleanups.push(() => git('worktree', 'remove', '--force', worktree))
  console.log(`building ${sha.slice(0, 12)} in ${worktree} (install and build, about a minute)`)
  step('node', ['scripts/setup.mjs'], worktree)

  // Read before this run adds its own files to bench/results (reports are not code).
  const dirty = git('status', '--porcelain', '--', '.', ':!bench/results') !== ''
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)
  const kept = join(root, 'bench/results', `compare-${sha.slice(0, 12)}-${stamp}`)
  mkdirSync(kept, { recursive: true })
  const out = mkdtempSync(join(tmpdir(), 'keyrot-compare-out-'))
  cleanups.push(() => rmSync(out, { recursive: true, force: true }))
  const sides = [
    { name: sha.slice(0, 12), file: 'earlier', dir: worktree, reports: [], loads: [] },
    { name: `current (${git('rev-parse', '--short=12', 'HEAD')}${dirty ? ', with uncommitted changes' : ''})`, file: 'current', dir: root, reports: [], loads: [] },
  ]
  for (let run = 1; run <= runs; run++) {
    for (const side of run % 2 === 1 ? sides : [...sides].reverse()) {
      const file = join(out, `${side.file}-${run}.json`)
      console.log(`run ${run}/${runs}: ${side.name}`)
      side.loads[run - 1] = loadavg()[0] ?? 0
      // A failed run (a section that threw) is shown as such and the comparison goes on: one side failing is a finding too.
      const ran = spawnSync('node', ['bench/dist/run.js', '--only', values.only, '--out', file], { cwd: side.dir, encoding: 'utf8', timeout: 3_600_000 })
      if (existsSync(file)) copyFileSync(file, join(kept, `${side.file}-${run}.json`))
      const report = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : { checks: [] }
      if (ran.status !== 0) {
        const output = `${ran.stdout ?? ''}${ran.stderr ?? ''}`
        const stated = report.failures?.map((failure) => `${failure.id}: ${failure.error}`).join('; ') ?? output.split('\n').find((line) => / failed: /.test(line))
        const lastLine = output.trim().split('\n').at(-1)
        report.failed = (stated ?? (lastLine ? `${lastLine} (exit ${ran.status ?? ran.signal})` : `exit ${ran.status ?? ran.signal}`)).replace(/\s+/g, ' ').slice(0, 300)
        console.log(`  failed: ${report.failed}`)
      }
      side.reports[run - 1] = report
    }
  }

  const names = [...new Set(sides.flatMap((side) => side.reports.flatMap((report) => report.checks.map((check) => check.name))))]
  console.log(`\n${values.only}: ${runs} run(s) of each in turns on this machine; reports in ${kept}`)
  for (const name of names) {
    console.log(`\n${name}`)
    for (const side of sides) {
      for (const [run, report] of side.reports.entries()) {
        const check = report.checks.find((c) => c.name === name)
        const measured = check ? `${check.met ? 'met   ' : 'MISSED'} ${check.measured}` : report.failed ? 'FAILED (below)' : '(no such target)'
        console.log(`  ${side.name.padEnd(40)} run ${run + 1}: ${measured} (load average before: ${side.loads[run].toFixed(2)})`)
      }
    }
  }
  const failed = sides.flatMap((side) => side.reports.flatMap((report, run) => (report.failed ? [`  ${side.name} run ${run + 1}: ${report.failed}`] : [])))
  if (names.length === 0) console.log('\n(these sections print no targets: see the reports)')
  if (failed.length > 0) console.log(`\nfailed runs:\n${failed.join('\n')}`)
}

/** Runs a command in `cwd`, its output shown (a long install should not look hung), and throws if it fails. */
function step(command, args, cwd) {
  const result = spawnSync(command, args, { cwd, stdio: 'inherit', timeout: 3_600_000 })
  if (result.status !== 0) throw new Failure(`${command} ${args.join(' ')} in ${cwd} failed (${result.error?.message ?? `exit ${result.status ?? result.signal}`})`)
}

/** Removes what this run made (the worktree unless --keep, the scratch folder), once, whatever ended the run. */
function cleanUp() {
  for (const cleanup of cleanups.splice(0).reverse()) {
    try {
      cleanup()
    } catch (error) {
      console.error(`compare: could not clean up: ${error.message}`)
    }
  }
}
