import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import type { Server } from 'bun'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { uniqueName } from './support/app'
import { chromiumAvailable, launchChromium } from './support/browser'
import { freshDatabase, type FreshDatabase } from './support/databases'
import { http, startServer, type ServerProcess } from './support/server-process'

/*
 * The Socket.IO issue's "a page using socket.io-client from the npm package, written only from the README,
 * chats through our server": a static page on another origin (a second server, another port) loads the
 * browser bundle shipped in node_modules/socket.io-client and uses it as the README's snippet does —
 * `io(url, { auth: { access_token } })`, frame types as event names, answers through the ack callback. Two
 * such pages in two browser contexts, as two users registered over REST, talk in a dialog made over REST.
 * The client's default transports are kept: it long-polls first (cross-origin, so CORS at the default
 * CORS_ORIGINS=* is exercised) and upgrades to a WebSocket.
 */

const PASSWORD = 'correct horse battery'
const T = 20_000
const BUNDLE = join(import.meta.dir, '..', 'node_modules', 'socket.io-client', 'dist', 'socket.io.min.js')

/**
 * The page, as someone would write it from the README: the bundle by a script tag (it defines `io`), the
 * server's address and the access token from the page's fragment (never sent to the page's server). What it
 * receives is kept on `window.chat` for the test to read.
 */
const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>socket.io-client page</title>
<link rel="icon" href="data:,">
<script src="/socket.io.min.js"></script>
</head>
<body>
<script>
const params = new URLSearchParams(location.hash.slice(1))
const access_token = params.get('token')
const chat = (window.chat = { userId: null, received: [], errors: [], firstTransport: null, upgradedTo: null })

const socket = io(params.get('server'), { auth: { access_token } })
chat.socket = socket
socket.io.on('open', () => {
  chat.firstTransport = socket.io.engine.transport.name
  socket.io.engine.on('upgrade', (transport) => (chat.upgradedTo = transport.name))
})
socket.on('auth:ok', ({ user_id }) => (chat.userId = user_id))
socket.on('message:new', ({ message }) => chat.received.push(message))
socket.on('error', (error) => chat.errors.push(error))
socket.on('connect_error', (error) => chat.errors.push({ connect_error: error.message }))

/** As the README: the answer of message:send through emitWithAck (a promise over the ack callback). */
chat.sendWithAck = (dialog_id, text) =>
  socket.emitWithAck('message:send', { dialog_id, client_msg_id: crypto.randomUUID(), msg_type: 'text', text })

/** The same with a plain callback: socket.emit(event, payload, callback). */
chat.sendWithCallback = (dialog_id, text) =>
  new Promise((resolve) =>
    socket.emit('message:send', { dialog_id, client_msg_id: crypto.randomUUID(), msg_type: 'text', text }, resolve),
  )
</script>
</body>
</html>
`

interface PollingExchange {
  method: string
  status: number
  allowOrigin: string | undefined
}

describe.skipIf(!chromiumAvailable)('socket.io-client from npm, in a page on another origin, in Chromium', () => {
  let db: FreshDatabase
  let server: ServerProcess
  let site: Server<undefined>
  let browser: Browser
  const contexts: BrowserContext[] = []
  const problems: string[] = []
  const polling: Record<string, PollingExchange[]> = {}
  const users = {} as Record<'alice' | 'bob', { id: number; token: string; page?: Page }>
  let dialogId = 0

  /** A browser context of its own, the page loaded, everything going wrong recorded. */
  const open = async (label: 'alice' | 'bob') => {
    const context = await browser.newContext()
    contexts.push(context)
    const page = await context.newPage()
    polling[label] = []
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`${label} console: ${message.text()}`)
    })
    page.on('pageerror', (error) => problems.push(`${label} page error: ${error.message}`))
    page.on('requestfailed', (request) => problems.push(`${label} request failed: ${request.method()} ${request.url()} ${request.failure()?.errorText}`))
    page.on('response', (response) => {
      const url = new URL(response.url())
      if (url.pathname !== '/socket.io/' || url.searchParams.get('transport') !== 'polling') return
      polling[label]!.push({ method: response.request().method(), status: response.status(), allowOrigin: response.headers()['access-control-allow-origin'] })
    })
    const fragment = new URLSearchParams({ server: `http://${server.base}`, token: users[label].token })
    await page.goto(`http://127.0.0.1:${site.port}/#${fragment}`)
    users[label].page = page
    return page
  }

  const chatOf = (page: Page) => page.evaluate(() => {
    const { socket: _, ...state } = (globalThis as any).chat
    return state as { userId: number | null; received: any[]; errors: unknown[]; firstTransport: string | null; upgradedTo: string | null }
  })
  /** `work` within `ms`, else a failure that says what went wrong in the pages. */
  const within = async <R>(what: string, work: Promise<R>, ms = 5_000): Promise<R> => {
    let timer: Timer | undefined
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms; in the pages: ${JSON.stringify(problems)}`)), ms)
    })
    try {
      return await Promise.race([work, late])
    } finally {
      clearTimeout(timer)
    }
  }
  const transportOf = (page: Page) => page.evaluate(() => (globalThis as any).chat.socket.io.engine.transport.name as string)

  beforeAll(async () => {
    db = await freshDatabase('sqlite')
    // CORS_ORIGINS at its default, `*` (empty reads as unset; it also overrides one this process may carry).
    server = await startServer(db.target, { CORS_ORIGINS: '' })
    const bundle = await Bun.file(BUNDLE).bytes()
    site = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch(request) {
        const { pathname } = new URL(request.url)
        if (pathname === '/') return new Response(PAGE, { headers: { 'content-type': 'text/html; charset=utf-8' } })
        if (pathname === '/socket.io.min.js') return new Response(bundle, { headers: { 'content-type': 'text/javascript; charset=utf-8' } })
        return new Response('not found', { status: 404 })
      },
    })
    expect(String(site.port)).not.toBe(server.base.split(':')[1])
    for (const label of ['alice', 'bob'] as const) {
      const { status, body } = await http(server.base, 'POST', '/auth/register', { username: uniqueName(label), password: PASSWORD })
      expect(status).toBe(201)
      users[label] = { id: body.user.id, token: body.access_token }
    }
    const dialog = await http(server.base, 'POST', '/dialogs', { peer_user_id: users.bob.id }, users.alice.token)
    expect(dialog.status).toBe(201)
    dialogId = dialog.body.id
    browser = await launchChromium()
  }, 30_000)

  afterAll(async () => {
    for (const context of contexts) await context.close().catch(() => {})
    await browser?.close()
    site?.stop(true)
    server?.proc.kill('SIGKILL')
    await server?.exited
    await db?.drop()
  }, 20_000)

  test('each page connects with auth, long-polls cross-origin, then upgrades to a WebSocket', async () => {
    const [alice, bob] = [await open('alice'), await open('bob')]
    for (const [label, page] of [['alice', alice], ['bob', bob]] as const) {
      await within(`${label}: auth:ok`, page.waitForFunction(() => (globalThis as any).chat.userId !== null))
      await within(`${label}: upgrade`, page.waitForFunction(() => (globalThis as any).chat.socket.io.engine.transport.name === 'websocket'))
      const state = await chatOf(page)
      expect(state.userId).toBe(users[label].id)
      expect(state.firstTransport).toBe('polling')
      expect(state.upgradedTo).toBe('websocket')
      expect(state.errors).toEqual([])
      expect(await transportOf(page)).toBe('websocket')
      // The handshake GET and the CONNECT POST went cross-origin and were let through by CORS `*`.
      const exchanges = polling[label]!
      expect(exchanges.some((e) => e.method === 'GET' && e.status === 200)).toBe(true)
      expect(exchanges.some((e) => e.method === 'POST' && e.status === 200)).toBe(true)
      for (const exchange of exchanges) expect(exchange).toEqual({ method: exchange.method, status: 200, allowOrigin: '*' })
    }
    expect(problems).toEqual([])
  }, T)

  test('a message:send is answered through the ack; the other page gets message:new; and back', async () => {
    const alice = users.alice.page!
    const bob = users.bob.page!

    const ack = await within('the ack', alice.evaluate(([id, text]) => (globalThis as any).chat.sendWithAck(id, text), [dialogId, 'Hello from a page'] as const))
    expect(ack.error).toBeUndefined()
    expect(ack.client_msg_id).toEqual(expect.any(String))
    expect(ack.message).toMatchObject({ dialog_id: dialogId, sender_id: users.alice.id, text: 'Hello from a page', client_msg_id: ack.client_msg_id, seq: 1 })
    await within('message:new at bob', bob.waitForFunction(() => (globalThis as any).chat.received.length > 0))
    expect((await chatOf(bob)).received).toEqual([ack.message])

    const reply = await within('the callback', bob.evaluate(([id, text]) => (globalThis as any).chat.sendWithCallback(id, text), [dialogId, 'Hello back'] as const))
    expect(reply.error).toBeUndefined()
    expect(reply.message).toMatchObject({ dialog_id: dialogId, sender_id: users.bob.id, text: 'Hello back', seq: 2 })
    await within('message:new at alice', alice.waitForFunction(() => (globalThis as any).chat.received.length > 0))
    // The sending connection gets the ack, not its own message:new (there are no other connections).
    expect((await chatOf(alice)).received).toEqual([reply.message])
    expect((await chatOf(bob)).received).toEqual([ack.message])

    for (const page of [alice, bob]) {
      expect(await transportOf(page)).toBe('websocket')
      expect((await chatOf(page)).errors).toEqual([])
    }
    expect(problems).toEqual([])
  }, T)
})
