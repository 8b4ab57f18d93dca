// Compares benchmark sections of an earlier commit with this checkout on the
// same machine: "no regression" is a claim about two versions, and on a
// shared machine figures from different days (or hours) cannot carry it.
// Builds the earlier commit in a temporary git worktree, then runs the chosen
// sections of both, alternating (earlier, current, earlier, current...), so
// the machine's slow and quiet moments fall on both, and prints every target
// of every run side by side.
//
// node bench/compare.mjs --ref <commit> --only propagation [--runs 3] [--keep]
//
// Build this checkout first (node scripts/setup.mjs). The worktree is removed
// at the end unless --keep is given (then it is reused by the next call).
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  options: {
    ref: { type: 'string' },
    only: { type: 'string' },
    runs: { type: 'string', default: '3' },
    keep: { type: 'boolean', default: false },
  },
})
const runs = Number(values.runs)
if (!values.ref || !values.only) fail('usage: node bench/compare.mjs --ref <commit> --only <sections> [--runs 3] [--keep]')
if (!Number.isInteger(runs) || runs < 1 || runs > 20) fail('--runs must be a whole number from 1 to 20')

const root = fileURLToPath(new URL('..', import.meta.url))
const git = (...args) => execFileSync('git', ['-C', root, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim()
let sha
try {
  sha = git('rev-parse', '--verify', `${values.ref}^{commit}`)
} catch {
  fail(`--ref ${values.ref}: no such commit in ${root}`)
}
if (!existsSync(join(root, 'bench/dist/run.js'))) fail('this checkout is not built: run node scripts/setup.mjs first')

const worktree = join(tmpdir(), `keyrot-compare-${sha.slice(0, 12)}`)
if (!existsSync(join(worktree, 'bench/dist/run.js'))) {
  if (!existsSync(worktree)) git('worktree', 'add', '--detach', worktree, sha)
  console.log(`building ${sha.slice(0, 12)} in ${worktree} (install and build, about a minute)`)
  step('node', ['scripts/setup.mjs'], worktree, true)
}

const out = mkdtempSync(join(tmpdir(), 'keyrot-compare-out-'))
const sides = [
  { name: sha.slice(0, 12), dir: worktree, reports: [], loads: [] },
  { name: `current (${git('rev-parse', '--short=12', 'HEAD')}${git('status', '--porcelain', '--untracked-files=no') ? ', uncommitted changes' : ''})`, dir: root, reports: [], loads: [] },
]
try {
  for (let run = 1; run <= runs; run++) {
    for (const [index, side] of sides.entries()) {
      const file = join(out, `${index}-${run}.json`)
      console.log(`run ${run}/${runs}: ${side.name}`)
      side.loads.push(loadavg()[0] ?? 0)
      step('node', ['bench/dist/run.js', '--only', values.only, '--out', file], side.dir, false)
      side.reports.push(JSON.parse(readFileSync(file, 'utf8')))
    }
  }
} finally {
  rmSync(out, { recursive: true, force: true })
  if (!values.keep) {
    try {
      git('worktree', 'remove', '--force', worktree)
    } catch (error) {
      console.error(`could not remove the worktree ${worktree}: ${error.message}`)
    }
  }
}

const names = [...new Set(sides.flatMap((side) => side.reports.flatMap((report) => report.checks.map((check) => check.name))))]
console.log(`\n${values.only}: ${runs} run(s) of each, alternating, on this machine`)
for (const name of names) {
  console.log(`\n${name}`)
  for (const side of sides) {
    for (const [run, report] of side.reports.entries()) {
      const check = report.checks.find((c) => c.name === name)
      const load = side.loads[run] ?? 0
      console.log(`  ${side.name.padEnd(40)} run ${run + 1}: ${check ? `${check.met ? 'met   ' : 'MISSED'} ${check.measured}` : '(no such target)'} (load average before: ${load.toFixed(2)})`)
    }
  }
}

/** Runs a command in `cwd`; its output is shown only when it fails, or when `loud`. */
function step(command, args, cwd, loud) {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', stdio: loud ? 'inherit' : 'pipe', timeout: 3_600_000 })
  if (result.status !== 0) {
    if (!loud) process.stderr.write(`${result.stdout ?? ''}${result.stderr ?? ''}`)
    fail(`${command} ${args.join(' ')} in ${cwd} failed (${result.error?.message ?? `exit ${result.status}`})`)
  }
}

function fail(message) {
  console.error(`compare: ${message}`)
  process.exit(2)
}
