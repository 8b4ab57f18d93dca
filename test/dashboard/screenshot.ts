// Draws docs/dashboard-rotation.png: the dashboard's rotation view after 45
// minutes of simulated traffic, half an hour into a 24-hour grace period.
// Run from the repository root: npx tsx test/dashboard/screenshot.ts
import { fileURLToPath } from 'node:url'
import { launchChromium } from './browser.js'
import { startDashboardServer } from './server.js'

const MINUTE = 60_000
const DAY = 86_400_000
const output = fileURLToPath(new URL('../../docs/dashboard-rotation.png', import.meta.url))

// The keyring's clock runs 45 minutes behind while the traffic is simulated, then catches up.
let shift = -45 * MINUTE
const server = await startDashboardServer({ clock: { now: () => Date.now() + shift } })
const { keyring } = server
const browser = await launchChromium({ viewport: { width: 1440, height: 960 } })
try {
  const created = async (tenantId: string, name: string, lifetime: number | null = null) =>
    keyring.create({ tenantId, name, scopes: ['read', 'write'], ...(lifetime === null ? {} : { expiresAt: Date.now() + shift + lifetime }) })
  await created('globex', 'ingest', 90 * DAY)
  await created('globex', 'web-frontend', 20 * DAY)
  const etl = await created('initech', 'etl-nightly', 5 * DAY)
  await created('initech', 'reporting')
  const leaked = await created('acme', 'ci-runner', 60 * DAY)
  await created('acme', 'partner-sync', 3 * DAY)
  const billing = await created('acme', 'billing-api', 90 * DAY)

  const workers = [
    { ip: '10.0.4.11', agent: 'billing-worker/3.2.1 (node 20)', migratesAt: 22 },
    { ip: '10.0.4.12', agent: 'billing-worker/3.2.1 (node 20)', migratesAt: 30 },
    { ip: '10.0.9.40', agent: 'invoice-cron/1.4 python-requests/2.31', migratesAt: Infinity },
  ]
  let next = ''
  let rotatedAtMinute = -1
  for (let minute = 0; minute < 45; minute++) {
    shift = -45 * MINUTE + minute * MINUTE
    if (minute === 15) {
      const rotated = await keyring.rotate(billing.key.id, { gracePeriod: '24h' })
      next = rotated.token
      rotatedAtMinute = minute
    }
    for (const worker of workers) {
      const requests = worker.agent.startsWith('invoice') ? 3 + (minute % 3) : 26 + ((minute * 7) % 9)
      const token = rotatedAtMinute >= 0 && minute >= worker.migratesAt ? next : billing.token
      for (let i = 0; i < requests; i++) {
        shift = -45 * MINUTE + minute * MINUTE + Math.floor((i / requests) * 55_000)
        await keyring.verify(token, { clientIp: worker.ip, userAgent: worker.agent })
      }
    }
    if (minute % 5 === 0) await keyring.verify(etl.token, { clientIp: '10.2.0.7', userAgent: 'etl/0.9' })
  }
  shift = -5 * MINUTE
  await keyring.emergencyRotate(leaked.key.id, { incidentId: 'INC-2291', reason: 'token printed in a public CI log' })
  shift = 0

  const page = await browser.context.newPage()
  await page.goto(server.page)
  await page.fill('#login-key', server.adminToken)
  await page.click('#login-submit')
  await page.locator(`#keys-body tr[data-id="${billing.key.id}"]`).waitFor()
  await page.click(`#keys-body [data-select="${billing.key.id}"] >> nth=0`)
  await page.locator('#rotation svg.chart').waitFor()
  await page.locator('#rotation table.clients').waitFor()
  await page.screenshot({ path: output })
  console.log(`wrote ${output}`)
} finally {
  await browser.close()
  await server.close()
}
