import type { MigrationReport, RedisStore } from '@keyrot/redis'
import { InvalidArgumentError, type Command } from 'commander'
import type { CliIo } from '../io.js'
import type { StoreFlags } from '../store.js'
import { printJson, printNotice, withJsonOption, withKeyring, withStoreOptions, type OutputFlags } from './shared.js'

/**
 * `keyrot store migrate [--dry-run]`: converts key records written by
 * releases before record format 2 to the compact format, in batches
 * (docs/redis.md#migrating-records). Safe while replicas serve: both formats
 * are read and updated, each record is converted by one atomic script, and a
 * second run converts only what the first left.
 */
export function registerStoreMigrate(store: Command, io: CliIo): void {
  const command = store
    .command('migrate')
    .description('convert key records written by an earlier release to the compact record format (idempotent, in batches)')
    .option('--dry-run', 'count the records to convert; change nothing')
    .option('--batch <n>', 'records per batch (default 500)', parseBatch)
  withJsonOption(withStoreOptions(command))
  command.action(async (flags: StoreFlags & OutputFlags & { dryRun?: boolean; batch?: number }) => {
    const batchSize = flags.batch
    await withKeyring(io, flags, 'store migrate', async (keyring) => {
      const redisStore = keyring.store as RedisStore
      await redisStore.waitUntilReady()
      const report: MigrationReport = await redisStore.migrateRecords({
        dryRun: flags.dryRun === true,
        ...(batchSize === undefined ? {} : { batchSize }),
        ...(flags.json ? {} : { onProgress: (so: MigrationReport) => printNotice(io, `... ${so.scanned} records scanned`) }),
      })
      if (flags.json) return printJson(io, report)
      const verb = report.dryRun ? 'would convert' : 'converted'
      io.stdout.write(
        `${report.scanned} records scanned: ${verb} ${report.converted}, ${report.current} already in the current format` +
          `${report.skipped > 0 ? `, ${report.skipped} changed or gone while converting (run it again)` : ''}; ` +
          `tenant index entries ${report.dryRun ? 'to move' : 'moved'}: ${report.indexEntries}.\n`,
      )
    })
  })
}

function parseBatch(value: string): number {
  const batch = Number(value)
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(batch) || batch < 1) throw new InvalidArgumentError('expected a positive integer.')
  return batch
}
