import type { Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { launchChromium, type Browser } from './browser.js'
import { startDashboardServer, type DashboardServer } from './server.js'

describe('dashboard: a key\'s allowed IPs, in headless Chromium', () => {
  let browser: Browser
  let server: DashboardServer
  let page: Page
  let problems: string[]

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
    problems = []
    page.on('pageerror', (error) => problems.push(error.message))
  })

  afterEach(async () => {
    await page?.close()
    await server?.close()
    expect(problems).toEqual([])
  })

  it('shows the list, changes it, refuses an invalid range with a readable message, and lifts it', async () => {
    const { key } = await server.keyring.create({ tenantId: 'acme', name: 'bound', allowedIps: ['203.0.113.0/24'] })
    await page.goto(server.page)
    await page.fill('#login-key', server.adminToken)
    await page.click('#login-submit')
    await page.locator(`#keys-body tr[data-id="${key.id}"]`).click()
    await expect.poll(() => page.locator('#detail dl').textContent()).toContain('203.0.113.0/24')

    const input = 'form[data-action="allowed-ips"] input[name="allowedIps"]'
    expect(await page.inputValue(input)).toBe('203.0.113.0/24')
    await page.fill(input, '198.51.100.0/24, 2001:db8::/32')
    await page.click('form[data-action="allowed-ips"] button[type="submit"]')
    await expect.poll(async () => (await server.keyring.get(key.id))?.allowedIps).toEqual(['198.51.100.0/24', '2001:db8::/32'])
    await expect.poll(() => page.locator('#detail dl').textContent()).toContain('2001:db8::/32')

    await page.fill(input, '10.0.0.0/40')
    await page.click('form[data-action="allowed-ips"] button[type="submit"]')
    await expect.poll(() => page.locator('form[data-action="allowed-ips"] .form-error').textContent()).toContain('10.0.0.0/40')
    expect((await server.keyring.get(key.id))?.allowedIps).toEqual(['198.51.100.0/24', '2001:db8::/32'])

    await page.fill(input, '')
    await page.click('form[data-action="allowed-ips"] button[type="submit"]')
    await expect.poll(async () => (await server.keyring.get(key.id))?.allowedIps).toBeUndefined()
    await expect.poll(() => page.locator('#detail dl').textContent()).toContain('any IP')
  })
})
