import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext } from 'playwright-core'

/** Debian's `chromium` package; `.ci/run` installs it. */
export const CHROMIUM_PATH = '/usr/bin/chromium'

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

export interface Browser {
  context: BrowserContext
  /** Closes Chromium and deletes its profile. */
  close(): Promise<void>
}

/**
 * Headless Chromium with a fresh profile, driven by playwright-core. Throws
 * (never skips) when Chromium is not installed.
 */
export async function launchChromium(options: { viewport?: { width: number; height: number }; deviceScaleFactor?: number } = {}): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`Chromium is missing at ${CHROMIUM_PATH}: install Debian's chromium package (apt-get install chromium); .ci/run installs it`)
  }
  const profile = mkdtempSync(join(tmpdir(), 'keyrot-chromium-'))
  try {
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: ARGS,
      viewport: options.viewport ?? { width: 1400, height: 900 },
      deviceScaleFactor: options.deviceScaleFactor ?? 1,
      timeout: 30_000,
    })
    return {
      context,
      async close() {
        try {
          await context.close()
        } finally {
          rmSync(profile, { recursive: true, force: true })
        }
      },
    }
  } catch (error) {
    rmSync(profile, { recursive: true, force: true })
    throw error
  }
}
