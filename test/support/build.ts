import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, rmdirSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** The packages a replica process imports from their built `dist`. */
const PACKAGES = ['core', 'express', 'redis']

function newestSource(directory: string): number {
  let newest = 0
  for (const entry of readdirSync(directory, { withFileTypes: true })) {
    const path = join(directory, entry.name)
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(path))
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) newest = Math.max(newest, statSync(path).mtimeMs)
  }
  return newest
}

function missingBuilds(): string[] {
  return PACKAGES.filter((name) => !existsSync(join(ROOT, 'packages', name, 'dist', 'index.js')))
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/**
 * Makes sure `packages/{core,express,redis}/dist` exist, building the
 * workspace (`node scripts/setup.mjs --build-only`) when one is missing.
 * Test files run in parallel: a lock directory lets one of them build while
 * the others wait. A dist older than its sources is reported, not rebuilt
 * (rebuilding under another process that is importing it would break that
 * process); `npm test` builds before it runs the suites.
 */
export async function ensureBuilt(): Promise<void> {
  if (missingBuilds().length > 0) {
    const lock = join(tmpdir(), 'keyrot-test-build.lock')
    const deadline = Date.now() + 240_000
    for (;;) {
      try {
        mkdirSync(lock)
        break
      } catch {
        // A lock left by a build that died more than 4 minutes ago is stale.
        if (existsSync(lock) && Date.now() - statSync(lock).mtimeMs > 240_000) rmdirSync(lock)
        if (Date.now() > deadline) throw new Error(`waited 4 minutes for another build to release ${lock}`)
        await sleep(250)
      }
    }
    try {
      if (missingBuilds().length > 0) {
        const result = spawnSync(process.execPath, ['scripts/setup.mjs', '--build-only', '--quiet'], { cwd: ROOT, encoding: 'utf8', timeout: 240_000 })
        if (result.status !== 0) throw new Error(`building the workspace failed: ${result.stderr || result.stdout || result.error?.message}`)
      }
    } finally {
      rmdirSync(lock)
    }
  }
  const missing = missingBuilds()
  if (missing.length > 0) throw new Error(`no build of ${missing.join(', ')} after node scripts/setup.mjs --build-only`)
  for (const name of PACKAGES) {
    const built = statSync(join(ROOT, 'packages', name, 'dist', 'index.js')).mtimeMs
    if (newestSource(join(ROOT, 'packages', name, 'src')) > built) {
      console.warn(`[keyrot tests] packages/${name}/dist is older than its sources: run \`node scripts/setup.mjs --build-only\` to test the current code`)
    }
  }
}
