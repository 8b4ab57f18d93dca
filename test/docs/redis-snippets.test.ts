import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, expect, it } from 'vitest'
import { run } from '../packaging/pack.js'

// The Redis snippets of the README and docs/redis.md are what people paste:
// they must type-check under `strict` and listen for ioredis's 'error' events.

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const work = join(ROOT, 'test', 'docs', '.snippets')
afterAll(() => rmSync(work, { recursive: true, force: true }))

/** The first ```ts block that constructs an ioredis client. */
function redisSnippet(file: string): string {
  const text = readFileSync(join(ROOT, file), 'utf8')
  const block = [...text.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1] as string).find((code) => /new Redis\(/.test(code))
  if (!block) throw new Error(`${file} has no ioredis snippet`)
  return block
}

it.each(['README.md', 'docs/redis.md'])('the Redis snippet of %s has an error listener and passes tsc --strict', async (file) => {
  const snippet = redisSnippet(file)
  expect(snippet).toMatch(/\.on\('error',/)
  mkdirSync(work, { recursive: true })
  const name = file.replace(/\W/g, '_')
  // The README's snippet continues earlier ones: it may use createKeyring without importing it.
  const prelude = snippet.includes("from '@keyrot/core'") ? '' : "import { createKeyring } from '@keyrot/core'\n"
  writeFileSync(join(work, `${name}.mts`), `${prelude}${snippet}\nexport {}\n`)
  writeFileSync(
    join(work, `tsconfig.${name}.json`),
    JSON.stringify({ extends: '../../../tsconfig.base.json', compilerOptions: { noEmit: true, strict: true, types: ['node'] }, files: [`${name}.mts`] }),
  )
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
  const result = await run(process.execPath, [tsc, '-p', `tsconfig.${name}.json`], { cwd: work, timeoutMs: 60_000, allowFailure: true })
  expect({ code: result.code, out: result.stdout }).toEqual({ code: 0, out: '' })
}, 90_000)
