import {
  createLeakReportHandler,
  LEAK_PROVIDERS,
  type Keyring,
  type LeakAction,
  type LeakActionRules,
  type LeakProvider,
  type Logger,
  type PublicKeySource,
} from '@keyrot/core'
import { leakReportRoute } from '@keyrot/express'
import type { Express, NextFunction, Request, Response } from 'express'

/**
 * The leak-report routes of `keyrot serve` (docs/leak-response.md):
 * `POST /v1/leak-reports/github` and `POST /v1/leak-reports/gitlab`. They
 * need no API key (the provider's signature is the authentication), are
 * rate-limited per client IP, and refuse a body over `maxBodyBytes` from
 * `Content-Length` before reading it.
 */
export interface LeakRoutesOptions {
  /** Where GitHub's public keys come from. Default: GitHub's published URL. `false`: no GitHub route. */
  github?: PublicKeySource | false
  /** Where GitLab's public keys come from. No default: without it there is no GitLab route. */
  gitlab?: PublicKeySource | false
  /** What to do with a leaked key. Default `'revoke'`. (`emergencyRotate` needs a way to hand over the successor: use the library.) */
  action?: Exclude<LeakAction, 'emergencyRotate'> | LeakActionRules
  /** Reports accepted per client IP per minute, valid or not. Default 120. */
  perMinute?: number
  /** Largest report body, in bytes. Default 1 MiB. */
  maxBodyBytes?: number
  /** Fetch for the keys URLs. Default: the global one. */
  fetch?: typeof fetch
}

const ACTIONS = ['revoke', 'notify']

/**
 * Reads the routes' settings from the environment: `KEYROT_GITHUB_KEYS_URL`
 * (default GitHub's URL), `KEYROT_GITLAB_KEYS_URL` (required for the GitLab
 * route), `KEYROT_LEAK_ACTION` (`revoke` or `notify`). Throws a TypeError
 * naming the variable for a bad value.
 */
export function leakRoutesFromEnv(env: NodeJS.ProcessEnv): LeakRoutesOptions {
  const action = env.KEYROT_LEAK_ACTION
  if (action !== undefined && action !== '' && !ACTIONS.includes(action)) {
    throw new TypeError(`KEYROT_LEAK_ACTION must be one of ${ACTIONS.join(', ')}; got ${JSON.stringify(action)}`)
  }
  return {
    github: env.KEYROT_GITHUB_KEYS_URL || LEAK_PROVIDERS.github.defaultKeysUrl,
    gitlab: env.KEYROT_GITLAB_KEYS_URL || false,
    ...(action ? { action: action as 'revoke' | 'notify' } : {}),
  }
}

/** A fixed one-minute window per client IP, bounded in memory: enough to keep a flood of forged reports off the keys fetcher and the store. */
function perIpLimit(perMinute: number) {
  const windows = new Map<string, { start: number; count: number }>()
  return function leakReportLimit(req: Request, res: Response, next: NextFunction) {
    const now = Date.now()
    const ip = req.ip ?? req.socket.remoteAddress ?? 'unknown'
    let window = windows.get(ip)
    if (!window || now - window.start >= 60_000) {
      // Bounded: past 10,000 addresses the windows start over (a flood from that many addresses is the network's to stop).
      if (windows.size >= 10_000) windows.clear()
      windows.set(ip, (window = { start: now, count: 0 }))
    }
    if (++window.count > perMinute) {
      const retryAfter = Math.max(1, Math.ceil((window.start + 60_000 - now) / 1000))
      res.status(429).set({ 'retry-after': String(retryAfter), 'cache-control': 'no-store' })
      res.json({ error: { code: 'KEYROT_RATE_LIMITED', message: 'Too many requests.' } })
      return
    }
    next()
  }
}

/** Mounts the configured leak-report routes on `app`. Returns the providers mounted. */
export function mountLeakRoutes(app: Express, keyring: Keyring, options: LeakRoutesOptions, logger: Logger): LeakProvider[] {
  const perMinute = options.perMinute ?? 120
  if (!Number.isSafeInteger(perMinute) || perMinute < 1) throw new TypeError('leakReports.perMinute must be a positive integer')
  const limit = perIpLimit(perMinute)
  const mounted: LeakProvider[] = []
  for (const provider of ['github', 'gitlab'] as const) {
    const keys = options[provider]
    if (keys === undefined || keys === false) continue
    const handler = createLeakReportHandler({
      keyring,
      provider,
      keys,
      logger,
      ...(options.action === undefined ? {} : { action: options.action }),
      ...(options.maxBodyBytes === undefined ? {} : { maxBodyBytes: options.maxBodyBytes }),
      ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
    })
    app.post(`/v1/leak-reports/${provider}`, limit, leakReportRoute(handler))
    mounted.push(provider)
  }
  return mounted
}
