import { readFileSync } from 'node:fs'
import { markdownTable, type Check, type Table } from './lib/table.js'
import type { Machine } from './lib/machine.js'

/**
 * Prints a JSON report of `run.js` as Markdown (tables, targets, notes), for
 * docs/benchmarks.md:
 *
 *   node bench/dist/markdown.js bench/results/latest.json
 */

interface Report {
  command: string
  profile: string
  startedAt: string
  elapsedSec: number
  machine: Machine
  checks: Check[]
  sections: Record<string, { title: string; tables: Table[]; notes: string[]; loadAverage?: { before: number; after: number } }>
}

const file = process.argv[2]
if (!file) {
  console.error('usage: node bench/dist/markdown.js <report.json>')
  process.exit(2)
}
const report = JSON.parse(readFileSync(file, 'utf8')) as Report
const m = report.machine
const loads = Object.values(report.sections).flatMap((s) => (s.loadAverage ? [s.loadAverage.before] : []))
const out: string[] = [
  `Measured on ${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node.replace(/^v/, '')}, redis-server ${m.redis}, Linux ${m.kernel}; ` +
    `\`${report.command}\`, ${report.startedAt.slice(0, 10)}, ${Math.round(report.elapsedSec / 60)} min` +
    (loads.length ? `; 1-minute load average before each section ${Math.min(...loads)}-${Math.max(...loads)} (the benchmark's own earlier processes count too).` : '.'),
  '',
  markdownTable({
    title: 'Targets',
    columns: ['target', 'goal', 'measured', ''],
    rows: report.checks.map((c) => [c.name, c.target, c.measured, c.met ? 'met' : '**missed**']),
  }),
]
for (const section of Object.values(report.sections)) {
  for (const table of section.tables) {
    out.push('', `**${table.title}**`, '', markdownTable(table))
    if (table.notes?.length) out.push('', table.notes.map((note) => note.trim()).join(' '))
  }
  if (section.notes.length) out.push('', ...section.notes.map((note) => `- ${note}`))
}
console.log(out.join('\n'))
