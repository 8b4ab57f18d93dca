import { readFileSync } from 'node:fs'
import { markdownTable, type Check, type Table } from './lib/table.js'
import type { Machine } from './lib/machine.js'

/**
 * Prints a JSON report of `run.js` as Markdown (tables, targets, notes), for
 * the README's Benchmarks section:
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
  sections: Record<string, { title: string; tables: Table[]; notes: string[] }>
}

const file = process.argv[2]
if (!file) {
  console.error('usage: node bench/dist/markdown.js <report.json>')
  process.exit(2)
}
const report = JSON.parse(readFileSync(file, 'utf8')) as Report
const m = report.machine
const out: string[] = [
  `Measured on ${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node.replace(/^v/, '')}, redis-server ${m.redis}, Linux ${m.kernel}; ` +
    `\`${report.command}\`, ${report.startedAt.slice(0, 10)}, ${Math.round(report.elapsedSec / 60)} min.`,
  '',
  '**Targets**',
  '',
  ...report.checks.map((c) => `- ${c.met ? 'met' : '**missed**'}: ${c.name}: ${c.measured} (target ${c.target})${c.met || !c.explanation ? '' : `. ${c.explanation}`}`),
]
for (const section of Object.values(report.sections)) {
  for (const table of section.tables) {
    out.push('', `**${table.title}**`, '', markdownTable(table))
    if (table.notes?.length) out.push('', ...table.notes.map((note) => `<sub>${note.trim()}</sub><br>`))
  }
  if (section.notes.length) out.push('', ...section.notes.map((note) => `- ${note}`))
}
console.log(out.join('\n'))
