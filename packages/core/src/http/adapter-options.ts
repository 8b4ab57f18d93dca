import { checkCost } from '../credits/credits.js'
import { ERROR_CODES } from '../errors.js'
import type { Keyring } from '../lifecycle/keyring.js'
import { checkScopes } from '../lifecycle/validate.js'
import type { AuthenticateOptions } from './authenticate.js'

/**
 * Construction-time checks shared by every framework adapter, so a mistake
 * such as `scopes: 'read'` (which would otherwise require the scopes "r",
 * "e", "a", "d") or `scopes: ''` (which would require nothing) throws a
 * `TypeError` naming the option when the app starts, not a 403 on every
 * request later. lru-cache's constructor is the model.
 */
export interface AdapterAuthOptions {
  keyring: Keyring
  scopes?: readonly string[] | undefined
  clientIp?: unknown
  realm?: string | undefined
  cost?: number | undefined
}

/** What an adapter keeps after the checks: the keyring and `authenticate()`'s options. */
export interface ResolvedAdapterAuth {
  keyring: Keyring
  authOptions: AuthenticateOptions & { realm: string }
}

/** A realm goes into a quoted-string of `WWW-Authenticate`: printable ASCII, short. */
const REALM_PATTERN = /^[\x20-\x7e]{1,128}$/

/** Throws a TypeError naming `name` and `option` unless the keyring is a keyring. */
export function checkKeyring(name: string, keyring: unknown): asserts keyring is Keyring {
  if (!keyring || typeof (keyring as { verify?: unknown }).verify !== 'function') {
    throw new TypeError(`${name} needs { keyring }: a keyring from createKeyring()`)
  }
}

/**
 * Checks the options every `apiKeyAuth()` shares and resolves them once.
 * `name` is the factory's name as the user calls it, for the messages.
 */
export function resolveAdapterAuth(name: string, options: unknown, clientIpSignature: string): ResolvedAdapterAuth {
  if (!options || typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`${name} needs an options object { keyring, scopes?, clientIp?, realm? }; got ${describe(options)}`)
  }
  const given = options as AdapterAuthOptions
  checkKeyring(name, given.keyring)
  let scopes: string[] | undefined
  if (given.scopes !== undefined) {
    if (typeof given.scopes === 'string') {
      throw new TypeError(`${name} scopes must be an array of scope names, e.g. scopes: [${JSON.stringify(given.scopes)}]; got the string ${JSON.stringify(given.scopes)}`)
    }
    try {
      scopes = checkScopes(given.scopes)
    } catch (error) {
      throw new TypeError(`${name} scopes ${(error as Error).message.replace(/^.*?: /, '')}; got ${describe(given.scopes)}`)
    }
  }
  if (given.clientIp !== undefined && typeof given.clientIp !== 'function') {
    throw new TypeError(`${name} clientIp must be a function ${clientIpSignature} => string | undefined; got ${describe(given.clientIp)}`)
  }
  const realm = given.realm ?? 'api'
  if (typeof realm !== 'string' || !REALM_PATTERN.test(realm)) {
    throw new TypeError(`${name} realm must be 1-128 printable ASCII characters; got ${describe(given.realm)}`)
  }
  const cost = given.cost === undefined ? undefined : checkCost(given.cost, `${name} cost`)
  return { keyring: given.keyring, authOptions: { ...(scopes && scopes.length > 0 ? { scopes } : {}), ...(cost !== undefined ? { cost } : {}), realm } }
}

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return `[${value.map((item) => describe(item)).join(', ')}]`
  if (typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'function') return 'a function'
  if (typeof value === 'object') return 'an object'
  return String(value)
}

/**
 * The answer when the factory itself was mounted as middleware
 * (`app.get(path, apiKeyAuth, handler)`): the framework then calls it with a
 * request, and without this the request would fail with a stack trace.
 * 500 because it is the server's mistake; the body tells the fix.
 */
export function middlewareMisuseResponse(name: string, fix = `${name}({ keyring })`): { status: number; headers: Record<string, string>; body: { error: { code: 'KEYROT_MIDDLEWARE_MISUSE'; message: string } } } {
  return {
    status: ERROR_CODES.KEYROT_MIDDLEWARE_MISUSE.status,
    headers: { 'cache-control': 'no-store' },
    body: { error: { code: 'KEYROT_MIDDLEWARE_MISUSE', message: misuseMessage(name, fix) } },
  }
}

function misuseMessage(name: string, fix: string): string {
  return `${name} was mounted as middleware itself: call it, as ${fix}, and mount what it returns.`
}

const reported = new Set<string>()

/** Logs the misuse once per factory and process: each request would otherwise repeat it. */
export function reportMiddlewareMisuse(name: string, fix = `${name}({ keyring })`, log: (message: string) => void = console.error): void {
  if (reported.has(name)) return
  reported.add(name)
  log(`keyrot: KEYROT_MIDDLEWARE_MISUSE: ${misuseMessage(name, fix)}`)
}
