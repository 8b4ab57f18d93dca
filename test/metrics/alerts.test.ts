import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createKeyring, createMetrics, FastTestHasher } from '@keyrot/core'
import { Registry } from 'prom-client'
import { afterAll, describe, expect, it } from 'vitest'
import { parse, stringify } from 'yaml'

/**
 * The shipped Prometheus alerting rules (docs/alerts/keyrot.rules.yml):
 * checked by `promtool check rules`, unit-tested by `promtool test rules`
 * against the synthetic series of keyrot.rules.test.yml, and each rule's
 * cases proven to bite: the suite fails when the rule is made to never fire
 * and when it is made to always fire. `promtool` comes from Debian's
 * `prometheus` package (`.ci/run` installs it); without it this suite fails,
 * it never skips.
 */

const DIRECTORY = fileURLToPath(new URL('../../docs/alerts/', import.meta.url))
const RULES = join(DIRECTORY, 'keyrot.rules.yml')
const TESTS = join(DIRECTORY, 'keyrot.rules.test.yml')
const RUNBOOK = readFileSync(new URL('../../docs/alerts.md', import.meta.url), 'utf8')

/** Metrics other modules register (store outages, resets, leak reports, Argon2 queue): named once for every module, see docs/alerts.md. */
const METRICS_FROM_OTHER_MODULES = [
  'keyrot_store_up',
  'keyrot_stale_verifications_total',
  'keyrot_ratelimit_fallbacks_total',
  'keyrot_store_outages_total',
  'keyrot_store_resets_total',
  'keyrot_keys_lost_total',
  'keyrot_leak_reports_total',
  'keyrot_keys_leaked_total',
  'keyrot_argon2_queue_length',
]

const MISSING_PROMTOOL =
  'promtool is not installed: install Debian package prometheus (apt-get install prometheus), which .ci/run does; this suite checks the alerting rules with it'

function promtool(...args: string[]): { status: number | null; output: string } {
  const result = spawnSync('promtool', args, { encoding: 'utf8', timeout: 60_000 })
  if ((result.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') throw new Error(MISSING_PROMTOOL)
  if (result.error) throw result.error
  return { status: result.status, output: `${result.stdout}${result.stderr}`.trim() }
}

interface Rule {
  alert: string
  expr: string
  for?: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
}
interface RuleFile {
  groups: { name: string; rules: Rule[] }[]
}
interface TestFile {
  rule_files: string[]
  tests: { name: string; alert_rule_test?: { alertname: string; eval_time: string; exp_alerts: unknown[] }[] }[]
}

const ruleFile = parse(readFileSync(RULES, 'utf8')) as RuleFile
const rules = ruleFile.groups.flatMap((group) => group.rules)
const testFile = parse(readFileSync(TESTS, 'utf8')) as TestFile
const cases = testFile.tests.flatMap((test) => test.alert_rule_test ?? [])

/** GitHub's anchor of a Markdown heading. */
function anchorOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9 _-]/g, '')
    .replace(/ /g, '-')
}

const scratch = mkdtempSync(join(tmpdir(), 'keyrot-alerts-'))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

describe('docs/alerts/keyrot.rules.yml', () => {
  it('passes promtool check rules', () => {
    const checked = promtool('check', 'rules', RULES)
    console.log(`[alerts] promtool check rules: ${checked.output.split('\n').pop()}`)
    expect(checked.status, checked.output).toBe(0)
    expect(checked.output).toContain(`SUCCESS: ${rules.length} rules found`)
  })

  it('passes its unit tests (promtool test rules) against synthetic series', () => {
    const tested = promtool('test', 'rules', TESTS)
    const firing = cases.filter((c) => c.exp_alerts.length > 0).length
    console.log(`[alerts] promtool test rules: ${rules.length} rules, ${cases.length} cases (${firing} firing, ${cases.length - firing} silent): ${tested.output.split('\n').pop()?.trim()}`)
    expect(tested.status, tested.output).toBe(0)
    expect(tested.output).toContain('SUCCESS')
  })

  it('gives every rule a severity, a summary, a description and a runbook section in docs/alerts.md', () => {
    const anchors = new Set([...RUNBOOK.matchAll(/^#{2,4} (.+)$/gm)].map((m) => anchorOf(m[1] as string)))
    expect(new Set(rules.map((rule) => rule.alert)).size).toBe(rules.length)
    for (const rule of rules) {
      expect(rule.alert).toMatch(/^Keyrot[A-Z][A-Za-z0-9]+$/)
      expect(['warning', 'critical'], rule.alert).toContain(rule.labels?.severity)
      expect(rule.annotations?.summary, rule.alert).toBeTruthy()
      expect(rule.annotations?.description, rule.alert).toBeTruthy()
      const runbook = rule.annotations?.runbook_url ?? ''
      expect(runbook, rule.alert).toBe(`docs/alerts.md#${rule.alert.toLowerCase()}`)
      expect(anchors.has(rule.alert.toLowerCase()), `docs/alerts.md has a section "${rule.alert}"`).toBe(true)
    }
  })

  it('uses only metrics keyrot exports', async () => {
    const keyring = createKeyring({ hasher: new FastTestHasher() })
    const registry = new Registry()
    const metrics = createMetrics({ keyring, registry, tenantStates: true, tenantFailures: true })
    try {
      const known = new Set([...registry.getMetricsAsArray().map((metric) => metric.name), ...METRICS_FROM_OTHER_MODULES])
      for (const rule of rules) {
        const used = [...rule.expr.matchAll(/\b(keyrot_[a-z0-9_]+)/g)].map((m) => m[1] as string)
        expect(used.length, rule.alert).toBeGreaterThan(0)
        for (const name of used) expect(known.has(name), `${rule.alert} uses ${name}`).toBe(true)
      }
    } finally {
      metrics.close()
      await keyring.close()
    }
  })

  it('has, for every rule, a case where it fires and one where it does not, and each bites', () => {
    const report: string[] = []
    for (const rule of rules) {
      const mine = cases.filter((c) => c.alertname === rule.alert)
      const firing = mine.filter((c) => c.exp_alerts.length > 0).length
      const silent = mine.length - firing
      expect(firing, `${rule.alert}: firing cases`).toBeGreaterThan(0)
      expect(silent, `${rule.alert}: non-firing cases`).toBeGreaterThan(0)

      // The same tests against this rule made to never fire, then to always fire: both must fail, on this rule.
      const verdicts = (['vector(0) > 1', 'vector(1)'] as const).map((expr) => {
        const mutated: RuleFile = {
          groups: ruleFile.groups.map((group) => ({ ...group, rules: group.rules.map((r) => (r.alert === rule.alert ? { ...r, expr } : r)) })),
        }
        const directory = mkdtempSync(join(scratch, `${rule.alert}-`))
        writeFileSync(join(directory, 'keyrot.rules.yml'), stringify(mutated))
        // Only this rule's cases: the others are unchanged, and running them 26 times is slow.
        const own: TestFile = {
          ...testFile,
          tests: testFile.tests
            .map((test) => ({ ...test, alert_rule_test: (test.alert_rule_test ?? []).filter((c) => c.alertname === rule.alert) }))
            .filter((test) => test.alert_rule_test.length > 0),
        }
        writeFileSync(join(directory, 'keyrot.rules.test.yml'), stringify(own))
        const result = promtool('test', 'rules', join(directory, 'keyrot.rules.test.yml'))
        return result.status !== 0 && result.output.includes(`alertname: ${rule.alert},`)
      })
      expect(verdicts, `${rule.alert}: tests fail when it never fires / always fires`).toEqual([true, true])
      report.push(`${rule.alert} ${firing}+${silent}`)
    }
    console.log(`[alerts] firing+silent cases per rule, each failing when the rule never or always fires: ${report.join(', ')}`)
  }, 120_000)
})
