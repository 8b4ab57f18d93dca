import { readFile } from 'node:fs/promises'
import { isKeyrotError, type ImportKeyInput, type Keyring } from '@keyrot/core'
import type { Command } from 'commander'
import { CliError, UsageError } from '../exit-codes.js'
import { importOptionsFromEnv } from '../import-env.js'
import type { CliIo } from '../io.js'
import { printable } from '../output/table.js'
import { parseListArg } from '../parse.js'
import type { StoreFlags } from '../store.js'
import { printJson, withJsonOption, withKeyring, withStoreOptions, type OutputFlags } from './shared.js'

interface ImportFlags extends StoreFlags, OutputFlags {
  file: string
  prefixes?: string[]
}

/** One line's outcome. Never holds the line's token or hash: only the key id and the error code and message. */
export interface ImportLineReport {
  line: number
  status: 'imported' | 'exists' | 'failed'
  keyId?: string
  error?: { code: string; message: string }
}

/** Fields a line may carry: `keyring.import()`'s input. */
const FIELDS = new Set(['tenantId', 'name', 'scopes', 'expiresAt', 'metadata', 'rateLimit', 'allowedIps', 'credits', 'token', 'legacy'])

export function registerImport(program: Command, io: CliIo): void {
  const command = program
    .command('import')
    .description('import keys from another system (JSON Lines), verifying in their existing format; idempotent')
    .requiredOption('--file <path>', "a JSON Lines file: one key per line, { tenantId, name, scopes?, ..., token | legacy: { sha256, tokenPrefix } }; '-' for stdin")
    .option('--prefixes <list>', 'token prefixes of the imported keys, e.g. old_ (default: KEYROT_IMPORTED_PREFIXES)', parseListArg)
  withJsonOption(withStoreOptions(command))
  command.addHelpText(
    'after',
    `
The index key comes from KEYROT_IMPORT_KEY (base64, 32+ bytes), else from KEYROT_PROOF_KEY or
KEYROT_MASTER_KEYS; keyrot serve and every application verifying the keys need the same one,
and KEYROT_IMPORTED_PREFIXES (or importedPrefixes) listing the prefixes.
Tokens are read from the file only, never from arguments, and never printed.
Exit code 1 when any line failed; lines imported before stay (re-run the file: imported lines report "exists").

Examples:
  $ keyrot import --file keys.jsonl --prefixes old_
  {"tenantId":"acme","name":"ci","scopes":["read"],"legacy":{"sha256":"9f86d0...","tokenPrefix":"old_"}}`,
  )
  command.action(async (flags: ImportFlags) => {
    const text = await readInput(io, flags.file)
    const reports = await withKeyring(io, flags, 'import', (keyring) => importLines(keyring, text), importOptionsFromEnv(io.env, flags.prefixes))
    const failed = reports.filter((report) => report.status === 'failed').length
    if (flags.json) printJson(io, { lines: reports, imported: count(reports, 'imported'), exists: count(reports, 'exists'), failed })
    else {
      for (const report of reports) io.stdout.write(`${formatReport(report)}\n`)
      io.stderr.write(`${count(reports, 'imported')} imported, ${count(reports, 'exists')} already there, ${failed} failed.\n`)
    }
    if (failed > 0) throw new CliError(`${failed} of ${reports.length} line(s) failed`, { code: 'KEYROT_CLI_IMPORT_FAILED' })
  })
}

async function readInput(io: CliIo, file: string): Promise<string> {
  try {
    if (file !== '-') return await readFile(file, 'utf8')
    const chunks: Buffer[] = []
    for await (const chunk of io.stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string))
    return Buffer.concat(chunks).toString('utf8')
  } catch (error) {
    throw new UsageError(`--file: cannot read ${JSON.stringify(file)} (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
  }
}

/**
 * Imports every non-blank line, one at a time (each import hashes with
 * Argon2), and reports each. A line that fails does not stop the others.
 */
export async function importLines(keyring: Keyring, text: string): Promise<ImportLineReport[]> {
  const reports: ImportLineReport[] = []
  const lines = text.split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    const source = (lines[i] as string).trim()
    if (source === '') continue
    const line = i + 1
    let input: unknown
    try {
      input = JSON.parse(source)
    } catch {
      // The parser's message may quote the line (and its token): never repeated.
      reports.push({ line, status: 'failed', error: { code: 'KEYROT_CLI_IMPORT_LINE', message: 'not valid JSON' } })
      continue
    }
    if (input === null || typeof input !== 'object' || Array.isArray(input)) {
      reports.push({ line, status: 'failed', error: { code: 'KEYROT_CLI_IMPORT_LINE', message: 'not a JSON object' } })
      continue
    }
    const unknown = Object.keys(input).filter((field) => !FIELDS.has(field))
    if (unknown.length > 0) {
      reports.push({ line, status: 'failed', error: { code: 'KEYROT_CLI_IMPORT_LINE', message: `unknown field(s): ${unknown.slice(0, 5).map((f) => JSON.stringify(f.slice(0, 40))).join(', ')}` } })
      continue
    }
    try {
      const { key, created } = await keyring.import(input as ImportKeyInput)
      reports.push({ line, status: created ? 'imported' : 'exists', keyId: key.id })
    } catch (error) {
      if (!isKeyrotError(error) && !(error instanceof TypeError)) throw error
      const code = isKeyrotError(error) ? error.code : 'KEYROT_CLI_IMPORT_CONFIG'
      reports.push({ line, status: 'failed', error: { code, message: error.message } })
      // A store outage or a missing import key fails every line alike: stop at the first.
      if (code === 'KEYROT_STORE_UNAVAILABLE' || code === 'KEYROT_CLI_IMPORT_CONFIG') break
    }
  }
  return reports
}

function count(reports: ImportLineReport[], status: ImportLineReport['status']): number {
  return reports.filter((report) => report.status === status).length
}

function formatReport(report: ImportLineReport): string {
  if (report.status === 'failed') return printable(`line ${report.line}: failed ${report.error?.code}: ${report.error?.message}`)
  return `line ${report.line}: ${report.status} ${report.keyId}`
}
