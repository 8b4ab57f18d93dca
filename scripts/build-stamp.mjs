// A content stamp of everything the workspace build reads: the sources and
// build configuration of every package built, the shared TypeScript
// configuration and the lockfile. setup.mjs skips the build when the stamp
// of the last successful build matches and every package still has its
// dist/, so `npm test` right after `npm run demo` does not rebuild.
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'

const SKIPPED = new Set(['node_modules', 'dist', 'results', '.turbo', 'coverage'])

function files(dir, out) {
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (SKIPPED.has(entry.name)) continue
    const path = join(dir, entry.name)
    if (entry.isDirectory()) files(path, out)
    else if (entry.isFile()) out.push(path)
  }
  return out
}

/** sha256 over the paths and bytes of every build input of `packageDirs` (absolute) under `root`. */
export function buildStamp(root, packageDirs) {
  const hash = createHash('sha256')
  const inputs = ['tsconfig.base.json', 'pnpm-lock.yaml'].map((name) => join(root, name)).filter((path) => existsSync(path))
  for (const dir of packageDirs) inputs.push(...files(dir, []))
  for (const path of inputs) {
    hash.update(relative(root, path)).update('\0').update(String(statSync(path).size)).update('\0')
    hash.update(readFileSync(path)).update('\0')
  }
  return hash.digest('hex')
}
