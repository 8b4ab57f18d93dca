#!/usr/bin/env node
// Installs the workspace (pinned pnpm, frozen lockfile) and builds every
// package, so `npm run demo` and `npm test` work on a fresh clone with only
// Node and npm. Safe to run again: pnpm skips an up-to-date install.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const { packageManager } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const quiet = process.argv.includes('--quiet')
const buildOnly = process.argv.includes('--build-only')

function run(command, args) {
  const result = spawnSync(command, args, {
    cwd: root,
    stdio: quiet ? ['ignore', 'ignore', 'inherit'] : ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, npm_config_yes: 'true' },
    shell: process.platform === 'win32',
  })
  if (result.status !== 0) {
    console.error(`setup: "${command} ${args.join(' ')}" failed (exit ${result.status ?? result.signal})`)
    process.exit(result.status ?? 1)
  }
}

const pnpm = ['-y', packageManager]
if (!buildOnly) {
  const frozen = existsSync(join(root, 'pnpm-lock.yaml')) ? ['--frozen-lockfile'] : []
  run('npx', [...pnpm, 'install', ...frozen, '--reporter=append-only'])
}
// Build every workspace package that has sources, dependencies first.
const filters = []
for (const dir of ['packages', 'examples', 'bench']) {
  const base = join(root, dir)
  if (!existsSync(base)) continue
  const entries = dir === 'bench' ? [''] : readdirSync(base)
  for (const name of entries) {
    const pkgDir = join(base, name)
    if (existsSync(join(pkgDir, 'package.json')) && existsSync(join(pkgDir, 'src'))) filters.push('--filter', `./${dir}${name ? `/${name}` : ''}`)
  }
}
run('npx', [...pnpm, ...filters, '--reporter=append-only', 'run', '--if-present', 'build'])
