import { lstat, open, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { parseToken, stateOf, TOKEN_PATTERN, type Keyring } from '@keyrot/core'
import type { Command } from 'commander'
import type { CliIo } from '../io.js'
import { printable, renderTable } from '../output/table.js'
import type { StoreFlags } from '../store.js'
import { printJson, printNotice, withJsonOption, withKeyring, withStoreOptions, type OutputFlags } from './shared.js'

/** Largest file read whole; bigger ones are reported as skipped (a leak in a huge file is rarer than a huge log read by mistake). */
const MAX_FILE_BYTES = 64 * 1024 * 1024
/** Most files visited, so that `keyrot scan /` ends. */
const MAX_FILES = 200_000

/** What a found token is, in the store. `live`: its secret is a working key's. */
export type ScanStatus = 'live' | 'revoked' | 'expired' | 'unknown_key' | 'wrong_secret' | 'bad_checksum'

/** One token found: where, and which key, never the secret. */
export interface Finding {
  location: string
  prefix: string
  keyId: string
  status: ScanStatus
  /** Set by `--revoke` for the live keys it revoked. */
  revoked?: boolean
}

interface ScanFlags extends StoreFlags, OutputFlags {
  revoke?: boolean
}

/** Every token-shaped string in `text`, with its line number. */
function* matches(text: string): Generator<{ token: string; line: number }> {
  const pattern = new RegExp(TOKEN_PATTERN.source, 'g')
  let line = 1
  let counted = 0
  for (let match = pattern.exec(text); match !== null; match = pattern.exec(text)) {
    for (let i = text.indexOf('\n', counted); i !== -1 && i < match.index; i = text.indexOf('\n', i + 1)) line++
    counted = match.index
    yield { token: match[0], line }
  }
}

async function* files(path: string, io: CliIo, budget: { left: number }): AsyncGenerator<string> {
  const info = await lstat(path)
  if (info.isSymbolicLink()) return // Links are not followed: no loops, no leaving the tree asked for.
  if (info.isFile()) {
    if (budget.left-- > 0) yield path
    return
  }
  if (!info.isDirectory()) return
  const entries = await readdir(path, { withFileTypes: true })
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  for (const entry of entries) {
    if (budget.left <= 0) {
      printNotice(io, `keyrot scan: stopped after ${MAX_FILES} files`)
      return
    }
    yield* files(join(path, entry.name), io, budget)
  }
}

async function readText(path: string, io: CliIo): Promise<string | null> {
  const handle = await open(path, 'r')
  try {
    const { size } = await handle.stat()
    if (size > MAX_FILE_BYTES) {
      printNotice(io, `keyrot scan: skipped ${path} (larger than ${MAX_FILE_BYTES} bytes)`)
      return null
    }
    return (await handle.readFile()).toString('latin1')
  } finally {
    await handle.close()
  }
}

function readStdin(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let length = 0
    stream.on('data', (chunk: Buffer | string) => {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
      length += bytes.length
      if (length > MAX_FILE_BYTES) reject(new Error(`standard input is larger than ${MAX_FILE_BYTES} bytes`))
      else chunks.push(bytes)
    })
    stream.once('end', () => resolve(Buffer.concat(chunks).toString('latin1')))
    stream.once('error', reject)
  })
}

/** Classifies a found token: format and checksum, then the store, then the Argon2 proof of its secret. */
async function statusOf(keyring: Keyring, token: string): Promise<{ prefix: string; keyId: string; status: ScanStatus }> {
  const shape = /^(.*)_([0-9A-Za-z]{16})_[0-9A-Za-z]{49}$/.exec(token)
  const prefix = shape?.[1] ?? ''
  const keyId = shape?.[2] ?? ''
  try {
    parseToken(token)
  } catch {
    return { prefix, keyId, status: 'bad_checksum' }
  }
  const record = await keyring.store.get(keyId)
  if (!record || record.prefix !== prefix) return { prefix, keyId, status: 'unknown_key' }
  if (!(await keyring.options.hasher.verify(record.hash, token))) return { prefix, keyId, status: 'wrong_secret' }
  const state = stateOf(record, keyring.clock.now())
  return { prefix, keyId, status: state === 'active' || state === 'grace' ? 'live' : state }
}

/**
 * `keyrot scan [paths...|-]`: finds keyrot tokens in files, directories
 * (recursively, links not followed) or standard input, and tells for each
 * whether it is a live key. Prints the prefix and key id, never the secret.
 * `--revoke` revokes the live ones, recording where they were found.
 */
export function registerScan(program: Command, io: CliIo): void {
  const command = program
    .command('scan')
    .description('find keyrot tokens in files, directories or stdin (-); report each key id and whether it is live; --revoke the live ones')
    .argument('<paths...>', "files or directories to search, or '-' for standard input")
    .option('--revoke', 'revoke every live key found (reason: where it was found)')
  withJsonOption(withStoreOptions(command))
  command.action(async (paths: string[], flags: ScanFlags) => {
    await withKeyring(io, flags, 'scan', async (keyring) => {
      const findings: Finding[] = []
      const proven = new Map<string, Promise<{ prefix: string; keyId: string; status: ScanStatus }>>()
      const scanText = async (text: string, name: string) => {
        for (const { token, line } of matches(text)) {
          let status = proven.get(token)
          if (!status) proven.set(token, (status = statusOf(keyring, token)))
          findings.push({ location: `${name}:${line}`, ...(await status) })
        }
      }
      const budget = { left: MAX_FILES }
      for (const path of paths) {
        if (path === '-') {
          await scanText(await readStdin(io.stdin), '<stdin>')
          continue
        }
        for await (const file of files(path, io, budget)) {
          const text = await readText(file, io)
          if (text !== null) await scanText(text, file)
        }
      }
      if (flags.revoke) {
        const done = new Set<string>()
        for (const finding of findings) {
          if (finding.status !== 'live') continue
          if (!done.has(finding.keyId)) {
            done.add(finding.keyId)
            const reason = `found by keyrot scan: ${finding.location}`
            const key = await keyring.revoke(finding.keyId, { reason: reason.length <= 200 ? reason : `${reason.slice(0, 199)}…`, incidentId: 'leak:scan' })
            keyring.emit('key.leaked', { key, provider: 'scan', sourceUrl: finding.location, action: 'revoke', newKeyId: null, at: keyring.clock.now() })
          }
          finding.revoked = true
        }
      }
      if (flags.json) {
        printJson(io, { findings })
        return
      }
      if (findings.length === 0) {
        printNotice(io, 'keyrot scan: no keyrot token found')
        return
      }
      const rows = findings.map((finding) => [
        printable(finding.location),
        `${finding.prefix}_${finding.keyId}`,
        finding.revoked ? 'live: revoked now' : finding.status.replace('_', ' '),
      ])
      io.stdout.write(renderTable(['LOCATION', 'KEY', 'STATUS'], rows))
      const live = findings.filter((finding) => finding.status === 'live' && !finding.revoked).length
      if (live > 0) printNotice(io, `keyrot scan: ${live} finding(s) of live keys: revoke them with --revoke, or one by one with keyrot revoke <keyId>`)
    })
  })
}
