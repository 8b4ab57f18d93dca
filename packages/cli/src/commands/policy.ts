import { buildEvidenceReport, DEFAULT_ROTATION_WARNING_MS, evidenceCsv, evidenceJsonLines, formatDuration, resolveRotationPolicyOptions, type RotationPolicy, type TenantPolicy, type TenantPolicyView } from '@keyrot/core'
import { Option, type Command } from 'commander'
import { UsageError } from '../exit-codes.js'
import type { CliIo } from '../io.js'
import { parseDurationArg } from '../parse.js'
import type { StoreFlags } from '../store.js'
import { printJson, printNotice, withJsonOption, withKeyring, withStoreOptions, type OutputFlags } from './shared.js'

interface PolicyFlags {
  maxAge?: number
  rotationWarning?: number
}

/** `--max-age` and `--rotation-warning`: the server policy, which lives in the application, not in the store. */
function withPolicyDefaults(command: Command): Command {
  return command
    .option('--max-age <duration>', "the server's rotation policy maxAge, for tenants without an override (default: none)", parseDurationArg)
    .option('--rotation-warning <duration>', "the server's rotation policy rotationWarning (default: 14d)", parseDurationArg)
}

function defaultsOf(flags: PolicyFlags): RotationPolicy {
  // The same bounds as createKeyring({ policy }): a due date past the range of a Date threw while the report printed it.
  try {
    resolveRotationPolicyOptions({ ...(flags.maxAge !== undefined ? { maxAge: flags.maxAge } : {}), ...(flags.rotationWarning !== undefined ? { rotationWarning: flags.rotationWarning } : {}) })
  } catch (error) {
    throw new UsageError(`--max-age/--rotation-warning: ${(error as Error).message.replace(/policy\.maxAge/g, '--max-age').replace(/policy\.rotationWarning/g, '--rotation-warning')}`)
  }
  return { maxAgeMs: flags.maxAge ?? 0, rotationWarningMs: flags.rotationWarning ?? DEFAULT_ROTATION_WARNING_MS, enforce: false }
}

function describePolicy(view: TenantPolicyView): string {
  const { policy, override } = view
  const lines = [
    `tenant           ${view.tenantId}`,
    `max age          ${policy.maxAgeMs === 0 ? 'none' : formatDuration(policy.maxAgeMs)}`,
    `rotation warning ${formatDuration(policy.rotationWarningMs)}`,
    `enforce          ${policy.enforce ? 'yes (overdue keys fail as expired)' : 'no'}`,
    `override         ${override === null ? 'none (the server policy applies)' : JSON.stringify(override)}`,
  ]
  return `${lines.join('\n')}\n`
}

export function registerPolicy(program: Command, io: CliIo): void {
  const policy = program.command('policy').description("read or set a tenant's rotation policy override (docs/policies.md)")

  const get = policy.command('get').description("show a tenant's rotation policy").requiredOption('--tenant <id>', 'the tenant')
  withJsonOption(withStoreOptions(withPolicyDefaults(get)))
  get.action(async (flags: StoreFlags & OutputFlags & PolicyFlags & { tenant: string }) => {
    const view = await withKeyring(io, flags, 'policy get', (keyring) => keyring.tenantPolicy(flags.tenant))
    const shown = { ...view, policy: { ...defaultsOf(flags), ...view.override } }
    if (flags.json) printJson(io, { policy: shown })
    else io.stdout.write(describePolicy(shown))
  })

  const set = policy
    .command('set')
    .description("set a tenant's rotation policy override; fields left out follow the server policy")
    .requiredOption('--tenant <id>', 'the tenant')
    .option('--max-age <duration>', "age at which a key is due, e.g. '90d' ('0' turns it off for the tenant)", parseDurationArg)
    .option('--rotation-warning <duration>', "how long before --max-age warnings start, e.g. '14d'", parseDurationArg)
    .addOption(new Option('--enforce', 'overdue keys fail verification as expired'))
    .addOption(new Option('--no-enforce', 'overdue keys keep working (with the warning)'))
    .option('--clear', 'remove the override: the tenant follows the server policy')
  withJsonOption(withStoreOptions(set))
  set.action(async (flags: StoreFlags & OutputFlags & PolicyFlags & { tenant: string; enforce?: boolean; clear?: boolean }) => {
    const override: TenantPolicy = {}
    if (flags.maxAge !== undefined) override.maxAgeMs = flags.maxAge
    if (flags.rotationWarning !== undefined) override.rotationWarningMs = flags.rotationWarning
    if (flags.enforce !== undefined) override.enforce = flags.enforce
    if (flags.clear && Object.keys(override).length > 0) throw new UsageError('--clear takes no other policy option')
    if (!flags.clear && Object.keys(override).length === 0) throw new UsageError('policy set needs --max-age, --rotation-warning, --enforce/--no-enforce or --clear')
    const view = await withKeyring(io, flags, 'policy set', (keyring) => keyring.setTenantPolicy(flags.tenant, flags.clear ? null : override))
    if (flags.json) printJson(io, { policy: view })
    else printNotice(io, view.override === null ? `Tenant ${view.tenantId} follows the server policy.` : `Tenant ${view.tenantId}: ${JSON.stringify(view.override)}. Replicas apply it within their policy.tenantRefresh (30s by default).`)
  })
}

export function registerReport(program: Command, io: CliIo): void {
  const command = program
    .command('report')
    .description('write the compliance evidence report: every key with tenant, creation, last rotation, age, due date, state, last use, uses in the last 30 days, who rotated or revoked it; the last line is the summary')
    .option('--tenant <id>', 'only this tenant')
    .addOption(new Option('--format <format>', 'csv, or json (JSON Lines: one key a line)').choices(['csv', 'json']).default('csv'))
  withStoreOptions(withPolicyDefaults(command))
  command.action(async (flags: StoreFlags & PolicyFlags & { tenant?: string; format: 'csv' | 'json' }) => {
    const report = await withKeyring(io, flags, 'report', (keyring) =>
      buildEvidenceReport(keyring, { defaults: defaultsOf(flags), ...(flags.tenant !== undefined ? { tenantId: flags.tenant } : {}) }),
    )
    io.stdout.write(flags.format === 'json' ? evidenceJsonLines(report) : evidenceCsv(report))
  })
}
