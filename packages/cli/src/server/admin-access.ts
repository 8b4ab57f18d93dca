import { KeyNotFoundError, KeyrotError, type ApiKey, type Keyring } from '@keyrot/core'
import type { NextFunction, Request, RequestHandler, Response } from 'express'

/**
 * What the calling admin key may manage. An admin key manages the keys of
 * its own tenant; the all-tenants scope (`admin:*` by default) manages every
 * tenant. Handlers read it from `res.locals.adminAccess`, set by
 * `recordAdminAccess`.
 */
export interface AdminAccess {
  /** The admin key's tenant. */
  tenantId: string
  /** Holds the all-tenants scope. */
  allTenants: boolean
}

/** A tenant an admin key may not manage: creating or listing there. */
export class TenantForbiddenError extends KeyrotError {
  constructor(tenantId: string) {
    super('KEYROT_ADMIN_TENANT_FORBIDDEN', `This admin key manages only the keys of its own tenant; tenant ${JSON.stringify(tenantId)} needs an admin key of that tenant or the all-tenants scope.`)
  }
}

/**
 * After `apiKeyAuth({ scopes: [adminScope] })`: records which tenants the
 * admin key may manage. `adminScope` alone: its own tenant. With
 * `adminScope + ':*'` as well: every tenant. The all-tenants scope widens an
 * admin key's reach; it is not an admin grant by itself, so the scope check
 * (and the rule that a refused key's use is not counted) stays in core.
 */
export function recordAdminAccess(adminScope: string): RequestHandler {
  const allTenantsScope = `${adminScope}:*`
  return function keyrotAdminAccess(req: Request, res: Response, next: NextFunction): void {
    const key = req.apiKey as ApiKey
    const access: AdminAccess = { tenantId: key.tenantId, allTenants: key.scopes.includes(allTenantsScope) }
    res.locals['adminAccess'] = access
    next()
  }
}

/** The caller's access; routes behind `recordAdminAccess` always have one. */
export function adminAccessOf(res: Response): AdminAccess {
  const access = res.locals['adminAccess'] as AdminAccess | undefined
  // A route wired without the admin middleware manages nothing.
  return access ?? { tenantId: '', allTenants: false }
}

/** Throws `TenantForbiddenError` unless the caller may manage `tenantId`. */
export function assertTenant(access: AdminAccess, tenantId: string): void {
  if (!access.allTenants && tenantId !== access.tenantId) throw new TenantForbiddenError(tenantId)
}

/**
 * The tenant a listing covers: the one asked for (if the caller may manage
 * it), else the caller's own unless it manages every tenant.
 */
export function listedTenant(access: AdminAccess, asked: string | undefined): { tenantId?: string } {
  if (asked !== undefined) {
    assertTenant(access, asked)
    return { tenantId: asked }
  }
  return access.allTenants ? {} : { tenantId: access.tenantId }
}

/**
 * The key `id`, if the caller may manage it. A key of another tenant throws
 * the very `KeyNotFoundError` an unknown id throws, so no admin route tells
 * a tenant's admin whether another tenant's key id exists.
 */
export async function manageableKey(keyring: Keyring, access: AdminAccess, id: string): Promise<ApiKey> {
  const key = await keyring.get(id)
  if (key === null || (!access.allTenants && key.tenantId !== access.tenantId)) throw new KeyNotFoundError(id)
  return key
}
