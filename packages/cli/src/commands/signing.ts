import { rewrapSigningSecrets } from '@keyrot/core'
import type { Command } from 'commander'
import { CliError, UsageError } from '../exit-codes.js'
import type { CliIo } from '../io.js'
import { MASTER_KEYS_VARIABLE, signingOptionsFromEnv } from '../master-keys.js'
import { printable } from '../output/table.js'
import type { StoreFlags } from '../store.js'
import { printJson, withJsonOption, withKeyring, withStoreOptions, type OutputFlags } from './shared.js'

export function registerRewrapSecrets(program: Command, io: CliIo): void {
  const command = program
    .command('rewrap-secrets')
    .description(`re-encrypt every signing secret under the newest master key (the first in $${MASTER_KEYS_VARIABLE})`)
  withJsonOption(withStoreOptions(command))
  command.action(async (flags: StoreFlags & OutputFlags) => {
    if (signingOptionsFromEnv(io.env).signing === undefined) {
      throw new UsageError(`rewrap-secrets needs ${MASTER_KEYS_VARIABLE}="newId:base64key,oldId:base64key" (newest first)`, 'KEYROT_CLI_MASTER_KEYS')
    }
    await withKeyring(io, flags, 'rewrap-secrets', async (keyring) => {
      const report = await rewrapSigningSecrets(keyring)
      if (flags.json) printJson(io, report)
      else {
        io.stdout.write(
          `${printable(`Re-encrypted ${report.rewrapped} signing secret(s) under master key ${report.masterKeyId}; ${report.current} already were; ${report.failed.length} failed.`)}\n`,
        )
        for (const failure of report.failed) io.stderr.write(`${printable(`  ${failure.keyId}: ${failure.reason}`)}\n`)
      }
      if (report.failed.length > 0) {
        throw new CliError(`${report.failed.length} signing secret(s) could not be re-encrypted: keep every old master key configured`, {
          code: 'KEYROT_SECRET_UNREADABLE',
        })
      }
      if (!flags.json) io.stderr.write('Older master keys can now be removed from the configuration.\n')
    })
  })
}
