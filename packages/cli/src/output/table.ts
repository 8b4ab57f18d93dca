// C0 and C1 control characters (C1 includes the 8-bit CSI, \u009b) and the
// bidirectional overrides: a key name or reason could carry them to rewrite
// the operator's terminal or reorder what it shows.
// eslint-disable-next-line no-control-regex
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g

/** Replaces characters a terminal would interpret with `?`. */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, '?')
}

/** Visible width of a cell: code points, so "é" counts once. */
function width(text: string): number {
  let count = 0
  for (const _ of text) count++
  return count
}

function pad(text: string, size: number): string {
  return text + ' '.repeat(Math.max(0, size - width(text)))
}

/**
 * Renders rows under a header as columns aligned with two spaces between
 * them, no borders (the style of `kubectl get` and `docker ps`), so the output
 * stays greppable. The last column is not padded, so no line ends in spaces.
 *
 * @example
 * renderTable(['ID', 'STATE'], [['a1', 'active']])
 * // 'ID  STATE\na1  active\n'
 */
export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const cleanRows = rows.map((row) => row.map(printable))
  const widths = headers.map((header, column) => Math.max(width(header), ...cleanRows.map((row) => width(row[column] ?? ''))))
  const line = (cells: readonly string[]) =>
    headers.map((_, column) => (column === headers.length - 1 ? (cells[column] ?? '') : pad(cells[column] ?? '', widths[column] as number))).join('  ').trimEnd()
  return [line(headers), ...cleanRows.map(line)].join('\n') + '\n'
}

/**
 * Renders label/value pairs with the values aligned, for one record
 * (`keyrot inspect`). Pairs whose value is `undefined` are left out.
 */
export function renderDetails(pairs: readonly (readonly [string, string | undefined])[]): string {
  const shown = pairs
    .filter((pair): pair is readonly [string, string] => pair[1] !== undefined)
    .map(([label, value]) => [label, printable(value)] as const)
  const labelWidth = Math.max(0, ...shown.map(([label]) => width(label)))
  return shown.map(([label, value]) => `${pad(label, labelWidth)}  ${value}`.trimEnd()).join('\n') + '\n'
}
