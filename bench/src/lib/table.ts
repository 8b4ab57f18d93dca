/** A printed table: a title, column headers and rows of already formatted cells. */
export interface Table {
  title: string
  columns: string[]
  rows: string[][]
  /** Lines printed under the table (how it was measured, caveats). */
  notes?: string[]
}

/** A target from the benchmark brief and whether this run met it. */
export interface Check {
  name: string
  target: string
  measured: string
  met: boolean
  /** Where the time goes, when the target was missed (or why it holds). */
  explanation?: string
}

const NUMERIC = /^[-+]?[\d,.]+(\s?\S+)?$|^n\/a$/

export function renderTable(table: Table): string {
  const widths = table.columns.map((column, i) => Math.max(column.length, ...table.rows.map((row) => (row[i] ?? '').length)))
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => {
        const width = widths[i] as number
        return i > 0 && NUMERIC.test(cell) ? cell.padStart(width) : cell.padEnd(width)
      })
      .join('  ')
      .trimEnd()
  const out = [`### ${table.title}`, '', line(table.columns), widths.map((w) => '-'.repeat(w)).join('  ')]
  for (const row of table.rows) out.push(line(row))
  for (const note of table.notes ?? []) out.push(`  ${note}`)
  return out.join('\n')
}

/** The same table as Markdown (for docs/benchmarks.md). */
export function markdownTable(table: Table): string {
  const escape = (cell: string) => cell.replace(/\|/g, '\\|')
  const out = [`| ${table.columns.map(escape).join(' | ')} |`, `| ${table.columns.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`]
  for (const row of table.rows) out.push(`| ${row.map(escape).join(' | ')} |`)
  return out.join('\n')
}

export function renderCheck(check: Check): string {
  const head = `${check.met ? 'MET   ' : 'MISSED'}  ${check.name}: ${check.measured} (target ${check.target})`
  return check.explanation ? `${head}\n        ${check.explanation}` : head
}
