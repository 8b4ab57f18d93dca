import { KeyNotFoundError, runAsActor, type Keyring, type KeyringOptions } from '@keyrot/core'
import type { Command } from 'commander'
import type { CliIo } from '../io.js'
import { signingOptionsFromEnv } from '../master-keys.js'
import { printable } from '../output/table.js'
import { DEFAULT_KEY_PREFIX, withPrefixHint } from '../prefix-hint.js'
import { openKeyring, resolveRedisUrl, type StoreFlags } from '../store.js'

export interface OutputFlags {
  json?: boolean
}

/** `--redis` and `--cluster`, on every command that reads or changes keys. */
export function withStoreOptions(command: Command): Command {
  return command
    .option('--redis <url>', 'Redis URL of the key store (default: $REDIS_URL)')
    .option('--cluster', 'treat --redis as Redis Cluster seed node(s), comma-separated')
    .option('--redis-password-file <path>', 'read the Redis password from this file (first line) rather than the URL (default: $REDIS_PASSWORD)')
    .option('--key-prefix <prefix>', "the RedisStore's keyPrefix (default: $KEYROT_KEY_PREFIX, else keyrot)")
}

export function withJsonOption(command: Command): Command {
  return command.option('--json', 'print JSON on stdout for scripts instead of tables')
}

/** Opens the shared store, runs `work` on a keyring over it, then flushes and disconnects. */
export async function withKeyring<T>(
  io: CliIo,
  flags: StoreFlags,
  command: string,
  work: (keyring: Keyring) => Promise<T>,
  keyringOptions: Omit<KeyringOptions, 'store' | 'logger' | 'rateLimit'> = {},
): Promise<T> {
  const url = resolveRedisUrl(flags, io, command)
  // With KEYROT_MASTER_KEYS set, signing secrets can be rotated and revoked like API keys.
  const keyPrefix = flags.keyPrefix ?? io.env['KEYROT_KEY_PREFIX'] ?? DEFAULT_KEY_PREFIX
  const opened = await openKeyring(url, { ...flags, keyPrefix }, { reconnect: false, keyring: { ...signingOptionsFromEnv(io.env), ...keyringOptions }, history: true })
  try {
    // Recorded in the admin history as this user's action (self-declared: whoever reaches Redis can name anyone).
    return await runAsActor(cliActor(io), () => work(opened.keyring))
  } catch (error) {
    throw error instanceof KeyNotFoundError ? await withPrefixHint(error, opened.client, keyPrefix) : error
  } finally {
    await opened.close()
  }
}

/** The history actor of CLI commands: `cli:<login name>` from `USER` (or `USERNAME`). */
export function cliActor(io: CliIo): string {
  return `cli:${io.env['USER'] || io.env['USERNAME'] || 'unknown'}`
}

/** One JSON document on stdout, newline-terminated. */
export function printJson(io: CliIo, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`)
}

/**
 * A new token: alone on stdout (so `$(keyrot create ...)` captures exactly
 * it), with the notice that it is shown once on stderr.
 */
export function printNewToken(io: CliIo, token: string, notice: string): void {
  io.stdout.write(`${token}\n`)
  io.stderr.write(`${printable(notice)}\nThe token above is shown only this once: store it now.\n`)
}

/** A line for people on stderr (never the command's result). */
export function printNotice(io: CliIo, text: string): void {
  io.stderr.write(`${printable(text)}\n`)
}
