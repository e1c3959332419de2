import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { Browser, BrowserContext, CDPSession, Page } from 'playwright-core'
import { chromiumAvailable, launchChromium } from './support/browser'
import { startLive, type LiveServer } from './support/ws'

/*
 * The service worker (src/push/sw.js) in real headless Chromium: registered from the server's origin, it
 * is handed a push through the DevTools protocol (what the browser's push service would deliver, already
 * decrypted) and must show the notification the web app promises.
 */
describe.skipIf(!chromiumAvailable)('service worker in Chromium', () => {
  let live: LiveServer
  let browser: Browser
  let context: BrowserContext
  let page: Page
  let cdp: CDPSession
  let origin: string
  let registrationId: string

  beforeAll(async () => {
    live = await startLive('sqlite')
    origin = live.base.replace('ws:', 'http:')
    browser = await launchChromium()
    context = await browser.newContext()
    await context.grantPermissions(['notifications'], { origin })
    page = await context.newPage()
    // Any page of the origin can register it; the app's own page is not on this branch's server.
    await page.goto(`${origin}/push/vapid-public-key`)
    cdp = await context.newCDPSession(page)
    const registered = new Promise<string>((resolve) =>
      cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations }) => {
        const ours = registrations.find((r) => r.scopeURL === `${origin}/` && !r.isDeleted)
        if (ours) resolve(ours.registrationId)
      }),
    )
    await cdp.send('ServiceWorker.enable')
    // Page code as strings: these tests type-check without the DOM library.
    await page.evaluate(`(async () => {
      await navigator.serviceWorker.register('/push/sw.js', { scope: '/' })
      await navigator.serviceWorker.ready
    })()`)
    registrationId = await registered
  }, 30_000)

  afterAll(async () => {
    await browser?.close()
    await live?.close()
  })

  const push = async (data: unknown) => {
    const text = typeof data === 'string' ? data : JSON.stringify(data)
    await cdp.send('ServiceWorker.deliverPushMessage', { origin: `${origin}/`, registrationId, data: text })
  }
  type Shown = { title: string; body: string; tag: string; data: { dialog_id?: number; message_id?: number } }
  const notifications = () =>
    page.evaluate<Shown[]>(`(async () =>
      (await (await navigator.serviceWorker.ready).getNotifications()).map((n) => ({ title: n.title, body: n.body, tag: n.tag, data: n.data }))
    )()`)
  const until = async <T>(read: () => Promise<T>, ok: (value: T) => boolean): Promise<T> => {
    let value = await read()
    for (let i = 0; i < 100 && !ok(value); i++) {
      await Bun.sleep(50)
      value = await read()
    }
    return value
  }

  /**
   * Delivers the pushes, in order, again each second until the notifications pass `ok`: DevTools' delivery
   * to a worker Chromium has just stopped for idleness is sometimes lost (about one run in five here),
   * which is the harness's loss, not the worker's. Each round is the same pushes, so what is shown at the
   * end is what these pushes show.
   */
  const deliverUntil = async (pushes: unknown[], ok: (list: Shown[]) => boolean): Promise<Shown[]> => {
    let tries = 0
    return until(async () => {
      if (tries++ % 20 === 0) for (const data of pushes) await push(data)
      return notifications()
    }, ok)
  }

  const payload = (dialogId: number, messageId: number, preview: string) => ({
    type: 'message:new',
    dialog_id: dialogId,
    message_id: messageId,
    seq: 1,
    sender: { id: 1, username: 'alice' },
    preview,
  })

  test('a push shows the sender and the preview, one notification per chat, the newest replacing the last', async () => {
    const shown = await deliverUntil(
      [payload(7, 41, 'first'), payload(7, 42, 'hello there'), payload(8, 43, '')],
      (list) => list.length === 2 && list.some((n) => n.data?.message_id === 42) && list.some((n) => n.data?.message_id === 43),
    )
    expect(shown.sort((a, b) => a.tag.localeCompare(b.tag))).toEqual([
      { title: 'alice', body: 'hello there', tag: 'dialog-7', data: { dialog_id: 7, message_id: 42 } },
      // With previews off the notification says only who wrote.
      { title: 'alice', body: 'Sent you a message', tag: 'dialog-8', data: { dialog_id: 8, message_id: 43 } },
    ])
  }, 20_000)

  test('a push that is not a message is still shown (browsers require every push to be seen)', async () => {
    const shown = await deliverUntil(['not json'], (list) => list.some((n) => n.tag === 'chat'))
    expect(shown.find((n) => n.tag === 'chat')).toEqual({ title: 'New message', body: 'Sent you a message', tag: 'chat', data: {} })
  }, 20_000)
})
