import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createCore } from '../src/app'
import { openDatabase } from '../src/storage/database'
import type { Session } from './support/app'
import { dialects } from './support/databases'
import { Client, sendFrame, startLive, type Frame, type LiveServer } from './support/ws'

const AUTH_TIMEOUT_MS = 300

describe.each(dialects)('bad input on %s', (dialect) => {
  let live: LiveServer
  beforeAll(async () => {
    live = await startLive(dialect, {
      WS_AUTH_TIMEOUT_MS: String(AUTH_TIMEOUT_MS),
    })
  })
  afterAll(() => live.close())

  const open = (session: Session) => Client.login(live.base, session)

  test('every kind of bad frame gets an error frame with the contract code and echoes; the connection stays open', async () => {
    const { a, dialogId } = await live.t.pair()
    const other = await live.t.pair()
    const foreign = await live.t.call('POST', `/dialogs/${other.dialogId}/messages`, {
      token: other.a.access_token,
      body: { client_msg_id: 'x', type: 'text', text: 'elsewhere' },
    })
    const ws = await open(a)
    const cases: [unknown, Frame][] = [
      ['not json', { code: 'bad_request' }],
      ['[1,2]', { code: 'bad_request' }],
      [{ dialog_id: dialogId }, { code: 'bad_request', details: { field: 'type' } }],
      [{ type: 'message:explode', client_msg_id: 'c-0' }, { code: 'bad_request', frame_type: 'message:explode', client_msg_id: 'c-0' }],
      [{ type: 'auth', access_token: a.access_token }, { code: 'bad_request', frame_type: 'auth' }],
      [{ type: 'message:send', dialog_id: dialogId, client_msg_id: 'c-1', msg_type: 'text' }, { code: 'validation_failed', details: { field: 'text' }, frame_type: 'message:send', client_msg_id: 'c-1' }],
      [sendFrame(dialogId, 'c-2', '   \n '), { code: 'validation_failed', details: { field: 'text' }, client_msg_id: 'c-2' }],
      [sendFrame(dialogId, 'c-3', 'é'.repeat(4001)), { code: 'validation_failed', details: { field: 'text' }, client_msg_id: 'c-3' }],
      [{ ...sendFrame(dialogId, 'c-4'), msg_type: 'video' }, { code: 'validation_failed', details: { field: 'msg_type' } }],
      [{ ...sendFrame(dialogId, 'c-5'), dialog_id: 'seven' }, { code: 'validation_failed', details: { field: 'dialog_id' } }],
      [sendFrame(dialogId, ''), { code: 'validation_failed', details: { field: 'client_msg_id' } }],
      [sendFrame(other.dialogId, 'c-6'), { code: 'not_found', client_msg_id: 'c-6' }],
      [sendFrame(987654, 'c-7'), { code: 'not_found', client_msg_id: 'c-7' }],
      // Ids are bounded as on REST (the databases' 32-bit keys): beyond, the frame is invalid, not a lookup.
      [sendFrame(2 ** 31, 'c-8'), { code: 'validation_failed', details: { field: 'dialog_id' }, client_msg_id: 'c-8' }],
      [{ type: 'message:delivered', message_id: 2 ** 53 }, { code: 'validation_failed', details: { field: 'message_id' } }],
      [{ type: 'message:read', dialog_id: dialogId, last_read_message_id: 1, read_at: 'yesterday' }, { code: 'validation_failed', details: { field: 'read_at' }, frame_type: 'message:read' }],
      [{ type: 'message:read', dialog_id: dialogId, last_read_message_id: foreign.body.id }, { code: 'validation_failed', details: { field: 'last_read_message_id' } }],
      [{ type: 'message:delivered', message_id: 987654 }, { code: 'not_found', frame_type: 'message:delivered' }],
      [{ type: 'message:delivered', message_id: foreign.body.id }, { code: 'not_found' }],
      [{ type: 'typing', dialog_id: dialogId, state: 'maybe' }, { code: 'validation_failed', details: { field: 'state' } }],
    ]
    for (const [frame, expected] of cases) {
      ws.send(frame)
      const error = await ws.next()
      expect(error).toMatchObject({ type: 'error', ...expected })
      expect(typeof error.message).toBe('string')
      if (!('frame_type' in expected) && typeof frame !== 'object') expect(error.frame_type).toBeUndefined()
    }
    ws.ws.send(new Uint8Array([123, 125]))
    expect(await ws.next()).toMatchObject({ type: 'error', code: 'bad_request' })

    // Still open and working.
    ws.send(sendFrame(dialogId, 'fine'))
    expect((await ws.next('message:ack')).client_msg_id).toBe('fine')
    const history = await live.t.call('GET', `/dialogs/${dialogId}/messages`, { token: a.access_token })
    expect(history.body.messages.map((m: { client_msg_id: string }) => m.client_msg_id)).toEqual(['fine'])
    await ws.close()
  })

  test('a frame over 64 KiB closes the connection with 1009', async () => {
    const { a, dialogId } = await live.t.pair()
    const ws = await open(a)
    ws.send(sendFrame(dialogId, 'big', 'x'.repeat(64 * 1024)))
    expect((await ws.closed).code).toBe(1009)
    // Before authentication too.
    const anon = await Client.open(`${live.base}/ws`)
    anon.send('x'.repeat(64 * 1024 + 1))
    expect((await anon.closed).code).toBe(1009)
  })

  test('auth failures: unauthorized error frame, then close 4401', async () => {
    const a = await live.t.register()
    const attempts: { url?: string; first?: unknown }[] = [
      { first: { type: 'auth', access_token: 'not-a-token' } },
      { first: { type: 'auth', access_token: a.refresh_token } },
      { first: { type: 'ping' } },
      { first: sendFrame(1, 'c-1') },
      { first: 'not json' },
      { url: `${live.base}/ws?access_token=garbage` },
    ]
    for (const attempt of attempts) {
      const ws = await Client.open(attempt.url ?? `${live.base}/ws`)
      if (attempt.first !== undefined) ws.send(attempt.first)
      expect(await ws.next()).toMatchObject({ type: 'error', code: 'unauthorized' })
      expect((await ws.closed).code).toBe(4401)
    }

    // A token of a session that logged out no longer opens a socket.
    const session = await live.t.call('POST', '/auth/login', { body: { username: a.user.username, password: 'correct horse battery' } })
    await live.t.call('POST', '/auth/logout', { body: { refresh_token: session.body.refresh_token } })
    const revoked = await Client.open(`${live.base}/ws`)
    revoked.send({ type: 'auth', access_token: session.body.access_token })
    expect(await revoked.next()).toMatchObject({ type: 'error', code: 'unauthorized' })
    expect((await revoked.closed).code).toBe(4401)
  })

  test('no auth frame within the deadline: unauthorized and 4401', async () => {
    const started = Date.now()
    const ws = await Client.open(`${live.base}/socket.io/?transport=websocket`)
    expect(await ws.next('error', 2_000)).toMatchObject({ code: 'unauthorized' })
    expect((await ws.closed).code).toBe(4401)
    expect(Date.now() - started).toBeGreaterThanOrEqual(AUTH_TIMEOUT_MS - 50)

    // An authenticated connection outlives the deadline.
    const a = await live.t.register()
    const ok = await Client.login(live.base, a)
    await Bun.sleep(AUTH_TIMEOUT_MS + 100)
    expect(await ok.drain()).toEqual([])
    await ok.close()
  })

  test('frames sent right behind auth wait for it and are answered in order', async () => {
    const { a, dialogId } = await live.t.pair()
    const ws = await Client.open(`${live.base}/ws`)
    ws.send({ type: 'auth', access_token: a.access_token })
    ws.send(sendFrame(dialogId, 'eager'))
    ws.send({ type: 'ping' })
    expect((await ws.next()).type).toBe('auth:ok')
    const rest = [await ws.next(), await ws.next()]
    expect(rest.map((f) => f.type).sort()).toEqual(['message:ack', 'pong'])
    await ws.close()
  })

  test('…also while the hub is still subscribing the connection after its token was accepted (a slow database)', async () => {
    const { a } = await live.t.pair()
    const presence = live.t.core.presence
    const links = presence.links
    presence.links = async (userId) => {
      await Bun.sleep(100)
      return links.call(presence, userId)
    }
    try {
      const ws = await Client.open(`${live.base}/ws`)
      ws.send({ type: 'auth', access_token: a.access_token })
      await Bun.sleep(50)
      ws.send({ type: 'ping' })
      expect((await ws.next()).type).toBe('auth:ok')
      expect((await ws.next()).type).toBe('pong')
      await ws.close()
    } finally {
      presence.links = links
    }
  })
})

describe.each(dialects)('rate limits on %s', (dialect) => {
  let live: LiveServer
  beforeAll(async () => {
    live = await startLive(dialect, { SEND_RATE_BURST: '5', SEND_RATE_PER_SEC: '0.01' })
  })
  afterAll(() => live.close())

  const open = (session: Session) => Client.login(live.base, session)

  test('over the send rate: rate_limited errors with retry_after, not a disconnect', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const [ws, peer] = await Promise.all([open(a), open(b)])
    for (let i = 0; i < 7; i++) ws.send(sendFrame(dialogId, `r-${i}`))
    const answers = [] as Frame[]
    while (answers.length < 7) {
      const f = await ws.next()
      if (f.type !== 'presence') answers.push(f)
    }
    expect(answers.filter((f) => f.type === 'message:ack')).toHaveLength(5)
    const limited = answers.filter((f) => f.type === 'error')
    expect(limited.map((f) => f.client_msg_id).sort()).toEqual(['r-5', 'r-6'])
    for (const f of limited) expect(f).toMatchObject({ code: 'rate_limited', frame_type: 'message:send' })
    expect(limited[0]!.retry_after).toBeGreaterThanOrEqual(1)
    expect((await ws.drain()).length).toBe(0)

    // Typing has its own, separate bucket: relayed up to its burst, the rest refused.
    for (let i = 0; i < 14; i++) ws.send({ type: 'typing', dialog_id: dialogId, state: 'start' })
    const typingAnswers = await ws.drain()
    expect(typingAnswers.length).toBeGreaterThan(0)
    for (const f of typingAnswers) expect(f).toMatchObject({ type: 'error', code: 'rate_limited', frame_type: 'typing' })
    const relayed = (await peer.drain()).filter((f) => f.type === 'typing')
    expect(relayed.length + typingAnswers.length).toBe(14)
    await Promise.all([ws.close(), peer.close()])
  })
})

/** A contract client in its own process, so the test can freeze it (SIGSTOP) and let its buffers fill. */
const FROZEN_CLIENT = `
const ws = new WebSocket(process.argv[1])
let frames = 0
ws.onmessage = (e) => { frames++; if (frames === 1) console.log('ready') }
ws.onclose = (e) => { console.log('closed ' + e.code + ' after ' + frames); process.exit(0) }
`

const slowCloses = (live: LiveServer) => Number(/chat_ws_slow_consumer_closes_total (\d+)/.exec(live.t.core.metrics.render())?.[1] ?? 0)

describe.each(dialects)('slow consumers and shutdown on %s', (dialect) => {
  let live: LiveServer
  beforeAll(async () => {
    live = await startLive(dialect, { WS_BACKPRESSURE_BYTES: String(64 * 1024), SEND_RATE_PER_SEC: '100000' })
  })
  afterAll(() => live.close())

  test('a consumer that stops reading is closed with 1013; the others keep flowing', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const child = Bun.spawn([process.execPath, '-e', FROZEN_CLIENT, `${live.base}/ws?access_token=${b.access_token}`], {
      stdout: 'pipe',
    })
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader()
    expect((await lines.read()).value).toContain('ready')
    const [sender, watcher, peerDevice] = await Promise.all([Client.login(live.base, a), Client.login(live.base, a), Client.login(live.base, b)])
    child.kill('SIGSTOP')

    // 16 KB messages until the frozen client's buffer passes the limit (kernel buffers take a few MB first).
    const text = '😀'.repeat(4000)
    let sent = 0
    while (slowCloses(live) === 0 && sent < 2_000) {
      for (let i = 0; i < 20; i++) sender.send(sendFrame(dialogId, `big-${sent++}`, text))
      for (let i = 0; i < 20; i++) await sender.next('message:ack', 10_000)
    }
    expect(slowCloses(live)).toBe(1)
    child.kill('SIGCONT')
    const closing = (await lines.read()).value ?? ''
    expect(closing).toMatch(/^closed 1013 /)
    expect(Number(/after (\d+)/.exec(closing)![1])).toBeLessThan(sent)
    await child.exited

    // The watcher (sender's other device) and the peer's live device got every message, in order.
    for (const device of [watcher, peerDevice]) {
      const seqs: number[] = []
      while (seqs.length < sent) seqs.push((await device.next('message:new', 10_000)).message.seq)
      expect(seqs).toEqual(seqs.map((_, i) => i + 1))
    }
    await Promise.all([sender.close(), watcher.close(), peerDevice.close()])
  }, 60_000)

  test('shutdown answers every frame it received, commits, then closes sockets with 1001', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const [ws, peer] = await Promise.all([Client.login(live.base, a), Client.login(live.base, b)])
    for (let i = 0; i < 50; i++) ws.send(sendFrame(dialogId, `s-${i}`))
    await ws.next('message:ack')
    await live.running.shutdown()
    const [closed, peerClosed] = await Promise.all([ws.closed, peer.closed])
    expect(closed.code).toBe(1001)
    expect(peerClosed.code).toBe(1001)

    const answered = ws.frames.filter((f) => f.type === 'message:ack' || (f.type === 'error' && f.code === 'unavailable'))
    const acked = ['s-0', ...ws.frames.filter((f) => f.type === 'message:ack').map((f) => f.client_msg_id)]
    expect(answered.length + 1).toBe(50)

    // Every acknowledged message is in the database (reopened after the shutdown closed it).
    const db = await openDatabase(live.t.core.config.database)
    const core = createCore(live.t.core.config, db)
    const stored = await core.messages.history(a.user.id, dialogId, { afterId: 0 }, 100)
    expect(stored.messages.map((m) => m.client_msg_id)).toEqual(acked)
    // …and the users who were online were last seen at the shutdown.
    const dialog = await core.dialogs.get(b.user.id, dialogId)
    expect(dialog.peer.last_seen_at).not.toBeNull()
    await db.close()
  })
})

describe.each(dialects)('frames refused by their work, and connections still authenticating, on %s', (dialect) => {
  let live: LiveServer
  beforeAll(async () => {
    live = await startLive(dialect)
  })
  afterAll(() => live.close())

  const open = (session: Session) => Client.login(live.base, session)

  // PROTOCOL.md "Errors": each frame refused as validation_failed spends one token of a budget of 50; the frame
  // that finds it empty gets its error, then close 1008. Blank text is the doc's own validation_failed example.
  test('blank-text sends (validation_failed) spend the invalid-frame budget: a flood is closed with 1008', async () => {
    const { a, dialogId } = await live.t.pair()
    // Refused by the send's own check (in its work, after the frame's shape passed).
    const ws = await open(a)
    for (let i = 0; i < 120 && ws.ws.readyState === WebSocket.OPEN; i++) ws.send(sendFrame(dialogId, `blank-${i}`, '   '))
    const closed = await Promise.race([ws.closed, Bun.sleep(3_000).then(() => ({ code: 0, reason: 'still open' }))])
    const errors = ws.frames.filter((f) => f.type === 'error' && f.code === 'validation_failed')
    expect({ code: closed.code, errors: errors.length <= 60 }).toEqual({ code: 1008, errors: true })
  })

  // PROTOCOL.md "Connecting": auth:ok is always the first frame the server sends.
  test('a dialog created while a connection is still authenticating: nothing reaches it before auth:ok', async () => {
    const { a } = await live.t.pair()
    const b = await live.t.register()
    const a1 = await open(a)
    const presence = live.t.core.presence
    const links = presence.links
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    presence.links = async (userId) => {
      const result = await links.call(presence, userId)
      if (userId === b.user.id) await gate
      return result
    }
    try {
      const b1 = await Client.open(`${live.base}/ws`)
      b1.send({ type: 'auth', access_token: b.access_token })
      await Bun.sleep(100)
      const created = await live.t.call('POST', '/dialogs', { token: a.access_token, body: { peer_user_id: b.user.id } })
      expect(created.status).toBe(201)
      a1.send(sendFrame(created.body.id, 'early'))
      await a1.next('message:ack')
      await Bun.sleep(50)
      release()
      const first = await b1.next()
      expect(first.type).toBe('auth:ok')
      await b1.close()
    } finally {
      presence.links = links
      release()
    }
    await a1.close()
  })

  // CONTRACT: presence goes to the peers when the user's first connection opens; PROTOCOL: peer.online agrees with
  // the last presence event.
  test('presence: a user whose first device drops while a second is authenticating is still announced online', async () => {
    const { a, b } = await live.t.pair()
    const watcher = await open(b)
    await watcher.drain()
    const presence = live.t.core.presence
    const links = presence.links
    presence.links = async (userId) => {
      if (userId === a.user.id) await Bun.sleep(200)
      return links.call(presence, userId)
    }
    try {
      const first = await Client.open(`${live.base}/ws`)
      first.send({ type: 'auth', access_token: a.access_token })
      await Bun.sleep(30)
      const second = await Client.open(`${live.base}/ws`)
      second.send({ type: 'auth', access_token: a.access_token })
      await Bun.sleep(30)
      await first.close()
      expect((await second.next()).type).toBe('auth:ok')
      // a is online (second device): the peer must have been told so, and the dialog says so.
      const dialog = await live.t.call('GET', '/dialogs', { token: b.access_token })
      expect(dialog.body.dialogs[0].peer.online).toBe(true)
      await Bun.sleep(100)
      const events = (await watcher.drain({ presence: true })).filter((f) => f.type === 'presence')
      expect(events.at(-1)).toMatchObject({ user_id: a.user.id, online: true })
      await second.close()
    } finally {
      presence.links = links
    }
    await watcher.close()
  })
})
