import { existsSync } from 'node:fs'
import { chromium, type Browser, type Page } from 'playwright-core'

/** The system Chromium (Debian's package; `.ci/run` installs it when missing). */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const inCI = process.env.CI === 'true' || process.env.CI === '1'

/** Whether the browser tests run: in CI a missing Chromium is a failure, elsewhere a loud skip. */
export const chromiumAvailable = existsSync(CHROMIUM_PATH)
if (!chromiumAvailable) {
  if (inCI) throw new Error(`CI=true but Chromium is not at ${CHROMIUM_PATH}: the browser tests cannot run`)
  console.warn(
    `\n!!!!!!!!\n!!! Chromium not found at ${CHROMIUM_PATH} (set CHROMIUM_PATH): SKIPPING the browser tests.\n!!!!!!!!\n`,
  )
}

/**
 * Headless Chromium with nothing of its own going on (no updates, sync, QUIC or background fetches). Each
 * `launch()` runs on a fresh temporary profile, which Playwright creates and removes.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
}

/** A port free right now, so that a server can be restarted on the same address. */
export function freePort(): number {
  const probe = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response() })
  const port = probe.port!
  probe.stop(true)
  return port
}

/** Signs up through the web app's form, found by its accessible names; resolves once signed in. */
export async function signUp(page: Page, username: string, password: string): Promise<void> {
  await page.getByLabel('Username').fill(username)
  await page.getByLabel('Password').fill(password)
  await page.getByRole('button', { name: 'Sign up' }).click()
  await page.getByRole('button', { name: 'Log out' }).waitFor()
}
