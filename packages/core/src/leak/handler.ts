import { LRUCache } from 'lru-cache'
import { leakReason } from '../audit/history-recorder.js'
import {
  AlreadyRotatedError,
  ERROR_CODES,
  KeyrotError,
  LeakKeysUnavailableError,
  LeakSignatureError,
  StoreUnavailableError,
} from '../errors.js'
import { asKeyrotError } from '../http/respond.js'
import { errorFields } from '../logger.js'
import { parseToken } from '../token/format.js'
import { stateOf, toApiKey, type ApiKey, type KeyRecord } from '../types.js'
import { resolveLeakOptions, type LeakAction, type LeakReportHandlerOptions, type ResolvedLeakOptions } from './options.js'
import { PublicKeyCache } from './public-keys.js'
import { parseReport, signatureMatches, tokenHash, type LeakLabel, type ReportedToken } from './report.js'

/** A report as any framework hands it over: header names in lowercase, the body's raw bytes. */
export interface LeakReportRequest {
  headers: Record<string, string | string[] | undefined>
  body: Uint8Array
}

/** The answer to send: JSON `body` (the labels, or `{ error }`). */
export interface LeakReportResponse {
  status: number
  headers: Record<string, string>
  body: LeakLabel[] | { error: { code: string; message: string } }
}

export interface LeakReportHandler {
  readonly provider: string
  /** Largest body the handler reads: adapters refuse larger ones from `Content-Length` before reading. */
  readonly maxBodyBytes: number
  handle(request: LeakReportRequest): Promise<LeakReportResponse>
}

/** Proven results kept for redeliveries and retries past the proof budget. Each entry is a SHA-256 and a key id. */
const PROOF_MEMO_ENTRIES = 10_000
/** Keys already notified (action `notify`), so that a redelivery does not notify again. */
const NOTIFIED_ENTRIES = 10_000
const TOKEN_TYPE = 'keyrot_api_key'

interface Candidate {
  digest: string
  token: string
  record: KeyRecord
  proven?: boolean
}

/**
 * The leak-report endpoint of a secret scanning program (GitHub's partner
 * program, GitLab's equivalent), framework-free: mount it with
 * `leakReportRoute` (`@keyrot/express`, `@keyrot/koa`) or call `handle()`.
 *
 * In order, it: refuses a body over `maxBodyBytes`; verifies the ECDSA
 * P-256 signature over the raw body with the provider's published key
 * (401 if missing, unknown or wrong; 503 if the keys cannot be fetched)
 * before reading any token; parses the batch with bounds; identifies each
 * token as ours by format and checksum, looks its key up by the token (never
 * by the reported `type`) and proves it against the stored hash (bounded
 * Argon2 work); applies the action to live keys; answers with a label per
 * token. A true positive is a real secret of one of our keys, revoked or
 * not; only live ones are acted on, so a redelivered report answers the
 * same and changes nothing.
 *
 * @example
 * const github = createLeakReportHandler({ keyring, provider: 'github' })
 * const answer = await github.handle({ headers: req.headers, body: rawBody })
 */
export function createLeakReportHandler(options: LeakReportHandlerOptions): LeakReportHandler {
  const config = resolveLeakOptions(options)
  const keys = new PublicKeyCache({
    source: config.keys,
    provider: config.provider,
    fetchTimeoutMs: config.fetchTimeoutMs,
    minRefreshIntervalMs: config.minRefreshIntervalMs,
    maxAgeMs: config.keysMaxAgeMs,
    clock: config.keyring.clock,
    logger: config.logger,
    fetch: config.fetch,
  })
  const proofs = new LRUCache<string, string | false>({ max: PROOF_MEMO_ENTRIES })
  const notified = new LRUCache<string, true>({ max: NOTIFIED_ENTRIES })

  async function handle(request: LeakReportRequest): Promise<LeakReportResponse> {
    try {
      if (request.body.byteLength > config.maxBodyBytes) {
        return leakErrorResponse(new KeyrotError('KEYROT_PAYLOAD_TOO_LARGE', `The leak report is larger than the ${config.maxBodyBytes} bytes this endpoint reads.`))
      }
      await authenticate(request)
      const reported = parseReport(request.body, config.maxTokens)
      return await answer(reported)
    } catch (error) {
      const keyrotError = asKeyrotError(error)
      if (keyrotError.status >= 500) {
        config.logger.error({ event: 'leak.report_failed', provider: config.provider, ...errorFields(error) }, 'keyrot could not handle a leak report')
      } else {
        config.logger.warn({ event: 'leak.report_refused', provider: config.provider, code: keyrotError.code }, 'keyrot refused a leak report')
      }
      return leakErrorResponse(keyrotError)
    }
  }

  /** Throws unless the body is signed by a key the provider publishes. */
  async function authenticate(request: LeakReportRequest): Promise<void> {
    const keyId = single(request.headers[config.keyIdHeader])
    const signature = single(request.headers[config.signatureHeader])
    if (!keyId || !signature || keyId.length > 256) throw new LeakSignatureError()
    const key = await keys.lookup(keyId)
    if (!key || !signatureMatches(key, request.body, signature.trim())) throw new LeakSignatureError()
  }

  async function answer(reported: ReportedToken[]): Promise<LeakReportResponse> {
    const now = config.keyring.clock.now()
    // One look-up and at most one proof per distinct token, whatever the batch repeats.
    const byDigest = new Map<string, { item: ReportedToken; candidate: Candidate | null }>()
    const records = new Map<string, Promise<KeyRecord | null>>()
    const pending: Array<Promise<void>> = []
    for (const item of reported) {
      const digest = tokenHash(item.token)
      if (byDigest.has(digest)) continue
      const entry: { item: ReportedToken; candidate: Candidate | null } = { item, candidate: null }
      byDigest.set(digest, entry)
      let parsed
      try {
        parsed = parseToken(item.token)
      } catch {
        continue // Not our format, or a bad checksum: a false positive, at no cost.
      }
      let read = records.get(parsed.keyId)
      if (!read) records.set(parsed.keyId, (read = config.keyring.store.get(parsed.keyId)))
      const prefix = parsed.prefix
      pending.push(
        read.then((record) => {
          if (record && record.prefix === prefix) entry.candidate = { digest, token: item.token, record }
        }),
      )
    }
    try {
      await Promise.all(pending)
    } catch (error) {
      throw error instanceof StoreUnavailableError ? error : new StoreUnavailableError(undefined, { cause: error })
    }

    const candidates = [...byDigest.values()].flatMap((entry) => (entry.candidate ? [entry.candidate] : []))
    const deferred = await prove(candidates)
    let truePositives = 0
    for (const candidate of candidates) {
      if (!candidate.proven) continue
      truePositives++
      const live = stateOf(candidate.record, now)
      if (live === 'active' || live === 'grace') await act(candidate.record, byDigest.get(candidate.digest)?.item.url ?? null)
    }
    if (deferred > 0) {
      throw new LeakKeysUnavailableError(
        `The leak report holds ${deferred} more tokens to prove than one answer may (maxProofs ${config.maxProofs}); the proven ones were acted on, retry for the rest.`,
        1_000,
      )
    }
    const labels: LeakLabel[] = reported.map((item) => {
      const digest = tokenHash(item.token)
      const proven = byDigest.get(digest)?.candidate?.proven === true
      const id = config.answerWith === 'token_raw' ? { token_raw: item.token } : { token_hash: digest }
      return { ...id, token_type: item.type ?? TOKEN_TYPE, label: proven ? 'true_positive' : 'false_positive' }
    })
    const falsePositives = byDigest.size - truePositives
    config.keyring.emit('leak.reported', { provider: config.provider, truePositives, falsePositives, at: now })
    config.logger.info({ event: 'leak.report', provider: config.provider, tokens: reported.length, truePositives, falsePositives }, 'keyrot answered a leak report')
    return { status: 200, headers: { 'cache-control': 'no-store' }, body: labels }
  }

  /** Proves candidates against their stored hashes, at most `maxProofs` Argon2 runs. Returns how many were left unproven. */
  async function prove(candidates: Candidate[]): Promise<number> {
    const queue: Candidate[] = []
    for (const candidate of candidates) {
      const memo = proofs.get(candidate.digest)
      if (memo === undefined) queue.push(candidate)
      else candidate.proven = memo === candidate.record.id
    }
    const budgeted = queue.slice(0, config.maxProofs)
    let next = 0
    const worker = async () => {
      while (next < budgeted.length) {
        const candidate = budgeted[next++] as Candidate
        candidate.proven = await config.keyring.options.hasher.verify(candidate.record.hash, candidate.token)
        proofs.set(candidate.digest, candidate.proven ? candidate.record.id : false)
      }
    }
    await Promise.all(Array.from({ length: Math.min(config.proofConcurrency, budgeted.length) }, worker))
    return queue.length - budgeted.length
  }

  /** Applies the configured action to a live key proven leaked, then records it (`key.leaked`: event, history, metric). */
  async function act(record: KeyRecord, sourceUrl: string | null): Promise<void> {
    const { keyring, provider } = config
    let action: LeakAction = config.actionFor(record)
    const incidentId = `leak:${provider}`
    const reason = leakReason(provider, sourceUrl, action)
    let key: ApiKey
    let newKeyId: string | null = null
    if (action === 'notify') {
      if (notified.has(record.id)) return
      notified.set(record.id, true)
      key = toApiKey(record, keyring.clock.now())
    } else if (action === 'emergencyRotate' && record.rotatedTo === null) {
      try {
        const rotation = await keyring.emergencyRotate(record.id, { incidentId, reason })
        key = rotation.revoked
        newKeyId = rotation.key.id
        await config.onEmergencyRotation?.({ token: rotation.token, key: rotation.key, revoked: rotation.revoked, provider, sourceUrl })
      } catch (error) {
        // Rotated (or revoked) meanwhile by someone else: the leaked key must still stop working.
        if (!(error instanceof AlreadyRotatedError) && (error as KeyrotError)?.code !== 'KEYROT_KEY_REVOKED') throw error
        action = 'revoke'
        key = await keyring.revoke(record.id, { reason: leakReason(provider, sourceUrl, action), incidentId })
      }
    } else {
      // A key in its grace period cannot be rotated again: revoking it is what stops it.
      action = 'revoke'
      key = await keyring.revoke(record.id, { reason: leakReason(provider, sourceUrl, action), incidentId })
    }
    keyring.emit('key.leaked', { key, provider, sourceUrl, action, newKeyId, at: keyring.clock.now() })
    config.logger.warn(
      { event: 'key.leaked', keyId: record.id, tenantId: record.tenantId, provider, sourceUrl, action, newKeyId },
      `keyrot: key ${record.id} was found in public (${provider}); action ${action}`,
    )
  }

  return { provider: config.provider, maxBodyBytes: config.maxBodyBytes, handle }
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? (value.length === 1 ? value[0] : undefined) : value
}

/** The answer to a refused report (adapters use it when reading the body fails: 413, 400). */
export function leakErrorResponse(error: KeyrotError): LeakReportResponse {
  const headers: Record<string, string> = { 'cache-control': 'no-store' }
  if (error instanceof LeakKeysUnavailableError) headers['retry-after'] = String(Math.ceil(error.retryAfterMs / 1000))
  if (error.code === 'KEYROT_STORE_UNAVAILABLE') headers['retry-after'] = '1'
  // Messages of the leak codes carry no secret; store and other errors answer with the table's message.
  const leakCode = error.code.startsWith('KEYROT_LEAK_') || error.code === 'KEYROT_PAYLOAD_TOO_LARGE'
  const message = leakCode && error.code !== 'KEYROT_LEAK_SIGNATURE_INVALID' ? error.message : ERROR_CODES[error.code].message
  return { status: error.status, headers, body: { error: { code: error.code, message } } }
}
