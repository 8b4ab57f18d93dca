import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
// @ts-expect-error: a plain .mjs script without types
import { buildStamp } from '../../scripts/build-stamp.mjs'

const root = fileURLToPath(new URL('../..', import.meta.url))
const stampOf = buildStamp as (root: string, packageDirs: string[]) => string

describe('the build stamp', () => {
  let dir: string | undefined
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true })
    dir = undefined
  })

  function workspace(): { root: string; pkg: string } {
    dir = mkdtempSync(join(tmpdir(), 'keyrot-stamp-'))
    const pkg = join(dir, 'packages', 'core')
    mkdirSync(join(pkg, 'src'), { recursive: true })
    writeFileSync(join(dir, 'tsconfig.base.json'), '{}')
    writeFileSync(join(pkg, 'package.json'), '{"name":"core"}')
    writeFileSync(join(pkg, 'src', 'index.ts'), 'export const a = 1\n')
    return { root: dir, pkg }
  }

  it('changes when a source changes, and only then', () => {
    const { root: base, pkg } = workspace()
    const first = stampOf(base, [pkg])
    expect(stampOf(base, [pkg])).toBe(first)
    // Build outputs and installed modules are not inputs.
    mkdirSync(join(pkg, 'dist'))
    writeFileSync(join(pkg, 'dist', 'index.js'), 'built')
    mkdirSync(join(pkg, 'node_modules'))
    writeFileSync(join(pkg, 'node_modules', 'x.js'), 'installed')
    expect(stampOf(base, [pkg])).toBe(first)
    writeFileSync(join(pkg, 'src', 'index.ts'), 'export const a = 2\n')
    const edited = stampOf(base, [pkg])
    expect(edited).not.toBe(first)
    writeFileSync(join(pkg, 'src', 'extra.ts'), '')
    expect(stampOf(base, [pkg])).not.toBe(edited)
    writeFileSync(join(base, 'tsconfig.base.json'), '{"compilerOptions":{}}')
    expect(stampOf(base, [pkg])).not.toBe(edited)
  })

  it('lets setup skip a build nothing changed since: npm test right after npm run demo does not rebuild', () => {
    const setup = () =>
      spawnSync(process.execPath, ['scripts/setup.mjs', '--build-only'], { cwd: root, encoding: 'utf8', timeout: 600_000, stdio: ['ignore', 'pipe', 'pipe'] })
    // The first call builds only if a source changed since the last build (never inside `npm test`, which just built).
    const first = setup()
    expect(first.status, first.stderr).toBe(0)
    const second = setup()
    expect(second.status, second.stderr).toBe(0)
    expect(second.stdout).toContain('setup: builds are up to date')
    expect(second.stdout).not.toContain('build: Done')
  }, 660_000)
})
