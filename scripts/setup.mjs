#!/usr/bin/env node
// Installs the workspace (pinned pnpm, frozen lockfile) and builds every
// package, so `npm run demo` and `npm test` work on a fresh clone with only
// Node and npm. Safe to run again: pnpm skips an up-to-date install.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildStamp } from './build-stamp.mjs'

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
const packageDirs = []
for (const dir of ['packages', 'examples', 'bench']) {
  const base = join(root, dir)
  if (!existsSync(base)) continue
  const entries = dir === 'bench' ? [''] : readdirSync(base)
  for (const name of entries) {
    const pkgDir = join(base, name)
    if (existsSync(join(pkgDir, 'package.json')) && existsSync(join(pkgDir, 'src'))) {
      filters.push('--filter', `./${dir}${name ? `/${name}` : ''}`)
      packageDirs.push(pkgDir)
    }
  }
}
// Skipped when nothing the build reads changed since the last successful one
// (the stamp lives in node_modules, so a fresh install always builds).
const stampFile = join(root, 'node_modules', '.keyrot-build-stamp')
const stamp = buildStamp(root, packageDirs)
const built = packageDirs.every((dir) => existsSync(join(dir, 'dist')))
if (built && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp && !process.argv.includes('--force')) {
  console.log('setup: builds are up to date (no source changed since the last build); --force rebuilds')
} else {
  run('npx', [...pnpm, ...filters, '--reporter=append-only', 'run', '--if-present', 'build'])
  mkdirSync(dirname(stampFile), { recursive: true })
  writeFileSync(stampFile, stamp)
}
