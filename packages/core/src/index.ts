export { createKeyring, Keyring } from './lifecycle/keyring.js'
export { checkAllowedIps, compileAllowedIps, matchesClient, parseClientIp, ipAllowed, MAX_ALLOWED_IPS } from './lifecycle/allowed-ips.js'
export type { IpMatcher, ClientAddress } from './lifecycle/allowed-ips.js'
export { importIndexOf, LEGACY_SHA256_PREFIX, MAX_IMPORTED_TOKEN_LENGTH } from './lifecycle/imported-keys.js'
export type { ImportKeyInput, ImportedKeyResult } from './lifecycle/imported-keys.js'
export type { CreateKeyInput, RotateOptions, VerifyOptions, VerifyResult, IssuedKey } from './lifecycle/keyring.js'
export type { RateLimitInput } from './lifecycle/validate.js'
export { MemoryRateLimiter } from './rate-limit/memory-limiter.js'
export type { MemoryRateLimiterOptions } from './rate-limit/memory-limiter.js'
export type {
  RateLimiter,
  RateLimitPolicy,
  Attempt,
  Admission,
  Charge,
  FailureLimits,
  IpBlockLimit,
  WindowLimit,
  Quota,
  QuotaDecision,
} from './rate-limit/limiter.js'
export { decideAdmission, decideRelease, decideQuota } from './rate-limit/decisions.js'
export type { IpState, WindowCount } from './rate-limit/decisions.js'
export { rateLimitHeaders } from './rate-limit/headers.js'
export type { RateLimitInfo } from './rate-limit/headers.js'
export type { RateLimitOptions, ResolvedRateLimitOptions, WindowLimitOptions } from './rate-limit/options.js'
export type { RateLimitStats } from './rate-limit/guard.js'
export { resolveKeyringOptions } from './options.js'
export type { KeyringOptions, ResolvedKeyringOptions } from './options.js'
export * from './errors.js'
export { parseDuration, formatDuration } from './duration.js'
export type { Duration } from './duration.js'
export { systemClock, ManualClock } from './clock.js'
export type { Clock } from './clock.js'
export { TypedEmitter } from './events.js'
export type { KeyringEvents, KeyringEventName, KeyringListener, RequestContext } from './events.js'
export { silentLogger } from './logger.js'
export type { Logger } from './logger.js'
export { Argon2Hasher, FastTestHasher, OWASP_ARGON2 } from './hash/hasher.js'
export type { Hasher, Argon2Options } from './hash/hasher.js'
export { MemoryStore } from './store/memory-store.js'
export { SharedProofs, SHARED_PROOF_RESULTS } from './proof/shared-proofs.js'
export type { SharedProofResult } from './proof/shared-proofs.js'
export { resolveProofKey, proofKeyFromEnv, PROOF_KEY_ENV, MIN_PROOF_KEY_BYTES } from './proof/proof-key.js'
export { Argon2Queue, DEFAULT_ARGON2_MAX_WAIT_MS } from './hash/argon2-queue.js'
export type { Argon2QueueOptions } from './hash/argon2-queue.js'
export {
  ROTATION_USAGE_LIMITS,
  RotationTally,
  rotationClientField,
  parseRotationClientField,
  rotationWindow,
  emptyRotationUsage,
} from './store/rotation-usage.js'
export type { RotationUse, RotationUsage, RotationUsageQuery, RotationClient } from './store/rotation-usage.js'
export type {
  KeyStore,
  RotateInput,
  RevokeInput,
  EmergencyRotateInput,
  ListQuery,
  InvalidationEvent,
  InvalidationListener,
  StoreResetCause,
} from './store/store.js'
export { VerificationCache } from './cache/verification-cache.js'
export {
  TOKEN_PATTERN,
  tokenPatternFor,
  parseToken,
  generateToken,
  newKeyId,
  newFamilyId,
  familyOf,
  isKeyId,
  DEFAULT_PREFIX,
  MAX_TOKEN_LENGTH,
  KEY_ID_LENGTH,
  FAMILY_ID_LENGTH,
} from './token/format.js'
export type { ParsedToken } from './token/format.js'
export { stateOf, toApiKey } from './types.js'
export type { ApiKey, KeyRecord, KeyState, KeyMetadata } from './types.js'
export { SecretSealer, masterKeysFromEnv, isSealedSecret } from './signing/sealer.js'
export type { MasterKey, SigningOptions } from './signing/sealer.js'
export { generateSigningSecret, isSigningSecret, SIGNING_PREFIX } from './signing/secret.js'
export type { CreateSigningSecretInput, IssuedSigningSecret } from './signing/secret.js'
export {
  MissingSignatureError,
  InvalidSignatureError,
  StaleTimestampError,
  ReplayedRequestError,
  PayloadTooLargeError,
  SecretUnreadableError,
} from './signing/errors.js'
export { signWebhook, createWebhookVerifier, verifyWebhook } from './signing/webhook.js'
export type { WebhookHeaders, SignWebhookInput, WebhookVerifierOptions, WebhookInput, WebhookVerifyResult } from './signing/webhook.js'
export { MemoryReplayStore } from './signing/replay-store.js'
export type { ReplayStore, MemoryReplayStoreOptions } from './signing/replay-store.js'
export {
  SIGNED_REQUEST_HEADERS,
  CANONICAL_REQUEST_TAG,
  canonicalRequest,
  signRequest,
  createSignedRequestVerifier,
  verifySignedRequest,
} from './signing/signed-request.js'
export type {
  CanonicalRequestParts,
  SignRequestInput,
  SignedRequestHeaders,
  SignedRequestVerifierOptions,
  SignedRequestInput,
  SignedRequestOutcome,
  SignedRequestVerifier,
} from './signing/signed-request.js'
export { signedRequestAdapter } from './signing/adapter-options.js'
export type { SignedRequestAdapterOptions } from './signing/adapter-options.js'
export { signatureErrorResponse, SIGNATURE_SCHEME } from './signing/respond.js'
export { readRawBody } from './signing/raw-body.js'
export type { BodyStream } from './signing/raw-body.js'
export { rewrapSigningSecrets } from './signing/rewrap.js'
export type { RewrapReport } from './signing/rewrap.js'
export type { HeaderSource } from './signing/headers.js'
export { authenticate, authenticateNow, authenticateRequestOf } from './http/authenticate.js'
export type { AuthenticateRequest, AuthenticateOptions, AuthenticateOutcome } from './http/authenticate.js'
export { extractCredential, credentialHeadersOf } from './http/credentials.js'
export type { CredentialHeaders, CredentialResult, HeaderValue, NodeRequestHeaders } from './http/credentials.js'
export { errorResponse, asKeyrotError } from './http/respond.js'
export type { ErrorResponse } from './http/respond.js'
export { checkKeyring, middlewareMisuseResponse, reportMiddlewareMisuse, resolveAdapterAuth } from './http/adapter-options.js'
export type { AdapterAuthOptions, ResolvedAdapterAuth } from './http/adapter-options.js'
export { createMetrics, DEFAULT_DURATION_BUCKETS, DEFAULT_LAG_BUCKETS, OTHER_TENANTS } from './metrics/metrics.js'
export type { MetricsOptions, KeyrotMetrics } from './metrics/metrics.js'
export { attachAuditLog } from './audit/audit-log.js'
export type { AuditLogOptions, AuditKind } from './audit/audit-log.js'
export { MemoryHistoryLog } from './audit/memory-history-log.js'
export type { MemoryHistoryLogOptions, HistorySnapshot } from './audit/memory-history-log.js'
export {
  HistoryChainCheck,
  historyEntryHash,
  canonicalHistoryEntry,
  checkHistoryInput,
  matchesHistoryQuery,
  resolveHistoryQuery,
  unreadableReason,
  GENESIS_HASH,
  HISTORY_ACTIONS,
  DEFAULT_HISTORY_READ_LIMIT,
  MAX_REPORTED_PROBLEMS,
} from './audit/history.js'
export type {
  HistoryLog,
  HistoryEntry,
  HistoryEntryInput,
  HistoryAction,
  HistoryQuery,
  HistoryHead,
  HistoryProblem,
  HistoryProblemKind,
  HistoryVerification,
  UnreadableHistoryEntry,
} from './audit/history.js'
export { historyEntryOf } from './audit/history-recorder.js'
export { watchExpiry } from './lifecycle/expiry-watcher.js'
export type { ExpiryWatcherOptions, ExpiryWatcher } from './lifecycle/expiry-watcher.js'
export * from './leak/index.js'
export { checkCredits, checkCost, decideSpend, decideAdjust, refilled, stateOfBalance, MIN_REFILL_INTERVAL_MS, MAX_CREDITS } from './credits/credits.js'
export type { CreditsConfig, CreditsRefill, CreditBalance, CreditsState, CreditsInput, CreditsChange, SpendDecision } from './credits/credits.js'
export { creditsHeaders } from './credits/headers.js'
export type { KeyCredits } from './lifecycle/credits.js'
export type { SpendCreditsInput, AdjustCreditsInput } from './store/store.js'
export { resolveRotationPolicyOptions, checkTenantPolicy, effectivePolicy, dueWindowOf, complianceOf, DEFAULT_ROTATION_WARNING_MS } from './policy/policy-options.js'
export type { RotationPolicyOptions, RotationPolicy, TenantPolicy, RotationDue, ResolvedRotationPolicyOptions } from './policy/policy-options.js'
export type { TenantPolicyView } from './policy/tenant-policy.js'
export { buildEvidenceReport, evidenceCsv, evidenceJsonLines, summaryLine, keysDueForRotation } from './policy/evidence-report.js'
export type { EvidenceReport, EvidenceRow, EvidenceSummary, EvidenceReportOptions, Compliance, KeyDueForRotation } from './policy/evidence-report.js'
export { DailyUsage, utcDay, DAY_MS, DAILY_USAGE_DAYS } from './policy/daily-usage.js'
export { runAsActor, currentActor } from './audit/actor.js'
export { rotationHeaders } from './http/rotation-headers.js'
