import { TOKEN_PATTERN } from '@keyrot/core'
import type { Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { launchChromium, type Browser } from './browser.js'
import { startDashboardServer, type DashboardServer } from './server.js'

/** The sample protected route, called as a client would. */
async function whoami(server: DashboardServer, token: string, userAgent = 'billing-service/1.0') {
  const response = await fetch(`${server.base}/v1/whoami`, { headers: { authorization: `Bearer ${token}`, 'user-agent': userAgent } })
  return { status: response.status, body: (await response.json()) as { error?: { code: string }; keyId?: string } }
}

interface Watched {
  page: Page
  /** Every URL the page requested. */
  requests: string[]
  /** Console errors and uncaught exceptions, except the browser's own note about a 4xx answer. */
  problems: string[]
}

describe('dashboard in headless Chromium', () => {
  let browser: Browser
  let server: DashboardServer
  let watched: Watched

  beforeAll(async () => {
    browser = await launchChromium()
    await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'])
  })

  afterAll(async () => {
    await browser?.close()
  })

  beforeEach(async () => {
    server = await startDashboardServer()
    const page = await browser.context.newPage()
    // A step that cannot happen fails with Playwright's reason, well before the test's timeout.
    page.setDefaultTimeout(10_000)
    watched = { page, requests: [], problems: [] }
    page.on('request', (request) => watched.requests.push(request.url()))
    page.on('console', (message) => {
      if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) watched.problems.push(message.text())
    })
    page.on('pageerror', (error) => watched.problems.push(error.message))
  })

  afterEach(async () => {
    await watched?.page.close()
    await server?.close()
    // No request left this server, and nothing broke on the page (a CSP violation would be a console error).
    expect(watched.requests.filter((url) => !url.startsWith(`${server.base}/`))).toEqual([])
    expect(watched.problems).toEqual([])
  })

  async function signIn(page: Page, token = server.adminToken): Promise<void> {
    await page.goto(server.page)
    await page.fill('#login-key', token)
    await page.click('#login-submit')
    await page.locator('#app-view').waitFor({ state: 'visible' })
    await page.locator('#keys-body tr[data-id]').first().waitFor()
  }

  const ids = (page: Page) => () => page.locator('#keys-body tr[data-id]').evaluateAll((rows) => rows.map((row) => row.getAttribute('data-id')))
  const row = (page: Page, id: string) => page.locator(`#keys-body tr[data-id="${id}"]`)
  const formError = (page: Page, action: string) => page.locator(`form[data-action="${action}"] .form-error`)

  async function confirm(page: Page, expectTitle: RegExp): Promise<void> {
    const dialog = page.locator('#confirm-dialog')
    await dialog.waitFor({ state: 'visible' })
    expect(await page.locator('#confirm-title').textContent()).toMatch(expectTitle)
    await page.click('#confirm-ok')
    await dialog.waitFor({ state: 'hidden' })
  }

  it('refuses a key without the admin scope at sign-in, and says why', async () => {
    const { page } = watched
    const reader = await server.keyring.create({ tenantId: 'acme', name: 'reader', scopes: ['read'] })
    await page.goto(server.page)

    await page.click('#login-submit')
    expect(await page.locator('#login-error').textContent()).toBe('Paste an admin key to sign in.')

    await page.fill('#login-key', reader.token)
    await page.click('#login-submit')
    await expect.poll(() => page.locator('#login-error').textContent()).toMatch(/^This key cannot open the dashboard: it has no admin scope\./)
    expect(await page.locator('#app-view').isVisible()).toBe(false)
    expect(await page.evaluate<number>('sessionStorage.length')).toBe(0)

    await page.fill('#login-key', 'sk_live_0000000000000000_notarealsecret')
    await page.click('#login-submit')
    await expect.poll(() => page.locator('#login-error').textContent()).toMatch(/^This key does not work: /)
    expect(await page.locator('#app-view').isVisible()).toBe(false)
  })

  it('signs in with an admin key and shows the keys; the key stays in this tab only, out of URLs, local storage and cookies', async () => {
    const { page } = watched
    const billing = await server.keyring.create({ tenantId: 'acme', name: 'billing', scopes: ['read'] })
    const hostile = '<img src=x onerror="window.__xss=1">'
    const odd = await server.keyring.create({ tenantId: 'acme', name: hostile })
    await whoami(server, billing.token)
    await signIn(page)

    const billingRow = row(page, billing.key.id)
    await billingRow.waitFor()
    expect(await billingRow.locator('td').nth(1).textContent()).toBe('acme')
    expect(await billingRow.locator('td').nth(2).textContent()).toBe('billing')
    expect(await billingRow.locator('.badge').textContent()).toBe('active')
    await expect.poll(() => billingRow.locator('td').nth(7).textContent()).toBe('1')
    // Grouped per tenant.
    expect(await page.locator('#keys-body tr.group th').allTextContents()).toEqual(['acme', 'ops'])
    // Names are text, never markup.
    expect(await row(page, odd.key.id).locator('td').nth(2).textContent()).toBe(hostile)
    expect(await page.locator('#keys-body img').count()).toBe(0)
    expect(await page.evaluate<unknown>('window.__xss')).toBeUndefined()
    expect(await page.locator('#whoami').textContent()).toContain(server.adminKeyId)

    expect(await page.evaluate<string | null>("sessionStorage.getItem('keyrot.dashboard.adminKey')")).toBe(server.adminToken)
    expect(await page.evaluate<number>('localStorage.length')).toBe(0)
    expect(await page.evaluate<string>('document.cookie')).toBe('')
    expect(watched.requests.some((url) => url.includes(server.adminToken))).toBe(false)
    expect(await page.locator('#login-key').inputValue()).toBe('')

    // A reload keeps the session of this tab; a new tab starts signed out.
    await page.reload()
    await billingRow.waitFor()
    const other = await browser.context.newPage()
    try {
      await other.goto(server.page)
      await other.locator('#login-view').waitFor({ state: 'visible' })
    } finally {
      await other.close()
    }

    await page.click('#sign-out')
    await page.locator('#login-view').waitFor({ state: 'visible' })
    expect(await page.evaluate<number>('sessionStorage.length')).toBe(0)
  })

  it('rotates a key with the 1-hour preset: new token shown once, both keys and a live countdown, traffic and clients of the old key; then ends the grace', async () => {
    const { page } = watched
    const billing = await server.keyring.create({ tenantId: 'acme', name: 'billing', scopes: ['read'] })
    for (let i = 0; i < 3; i++) expect((await whoami(server, billing.token)).status).toBe(200)
    await signIn(page)

    await page.click(`[data-select="${billing.key.id}"]`)
    await page.locator('#detail form[data-action="rotate"]').waitFor()
    await page.check('form[data-action="rotate"] input[name="grace"][value="1h"]')
    await page.click('form[data-action="rotate"] button[type="submit"]')
    await confirm(page, new RegExp(`^Rotate key ${billing.key.id}\\?$`))

    // The new token, once, with a copy button.
    await page.locator('#token-dialog').waitFor({ state: 'visible' })
    const token = (await page.locator('#token-value').textContent()) as string
    expect(token).toMatch(TOKEN_PATTERN)
    await page.click('#token-copy')
    await expect.poll(() => page.locator('#token-copied').textContent()).toBe('Copied to the clipboard.')
    expect(await page.evaluate<string>('navigator.clipboard.readText()')).toBe(token)
    const next = await whoami(server, token, 'billing-service/2.0')
    expect(next.status).toBe(200)
    const newId = next.body.keyId as string
    await page.click('#token-done')
    await page.locator('#token-dialog').waitFor({ state: 'hidden' })
    expect(await page.locator('#token-value').textContent()).toBe('')
    expect(await page.evaluate<boolean>(`document.documentElement.outerHTML.includes(${JSON.stringify(token)}) || JSON.stringify(sessionStorage).includes(${JSON.stringify(token)})`)).toBe(false)

    // Both keys: the old one in grace with a countdown that moves, the new one active.
    const oldRow = row(page, billing.key.id)
    await expect.poll(() => oldRow.locator('.badge').textContent()).toBe('in grace')
    expect(await row(page, newId).locator('.badge').textContent()).toBe('active')
    const countdown = oldRow.locator('[data-deadline]')
    const first = (await countdown.textContent()) as string
    expect(first).toMatch(/^59m \d{1,2}s left$/)
    await expect.poll(() => countdown.textContent(), { timeout: 3_000 }).not.toBe(first)
    expect(await oldRow.locator('.lineage').textContent()).toContain(`→ ${newId.slice(-6)}`)
    expect(await row(page, newId).locator('.lineage').textContent()).toContain(`← ${billing.key.id.slice(-6)}`)

    // The rotation at a glance: per-minute traffic on both keys and the client still on the old one.
    expect(await page.locator('#detail .notice').textContent()).toContain(`${newId} is the new key`)
    expect((await whoami(server, billing.token, 'legacy-billing/0.9')).status).toBe(200)
    expect((await whoami(server, billing.token, '<script>window.__xss=1</script>')).status).toBe(200)
    await page.click('#refresh')
    const rotation = page.locator('#rotation')
    await expect.poll(() => rotation.locator('table.clients').textContent()).toContain('legacy-billing/0.9')
    expect(await rotation.locator('table.clients').textContent()).toContain('<script>window.__xss=1</script>')
    expect(await page.evaluate<unknown>('window.__xss')).toBeUndefined()
    expect(await rotation.locator('h3').textContent()).toBe(`Rotation ${billing.key.id} → ${newId}`)
    expect(await rotation.locator('svg.chart polyline').count()).toBe(2)
    expect(await rotation.locator('.grace-line').textContent()).toMatch(/^Grace ends in 59m \d{1,2}s \(1h 0m grace, /)
    // Counted through the store (what every replica reports): the old key's uses in grace, the new key's uses.
    expect(await rotation.locator('.legend').textContent()).toMatch(/old key: 2 requests.*new key: 1 requests/)
    expect(await rotation.locator('.end-grace-warning').textContent()).toBe(
      `Key ${billing.key.id} was served 2 times in the last 15 minutes, by the replicas sharing this store, to 2 clients: ending the grace now breaks them.`,
    )

    // End the grace: the confirmation warns that clients still use the old key; the old key stops at once.
    await page.click('form[data-action="end-grace"] button[type="submit"]')
    await page.locator('#confirm-dialog').waitFor({ state: 'visible' })
    expect(await page.locator('#confirm-warning').textContent()).toMatch(new RegExp(`^Key ${billing.key.id} was served 2 times in the last 15 minutes`))
    await confirm(page, /^End the grace period of /)
    await expect.poll(() => oldRow.locator('.badge').textContent()).toBe('expired')
    expect(await page.locator('#detail .notice').textContent()).toBe(`Grace ended: ${billing.key.id} no longer works.`)
    const refused = await whoami(server, billing.token)
    expect(refused.status).toBe(401)
    expect(refused.body.error?.code).toBe('KEYROT_KEY_EXPIRED')
    expect((await whoami(server, token)).status).toBe(200)
  })

  it('revokes a key after confirmation (cancel changes nothing), and the protected route refuses it', async () => {
    const { page } = watched
    const victim = await server.keyring.create({ tenantId: 'acme', name: 'reporting', scopes: ['read'] })
    await server.keyring.create({ tenantId: 'globex', name: 'other' })
    await signIn(page)

    await page.fill('#filter-search', 'report')
    await expect.poll(() => page.locator('#keys-body tr[data-id]').count()).toBe(1)
    await row(page, victim.key.id).click()
    await page.fill('form[data-action="revoke"] input[name="reason"]', 'laptop stolen')
    // A refresh (also the one every 30 s) redraws the key, never the form being filled in.
    const reread = page.waitForResponse((response) => response.url() === `${server.base}/v1/keys/${victim.key.id}`)
    await page.click('#refresh')
    await reread
    expect(await page.inputValue('form[data-action="revoke"] input[name="reason"]')).toBe('laptop stolen')
    await page.click('form[data-action="revoke"] button[type="submit"]')
    await page.locator('#confirm-dialog').waitFor({ state: 'visible' })
    await page.click('#confirm-cancel')
    await page.locator('#confirm-dialog').waitFor({ state: 'hidden' })
    expect((await whoami(server, victim.token)).status).toBe(200)

    await page.click('form[data-action="revoke"] button[type="submit"]')
    await confirm(page, new RegExp(`^Revoke key ${victim.key.id}\\?$`))
    await expect.poll(() => row(page, victim.key.id).locator('.badge').textContent()).toBe('revoked')
    await expect.poll(() => page.locator('#detail dl').textContent()).toContain('laptop stolen')
    const refused = await whoami(server, victim.token)
    expect(refused.status).toBe(401)
    expect(refused.body.error?.code).toBe('KEYROT_KEY_REVOKED')

    await page.selectOption('#filter-state', 'revoked')
    await page.fill('#filter-search', '')
    await expect.poll(() => page.locator('#keys-body tr[data-id]').count()).toBe(1)
    await page.selectOption('#filter-state', '')
    await page.selectOption('#filter-tenant', 'globex')
    await expect.poll(() => page.locator('#keys-body tr[data-id] td:nth-child(2)').allTextContents()).toEqual(['globex'])
  })

  it('answers bad input in every form with a readable message, never a blank page', async () => {
    const { page } = watched
    const active = await server.keyring.create({ tenantId: 'acme', name: 'active', expiresAt: Date.now() + 30 * 86_400_000 })
    const old = await server.keyring.create({ tenantId: 'acme', name: 'rotating' })
    await server.keyring.rotate(old.key.id, { gracePeriod: '24h' })
    await signIn(page)

    // Rotate: an empty custom grace period, then one the API refuses.
    await page.click(`[data-select="${active.key.id}"]`)
    await page.check('form[data-action="rotate"] input[name="grace"][value="custom"]')
    await page.click('form[data-action="rotate"] button[type="submit"]')
    expect(await formError(page, 'rotate').textContent()).toBe('Enter a custom grace period, such as 36h or 90m.')
    await page.fill('form[data-action="rotate"] input[name="custom"]', 'abc')
    await page.click('form[data-action="rotate"] button[type="submit"]')
    await confirm(page, /^Rotate key /)
    await expect.poll(() => formError(page, 'rotate').textContent()).toBe("Invalid gracePeriod: must be milliseconds or a duration such as '30s', '24h' or '7d'")
    expect(await page.locator('form[data-action="rotate"] input[name="custom"]').getAttribute('aria-invalid')).toBe('true')
    expect((await whoami(server, active.token)).status).toBe(200)

    // Emergency rotation: no incident id, a blank one, then a real one.
    await page.click('form[data-action="emergency"] button[type="submit"]')
    expect(await formError(page, 'emergency').textContent()).toBe('Enter the incident id, such as INC-42.')
    await page.fill('form[data-action="emergency"] input[name="incidentId"]', '   ')
    await page.click('form[data-action="emergency"] button[type="submit"]')
    expect(await formError(page, 'emergency').textContent()).toBe('Enter the incident id, such as INC-42.')
    expect(await page.locator('#confirm-dialog').isVisible()).toBe(false)

    // Extend (a key in grace): empty, negative, nonsense.
    await page.click(`[data-select="${old.key.id}"]`)
    await page.locator('form[data-action="extend"]').waitFor()
    await page.click('form[data-action="extend"] button[type="submit"]')
    expect(await formError(page, 'extend').textContent()).toBe('Enter how much longer, such as 1h, 24h or 7d.')
    for (const value of ['-1h', '1 fortnight']) {
      await page.fill('form[data-action="extend"] input[name="extendBy"]', value)
      await page.click('form[data-action="extend"] button[type="submit"]')
      await expect.poll(() => formError(page, 'extend').textContent()).toBe("Invalid extendBy: must be milliseconds or a duration such as '30s', '24h' or '7d'")
    }
    // Revoke without a reason.
    await page.click('form[data-action="revoke"] button[type="submit"]')
    expect(await formError(page, 'revoke').textContent()).toBe('Give a reason for the audit trail.')

    // The page is intact: the table is there and no failure banner.
    expect(await page.locator('#keys-body tr[data-id]').count()).toBe(4)
    expect(await page.locator('#banner').isVisible()).toBe(false)

    // A valid extension works: 24h + 2h.
    await page.fill('form[data-action="extend"] input[name="extendBy"]', '2h')
    await page.click('form[data-action="extend"] button[type="submit"]')
    await expect.poll(() => page.locator('#detail .notice').textContent()).toMatch(/^Extended by 2h: /)
    expect(await formError(page, 'extend').isVisible()).toBe(false)
    const extended = await server.keyring.get(old.key.id)
    expect((extended?.expiresAt as number) - (extended?.rotatedAt as number)).toBe(26 * 3_600_000)

    // And an emergency rotation with an incident id: the new token once, the old key refused.
    await page.click(`[data-select="${active.key.id}"]`)
    await page.fill('form[data-action="emergency"] input[name="incidentId"]', 'INC-42')
    await page.click('form[data-action="emergency"] button[type="submit"]')
    await confirm(page, /^Emergency rotation of /)
    await page.locator('#token-dialog').waitFor({ state: 'visible' })
    const token = (await page.locator('#token-value').textContent()) as string
    await page.click('#token-done')
    expect((await whoami(server, token)).status).toBe(200)
    const refused = await whoami(server, active.token)
    expect(refused.body.error?.code).toBe('KEYROT_KEY_REVOKED')
    await expect.poll(() => page.locator('#detail dl').textContent()).toContain('Rotated from')
    expect((await server.keyring.get(active.key.id))?.incidentId).toBe('INC-42')
  })

  it('signs out with a message when the admin key is revoked during the session', async () => {
    const { page } = watched
    await signIn(page)
    await server.keyring.revoke(server.adminKeyId, { reason: 'rotated out' })
    await page.click('#refresh')
    await page.locator('#login-view').waitFor({ state: 'visible' })
    expect(await page.locator('#login-error').textContent()).toMatch(/^Signed out: the admin key no longer works/)
    expect(await page.evaluate<number>('sessionStorage.length')).toBe(0)
  })

  it('lists keys expiring soon and keys not used lately', async () => {
    const { page } = watched
    const day = 86_400_000
    // Keys made 40 days ago: a clock that can be moved.
    let shift = -40 * day
    await server.close()
    server = await startDashboardServer({ clock: { now: () => Date.now() + shift } })
    const soon = await server.keyring.create({ tenantId: 'acme', name: 'soon', expiresAt: Date.now() + 2 * day })
    await server.keyring.create({ tenantId: 'acme', name: 'later', expiresAt: Date.now() + 40 * day })
    const stale = await server.keyring.create({ tenantId: 'acme', name: 'stale' })
    const used = await server.keyring.create({ tenantId: 'acme', name: 'used' })
    shift = 0
    expect((await whoami(server, used.token)).status).toBe(200)
    expect((await whoami(server, soon.token)).status).toBe(200)
    await signIn(page)
    const ids = () => page.locator('#keys-body tr[data-id]').evaluateAll((rows) => rows.map((row) => row.getAttribute('data-id')))

    await page.click('#views [data-view="expiring"]')
    await expect.poll(ids).toEqual([soon.key.id])
    expect(await page.locator('#filter-within').isVisible()).toBe(true)
    await page.selectOption('#filter-within', '1h')
    await expect.poll(() => page.locator('#keys-body tr.empty').textContent()).toBe('No key matches this view.')

    // Not used for 30 days: the stale key and 'later' (never used, made 40 days ago); not the used ones nor the admin key.
    await page.click('#views [data-view="unused"]')
    await expect.poll(ids).toHaveLength(2)
    expect((await ids()).sort()).toEqual([stale.key.id, (await server.keyring.list({ tenantId: 'acme' })).find((key) => key.name === 'later')!.id].sort())
    expect(await page.locator('#view-note').textContent()).toMatch(/^Working keys not used within the window/)

    await page.click('#views [data-view="keys"]')
    await expect.poll(() => page.locator('#keys-body tr[data-id]').count()).toBe(5)
  })

  it('lists keys due for rotation under their tenant policy, overdue first, with when they are due', async () => {
    const { page } = watched
    const day = 86_400_000
    let shift = -40 * day
    await server.close()
    server = await startDashboardServer({ clock: { now: () => Date.now() + shift } })
    const overdue = await server.keyring.create({ tenantId: 'acme', name: 'overdue' })
    shift = -20 * day
    const due = await server.keyring.create({ tenantId: 'acme', name: 'due' })
    await server.keyring.create({ tenantId: 'globex', name: 'no policy' })
    shift = 0
    await server.keyring.create({ tenantId: 'acme', name: 'fresh' })
    await server.keyring.setTenantPolicy('acme', { maxAgeMs: 30 * day, rotationWarningMs: 14 * day })
    await signIn(page)

    await page.click('#views [data-view="due"]')
    await expect.poll(ids(page)).toEqual([overdue.key.id, due.key.id])
    expect(await page.locator('#expires-heading').textContent()).toBe('Rotation due')
    expect(await row(page, overdue.key.id).locator('.badge-overdue').textContent()).toBe('overdue')
    expect(await row(page, overdue.key.id).locator('td.overdue').textContent()).toMatch(/overdue 10d( \d+h)? ago/)
    expect(await row(page, due.key.id).locator('td.due').textContent()).toMatch(/due in (9d 23h|10d)/)
    expect(await page.locator('#view-note').textContent()).toMatch(/^Active keys past the warning of their rotation policy/)

    await page.click('#views [data-view="keys"]')
    expect(await page.locator('#expires-heading').textContent()).toBe('Expires')
  })

  it('shows 1,000 keys at once (first-paint figure printed), filtered per tenant and searched by key id', async () => {
    const { page } = watched
    const count = 1_000
    let last = ''
    for (let i = 0; i < count; i++) {
      const issued = await server.keyring.create({ tenantId: `tenant-${i % 10}`, name: `service-${i}`, scopes: ['read'], expiresAt: Date.now() + (i + 1) * 3_600_000 })
      last = issued.key.id
    }
    await signIn(page)
    // A fresh navigation, already signed in: the time an operator waits.
    await page.reload()
    await page.waitForFunction(() => performance.getEntriesByName('keyrot:keys-painted').length > 0)
    const paint = await page.evaluate(() => ({
      painted: performance.getEntriesByName('keyrot:keys-painted')[0]!.startTime,
      rendered: performance.getEntriesByName('keyrot:keys-rendered')[0]!.startTime,
    }))
    console.log(`dashboard: ${count + 1} keys rendered ${paint.rendered.toFixed(0)} ms and painted ${paint.painted.toFixed(0)} ms after navigation start (goal: under 1000 ms; bench/dashboard-paint.mjs measures it)`)
    expect(await page.locator('#keys-body tr[data-id]').count()).toBe(count + 1)
    expect(await page.locator('#key-count').textContent()).toBe('1,001 keys')

    await page.selectOption('#filter-tenant', 'tenant-3')
    await expect.poll(() => page.locator('#key-count').textContent()).toBe('100 of 1,001 keys')
    await page.fill('#filter-search', last)
    await expect.poll(ids(page)).toEqual([])
    await page.selectOption('#filter-tenant', '')
    await expect.poll(ids(page)).toEqual([last])
  })
})
