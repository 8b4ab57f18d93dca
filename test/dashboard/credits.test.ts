import type { Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { launchChromium, type Browser } from './browser.js'
import { startDashboardServer, type DashboardServer } from './server.js'

/** The key panel's credits: shown for a key with credits, changed by the form, absent for a key without. */
describe('dashboard credits in headless Chromium', () => {
  let browser: Browser
  let server: DashboardServer
  let page: Page
  const problems: string[] = []

  beforeAll(async () => {
    browser = await launchChromium()
  })

  afterAll(async () => {
    await browser?.close()
  })

  beforeEach(async () => {
    server = await startDashboardServer()
    page = await browser.context.newPage()
    page.setDefaultTimeout(10_000)
    page.on('pageerror', (error) => problems.push(error.message))
  })

  afterEach(async () => {
    await page?.close()
    await server?.close()
    expect(problems).toEqual([])
  })

  async function whoami(token: string): Promise<number> {
    return (await fetch(`${server.base}/v1/whoami`, { headers: { authorization: `Bearer ${token}` } })).status
  }

  it('shows what is left and the refill, adds and sets credits, and the protected route follows', async () => {
    const metered = await server.keyring.create({ tenantId: 'acme', name: 'metered', credits: { remaining: 3, refill: { amount: 100, interval: '1d' } } })
    const plain = await server.keyring.create({ tenantId: 'acme', name: 'plain' })
    expect(await whoami(metered.token)).toBe(200)
    await page.goto(server.page)
    await page.fill('#login-key', server.adminToken)
    await page.click('#login-submit')
    await page.locator(`#keys-body tr[data-id="${metered.key.id}"]`).click()
    const cell = page.locator('#detail dd[data-credits]')
    await expect.poll(() => cell.textContent()).toMatch(/^2 left refilled to 100 every 1d( 0h)?, next in /)

    await page.fill('form[data-action="credits"] input[name="credits"]', 'lots')
    await page.click('form[data-action="credits"] button[type="submit"]')
    await expect.poll(() => page.locator('form[data-action="credits"] .form-error').textContent()).toContain('whole number')

    await page.fill('form[data-action="credits"] input[name="credits"]', '40')
    await page.click('form[data-action="credits"] button[type="submit"]')
    await expect.poll(() => cell.textContent()).toMatch(/^42 left/)
    await page.selectOption('form[data-action="credits"] select[name="mode"]', 'set')
    await page.fill('form[data-action="credits"] input[name="credits"]', '0')
    await page.click('form[data-action="credits"] button[type="submit"]')
    await expect.poll(() => cell.textContent()).toMatch(/^0 left/)
    expect(await whoami(metered.token)).toBe(429)

    await page.locator(`#keys-body tr[data-id="${plain.key.id}"]`).click()
    await expect.poll(() => page.locator('#detail h2').textContent()).toContain(plain.key.id)
    expect(await page.locator('#detail dd[data-credits]').count()).toBe(0)
    expect(await page.locator('form[data-action="credits"]').count()).toBe(0)
  })
})
