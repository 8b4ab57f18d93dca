import { spawn } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { isAbsolute, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const PNPM = ['-y', 'pnpm@12.4.2']

/** Every package we publish, by directory under `packages/`. */
export const PUBLISHED = ['core', 'express', 'koa', 'fastify', 'hono', 'redis', 'cli'] as const
export type PublishedPackage = (typeof PUBLISHED)[number]

/** Files each tarball must hold beyond its ESM and CJS builds with their types. */
const EXTRA_FILES: Partial<Record<PublishedPackage, string[]>> = {
  cli: ['dist/bin.js', 'dist/dashboard/index.html'],
}

/** The files every published tarball must hold (paths inside `package/`). */
export function requiredFiles(name: PublishedPackage): string[] {
  return ['package.json', 'README.md', 'CHANGELOG.md', 'LICENSE', 'dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/index.d.cts', ...(EXTRA_FILES[name] ?? [])]
}

export interface RunResult {
  stdout: string
  stderr: string
  code: number | null
}

export interface RunOptions {
  cwd: string
  timeoutMs: number
  /** Added to the environment (which never carries the npm or pnpm settings of the run that started the tests). */
  env?: Record<string, string>
  /** Resolve with the exit code instead of rejecting when the command fails. */
  allowFailure?: boolean
}

/**
 * Runs a command with a hard time limit. The child leads its own process
 * group so a timeout kills everything it started (npx → pnpm → node).
 */
export function run(command: string, args: string[], options: RunOptions): Promise<RunResult> {
  // Outside the workspace, npm must not inherit the settings of the pnpm or npm run that started the tests.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(npm_|pnpm_)/i.test(name)))
  const env = { ...inherited, npm_config_yes: 'true', NO_COLOR: '1', ...options.env }
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const timer = setTimeout(() => {
      try {
        process.kill(-(child.pid as number), 'SIGKILL')
      } catch {
        // Already gone.
      }
      reject(new Error(`${command} ${args.join(' ')} took over ${options.timeoutMs} ms\n${stdout}\n${stderr}`))
    }, options.timeoutMs)
    child.once('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      if (code === 0 || options.allowFailure) resolve({ stdout, stderr, code })
      else reject(new Error(`${command} ${args.join(' ')} failed (${code ?? signal}) in ${options.cwd}\n${stdout}\n${stderr}`))
    })
  })
}

/** Builds the published packages (dependencies first) when one of their builds is missing. */
export async function buildIfMissing(): Promise<void> {
  const built = PUBLISHED.every((name) => requiredFiles(name).every((file) => existsSync(join(ROOT, 'packages', name, file))))
  if (built) return
  const filters = PUBLISHED.flatMap((name) => ['--filter', `@keyrot/${name}`])
  await run('npx', [...PNPM, ...filters, 'run', 'build'], { cwd: ROOT, timeoutMs: 180_000 })
}

/**
 * Packs one workspace package with the pinned pnpm, which turns
 * `workspace:*` into the real versions, and returns the tarball's path.
 */
export async function pack(name: PublishedPackage, destination: string): Promise<string> {
  const into = join(destination, name)
  mkdirSync(into)
  await run('npx', [...PNPM, 'pack', '--pack-destination', into], { cwd: join(ROOT, 'packages', name), timeoutMs: 60_000 })
  const made = readdirSync(into).filter((file) => file.endsWith('.tgz'))
  if (made.length !== 1) throw new Error(`pnpm pack of @keyrot/${name} made ${made.length} tarballs: ${made.join(', ')}`)
  return join(into, made[0] as string)
}

/** The paths inside a tarball (`package/...`). */
export async function tarballFiles(tarball: string): Promise<string[]> {
  const { stdout } = await run('tar', ['-tzf', tarball], { cwd: ROOT, timeoutMs: 10_000 })
  return stdout.split('\n').filter(Boolean)
}

export interface Manifest {
  name: string
  version: string
  description?: string
  repository?: { type?: string; url?: string; directory?: string }
  homepage?: string
  bugs?: { url?: string }
  keywords?: string[]
  engines?: Record<string, string>
  bin?: Record<string, string>
  dependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
}

/** One file of a tarball, as text. */
export async function tarballText(tarball: string, file: string): Promise<string> {
  const { stdout } = await run('tar', ['-xzOf', tarball, `package/${file}`], { cwd: ROOT, timeoutMs: 10_000 })
  return stdout
}

/** The package.json inside a tarball, as it will be published. */
export async function tarballManifest(tarball: string): Promise<Manifest> {
  const { stdout } = await run('tar', ['-xzOf', tarball, 'package/package.json'], { cwd: ROOT, timeoutMs: 10_000 })
  return JSON.parse(stdout) as Manifest
}

/**
 * Makes a consumer project in `directory` (outside the workspace): a bare
 * package.json, the scripts of ./consumer, and `npm install` of the given
 * tarballs and registry packages.
 */
export async function installConsumer(directory: string, name: string, installs: string[]): Promise<void> {
  mkdirSync(directory)
  writeFileSync(join(directory, 'package.json'), JSON.stringify({ name, version: '0.0.0', private: true }, null, 2))
  cpSync(fileURLToPath(new URL('./consumer/', import.meta.url)), directory, { recursive: true })
  await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', ...installs], { cwd: directory, timeoutMs: 150_000 })
}

/** Every file TypeScript read and every error it reported, type-checking `sources` (written into `directory`) with strict NodeNext settings. */
export async function typeCheck(directory: string, sources: Record<string, string>): Promise<{ files: string[]; errors: string[]; code: number | null }> {
  writeFileSync(
    join(directory, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        lib: ['ES2023', 'DOM'],
        strict: true,
        noEmit: true,
        // Our published declarations are checked like the consumer's own code.
        skipLibCheck: false,
        types: ['node'],
        // @types/koa 3.0.3 reads contentDisposition.Options from @types/content-disposition,
        // but express 5.3 brings content-disposition 2, whose own types (hoisted, so found
        // first) have no Options. Third-party clash, not ours: point @types/koa at the types
        // it was written for rather than turn on skipLibCheck and stop checking ours.
        paths: { 'content-disposition': ['./node_modules/@types/content-disposition'] },
      },
      files: Object.keys(sources),
    }),
  )
  for (const [file, source] of Object.entries(sources)) writeFileSync(join(directory, file), source)
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
  const { stdout, code } = await run(process.execPath, [tsc, '-p', 'tsconfig.json', '--listFiles'], { cwd: directory, timeoutMs: 60_000, allowFailure: true })
  // --listFiles prints absolute paths; anything else is a diagnostic (or the rest of one).
  const lines = stdout.split('\n').filter(Boolean)
  return { files: lines.filter((line) => isAbsolute(line)), errors: lines.filter((line) => !isAbsolute(line)), code }
}
