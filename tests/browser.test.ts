import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { uniqueName } from './support/app'
import { chromiumAvailable, launchChromium, signUp } from './support/browser'
import { freshDatabase, type FreshDatabase } from './support/databases'
import { freePort } from './support/ports'
import { http, startServer, type ServerProcess } from './support/server-process'

/*
 * The web app at `/` in real headless Chromium, found only by the contract's accessible names. Two people in
 * two browser contexts, against the real server process, which is killed with SIGKILL and restarted.
 * The tests run in order and share the two pages.
 */

const PASSWORD = 'correct horse battery'
const T = 30_000
/** Where the run's screenshots go (docs/screenshot.png comes from browser-more.test.ts with UPDATE_SCREENSHOT=1). */
const SCREENSHOT_DIR = join(tmpdir(), 'bun-chat-screenshots')

describe.skipIf(!chromiumAvailable)('web app in Chromium', () => {
  let db: FreshDatabase
  let server: ServerProcess
  let port: number
  let browser: Browser
  const contexts: BrowserContext[] = []
  let alice: Page
  let bob: Page
  const names = { alice: uniqueName('alice'), bob: uniqueName('bob') }
  const consoleErrors: string[] = []
  /**
   * Chromium logs every failed request as a console error. Two are the app working as specified: the 401
   * of a wrong password, and refused connections while the server is deliberately down. Only those, and
   * only during those steps, are let through.
   */
  let expected: RegExp | undefined

  const start = async () => {
    server = await startServer(db.target, { PORT: String(port) })
  }

  const newPage = async (label: string, existing?: BrowserContext) => {
    const context = existing ?? (await browser.newContext({ viewport: { width: 1100, height: 760 } }))
    if (!existing) contexts.push(context)
    const page = await context.newPage()
    page.on('console', (message) => {
      if (message.type() !== 'error') return
      const text = `${label}: ${message.text()}`
      if (expected?.test(text)) return
      consoleErrors.push(text)
    })
    page.on('pageerror', (error) => consoleErrors.push(`${label}: ${error.message}`))
    await page.goto(`http://127.0.0.1:${port}/`)
    return page
  }


  const chatItem = (page: Page, username: string) => page.getByRole('list', { name: 'Chats' }).getByRole('listitem').filter({ hasText: username })
  const log = (page: Page) => page.getByRole('log', { name: 'Messages' })
  const write = async (page: Page, text: string) => {
    await page.getByRole('textbox', { name: 'Message' }).fill(text)
    await page.getByRole('textbox', { name: 'Message' }).press('Enter')
  }

  beforeAll(async () => {
    db = await freshDatabase('sqlite')
    port = freePort()
    await start()
    browser = await launchChromium()
    alice = await newPage('alice')
    bob = await newPage('bob')
  }, 60_000)

  afterAll(async () => {
    for (const context of contexts) await context.close().catch(() => {})
    await browser?.close()
    server?.proc.kill('SIGKILL')
    await server?.exited
    await db?.drop()
  }, 30_000)

  test('a wrong password shows an alert', async () => {
    expected = /status of 401/
    await alice.getByLabel('Username').fill(names.alice)
    await alice.getByLabel('Password').fill('not the password')
    await alice.getByRole('button', { name: 'Log in' }).click()
    await alice.getByRole('alert').filter({ hasText: 'Wrong username or password' }).waitFor()
    expect(await alice.getByRole('alert').isVisible()).toBe(true)
    expected = undefined
  }, T)

  test('two people sign up, start a chat and talk live, with unread counts, ticks and typing', async () => {
    await signUp(alice, names.alice, PASSWORD)
    await signUp(bob, names.bob, PASSWORD)
    expect(await alice.getByText(names.alice, { exact: true }).first().isVisible()).toBe(true)

    await alice.getByRole('textbox', { name: 'Find user' }).fill(names.bob)
    await alice.getByRole('button', { name: 'Start chat' }).click()
    await log(alice).waitFor()
    await write(alice, 'Hello Bob!')
    const own = log(alice).locator('[data-status]').filter({ hasText: 'Hello Bob!' })
    await own.and(alice.locator('[data-status="sent"], [data-status="delivered"]')).waitFor()

    // Bob has not opened the chat: it is in his list, unread, and the message reached his device.
    await chatItem(bob, names.alice).getByLabel('1 unread').waitFor()
    await own.and(alice.locator('[data-status="delivered"]')).waitFor()

    await chatItem(bob, names.alice).getByRole('button').click()
    await log(bob).getByText('Hello Bob!').waitFor()
    await chatItem(bob, names.alice).getByLabel(/unread/).waitFor({ state: 'detached' })
    await own.and(alice.locator('[data-status="read"]')).waitFor()

    await bob.getByRole('textbox', { name: 'Message' }).pressSequentially('Hi Al', { delay: 20 })
    await alice.getByText('typing', { exact: false }).first().waitFor()
    await bob.getByRole('textbox', { name: 'Message' }).pressSequentially('ice, welcome!')
    await bob.getByRole('button', { name: 'Send' }).click()
    await log(alice).getByText('Hi Alice, welcome!').waitFor()
    await alice.getByText('typing', { exact: false }).first().waitFor({ state: 'detached' }).catch(async () => {
      expect(await alice.getByText('typing').count()).toBe(0)
    })
    await log(bob).locator('[data-status="read"]').filter({ hasText: 'Hi Alice, welcome!' }).waitFor()

  }, T)

  test('the server is killed while one person writes: "Reconnecting…", then the message arrives exactly once', async () => {
    expected = /ERR_CONNECTION_REFUSED|WebSocket connection to .* failed/
    server.proc.kill('SIGKILL')
    await server.exited
    await alice.getByRole('status').getByText('Reconnecting…').waitFor()
    await write(alice, 'Written while the server was down')
    await log(alice).getByText('Written while the server was down').waitFor()

    await start()
    const arrived = log(bob).getByText('Written while the server was down')
    await arrived.waitFor({ timeout: 20_000 })
    expected = undefined
    await alice.getByRole('status').getByText('Reconnecting…').waitFor({ state: 'detached' })
    await log(alice).locator('[data-status="read"]').filter({ hasText: 'Written while the server was down' }).waitFor()
    await write(bob, 'Got it')
    await log(alice).getByText('Got it').waitFor()
    expect(await arrived.count()).toBe(1)
    mkdirSync(SCREENSHOT_DIR, { recursive: true })
    await alice.screenshot({ path: join(SCREENSHOT_DIR, 'chat.png') })
    console.log(`screenshot: ${join(SCREENSHOT_DIR, 'chat.png')}`)
    expect(await log(alice).getByText('Written while the server was down').count()).toBe(1)

    // Dark when the system is dark.
    const background = () => alice.evaluate<string>('getComputedStyle(document.body).backgroundColor')
    const light = await background()
    await alice.emulateMedia({ colorScheme: 'dark' })
    expect(await background()).not.toBe(light)
    await alice.screenshot({ path: join(SCREENSHOT_DIR, 'chat-dark.png') })
    await alice.emulateMedia({ colorScheme: 'light' })

    // The server agrees: stored once.
    const session = JSON.parse((await bob.evaluate(() => localStorage.getItem('bun-chat.session')))!)
    const dialogs = await http(server.base, 'GET', '/dialogs', undefined, session.access_token)
    const history = await http(server.base, 'GET', `/dialogs/${dialogs.body.dialogs[0].id}/messages?limit=100`, undefined, session.access_token)
    expect(history.body.messages.map((m: { text: string }) => m.text)).toEqual(['Hello Bob!', 'Hi Alice, welcome!', 'Written while the server was down', 'Got it'])
  }, T)

  test('a reload keeps the session and the history', async () => {
    await bob.reload()
    await bob.getByRole('button', { name: 'Log out' }).waitFor()
    expect(await bob.getByText(names.bob, { exact: true }).first().isVisible()).toBe(true)
    await chatItem(bob, names.alice).getByRole('button').click()
    for (const text of ['Hello Bob!', 'Hi Alice, welcome!', 'Written while the server was down', 'Got it'])
      expect(await log(bob).getByText(text).count()).toBe(1)
    expect(await log(bob).locator('[data-status="read"]').count()).toBe(2)
  }, T)

  test('a message written while the server is down survives closing the tab, and is sent once when both are back', async () => {
    expected = /ERR_CONNECTION_REFUSED|WebSocket connection to .* failed/
    server.proc.kill('SIGKILL')
    await server.exited
    await bob.getByRole('status').getByText('Reconnecting…').waitFor()
    await write(bob, 'Kept across a reload')
    await log(bob).locator('[data-status="pending"]').filter({ hasText: 'Kept across a reload' }).waitFor()
    // The tab is closed before the server is back; opened again later, its saved outbox goes out.
    const context = bob.context()
    await bob.close()
    await start()
    bob = await newPage('bob', context)
    await log(alice).getByText('Kept across a reload').waitFor({ timeout: 20_000 })
    expected = undefined
    await chatItem(bob, names.alice).getByRole('button').click()
    await log(bob).locator('[data-status="read"]').filter({ hasText: 'Kept across a reload' }).waitFor()
    expect(await log(alice).getByText('Kept across a reload').count()).toBe(1)
    expect(await log(bob).getByText('Kept across a reload').count()).toBe(1)
  }, T)

  test('no horizontal scrolling at 390 px wide, in the list and in a chat', async () => {
    await bob.setViewportSize({ width: 390, height: 800 })
    // Evaluated in the page (a string: the tests' types have no DOM).
    const overflow = () => bob.evaluate<number>('document.documentElement.scrollWidth - document.documentElement.clientWidth')
    await log(bob).waitFor()
    await write(bob, `A long line without spaces ${'x'.repeat(300)}`)
    await log(bob).locator('[data-status]').last().waitFor()
    expect(await overflow()).toBeLessThanOrEqual(0)
    await bob.getByRole('button', { name: 'Back to chats' }).click()
    await bob.getByRole('list', { name: 'Chats' }).waitFor()
    expect(await overflow()).toBeLessThanOrEqual(0)
    await bob.screenshot({ path: join(SCREENSHOT_DIR, 'phone.png') })
  }, T)

  test('the chat list keeps the most recent activity first', async () => {
    const carol = uniqueName('carol')
    expect((await http(server.base, 'POST', '/auth/register', { username: carol, password: PASSWORD })).status).toBe(201)
    await alice.getByRole('textbox', { name: 'Find user' }).fill(carol)
    await alice.getByRole('button', { name: 'Start chat' }).click()
    const order = () => alice.getByRole('list', { name: 'Chats' }).getByRole('listitem').locator('.name').allTextContents()
    await chatItem(alice, carol).waitFor()
    expect(await order()).toEqual([carol, names.bob])
    await chatItem(bob, names.alice).getByRole('button').click()
    await write(bob, 'Me again')
    await log(alice).getByText('Me again').or(chatItem(alice, names.bob).getByText('Me again')).first().waitFor()
    expect(await order()).toEqual([names.bob, carol])
  }, T)

  test('log out ends the session, here and on the server', async () => {
    const stored = JSON.parse((await alice.evaluate(() => localStorage.getItem('bun-chat.session')))!)
    await alice.getByRole('button', { name: 'Log out' }).click()
    await alice.getByRole('button', { name: 'Log in' }).waitFor()
    expect(await alice.evaluate(() => localStorage.getItem('bun-chat.session'))).toBeNull()
    const refresh = await http(server.base, 'POST', '/auth/refresh', { refresh_token: stored.refresh_token })
    expect(refresh.status).toBe(401)
    await alice.reload()
    await alice.getByRole('button', { name: 'Log in' }).waitFor()
  }, T)

  test('no errors in the browser console', () => {
    expect(consoleErrors).toEqual([])
  })
})
