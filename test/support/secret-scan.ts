import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { errorAnswers, request, type Replica } from './replicas.js'

/** A body of captured text (or bytes) to search, named for the report. */
export interface Corpus {
  source: string
  content: string | Buffer
}

export interface SecretHit {
  source: string
  /** What leaked, by label: the secret itself is never printed. */
  label: string
}

/**
 * Every plaintext secret a suite created (API tokens, their secret part,
 * signing secrets, master keys), and a search for them in what the system
 * wrote. Each suite runs its own Redis and replicas, so a secret can only
 * leak into the artefacts of the suite that created it.
 */
export class SecretLedger {
  readonly #needles = new Map<string, string>()
  #tokens = 0

  /** A keyrot token `<prefix>_<keyId>_<secret><checksum>`: the whole token and its 43-character secret. */
  addToken(token: string, label = 'token'): void {
    const last = token.lastIndexOf('_')
    if (last === -1 || token.length - last - 1 !== 49) throw new Error('addToken needs a keyrot token')
    this.#tokens++
    this.#needles.set(token, `${label} (whole token)`)
    this.#needles.set(token.slice(last + 1, -6), `${label} (secret part)`)
  }

  /** A signing secret `whsec_<base64>`: the whole string and its key material. */
  addSigningSecret(secret: string, label = 'signing secret'): void {
    if (!secret.startsWith('whsec_')) throw new Error('addSigningSecret needs a whsec_ secret')
    this.#needles.set(secret, `${label} (whole)`)
    this.#needles.set(secret.slice('whsec_'.length), `${label} (key material)`)
  }

  /** Any other secret value (at least 16 characters, so it cannot match by chance). */
  addRaw(value: string, label: string): void {
    if (value.length < 16) throw new Error('a secret needle must be at least 16 characters')
    this.#needles.set(value, label)
  }

  /** Tokens recorded so far. */
  get tokens(): number {
    return this.#tokens
  }

  get needles(): number {
    return this.#needles.size
  }

  /** Every (source, secret) pair found; empty when nothing leaked. */
  scan(corpora: readonly Corpus[]): SecretHit[] {
    const hits: SecretHit[] = []
    for (const { source, content } of corpora) {
      const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content
      for (const [needle, label] of this.#needles) {
        if (bytes.includes(needle, 0, 'utf8')) hits.push({ source, label })
      }
    }
    return hits
  }
}

/**
 * Everything a Redis holds, two ways: every key with its value read by type
 * (SCAN + GET/HGETALL/SMEMBERS/ZRANGE/LRANGE, plus DUMP) and a full RDB
 * snapshot taken with `redis-cli --rdb` after turning RDB compression off,
 * so no string is hidden by LZF.
 */
export async function dumpRedis(port: number): Promise<Corpus[]> {
  const redis = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 })
  const corpora: Corpus[] = []
  try {
    const parts: Buffer[] = []
    let keys = 0
    for (let cursor = '0'; ; ) {
      const [next, batch] = await redis.scanBuffer(cursor, 'COUNT', 500)
      for (const key of batch) {
        keys++
        parts.push(key)
        const type = await redis.type(key)
        if (type === 'string') parts.push((await redis.getBuffer(key)) ?? Buffer.alloc(0))
        else if (type === 'hash') parts.push(...Object.values(await redis.hgetallBuffer(key)))
        else if (type === 'set') parts.push(...(await redis.smembersBuffer(key)))
        else if (type === 'zset') parts.push(...(await redis.zrangeBuffer(key, 0, -1)))
        else if (type === 'list') parts.push(...(await redis.lrangeBuffer(key, 0, -1)))
        else if (type === 'stream') parts.push(Buffer.from(JSON.stringify(await redis.xrange(key, '-', '+'))))
        const dumped = await redis.dumpBuffer(key)
        if (dumped) parts.push(dumped)
      }
      cursor = next.toString()
      if (cursor === '0') break
    }
    corpora.push({ source: `redis:${port} values of ${keys} keys`, content: Buffer.concat(parts) })
    await redis.config('SET', 'rdbcompression', 'no')
    // A diskless transfer would otherwise wait 5 s for more replicas to join.
    await redis.config('SET', 'repl-diskless-sync-delay', '0')
  } finally {
    redis.disconnect()
  }
  const directory = mkdtempSync(join(tmpdir(), 'keyrot-rdb-'))
  try {
    const file = join(directory, 'dump.rdb')
    const result = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), '--rdb', file], { encoding: 'utf8', timeout: 30_000 })
    if (result.status !== 0) throw new Error(`redis-cli --rdb failed: ${result.stderr || result.stdout}`)
    corpora.push({ source: `redis:${port} RDB snapshot`, content: readFileSync(file) })
  } finally {
    rmSync(directory, { recursive: true, force: true })
  }
  return corpora
}

/**
 * What a multi-process suite leaves behind: the Redis dump, every line each
 * replica printed (logs, audit trail, events, errors), its `/metrics`
 * exposition now, and every error answer the test received.
 */
export async function suiteArtefacts(redisPort: number, replicas: readonly Replica[]): Promise<Corpus[]> {
  const corpora = await dumpRedis(redisPort)
  for (const replica of replicas) {
    if (replica.alive()) {
      const metrics = await request(replica, { path: '/metrics' })
      if (metrics.status !== 200) throw new Error(`GET /metrics on ${replica.name} answered ${metrics.status || metrics.failure}`)
      corpora.push({ source: `replica ${replica.name} /metrics`, content: metrics.body })
    }
    corpora.push({ source: `replica ${replica.name} stdout and stderr (${replica.lines.length} lines)`, content: replica.lines.join('\n') })
  }
  corpora.push({ source: `error answers received (${errorAnswers.length})`, content: errorAnswers.join('\n') })
  return corpora
}

/** Bytes in a set of corpora, for the report line. */
export function corpusBytes(corpora: readonly Corpus[]): number {
  return corpora.reduce((total, corpus) => total + (typeof corpus.content === 'string' ? Buffer.byteLength(corpus.content) : corpus.content.length), 0)
}
