import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { expectContractError, type Session } from './support/app'
import { dialects } from './support/databases'
import { rawRequest } from './support/raw-http'
import { Client, sendFrame, startLive, type Frame, type LiveServer } from './support/ws'

/*
 * One regression test per defect an attack run found (issue #13), each named after it. They drive the real
 * listening server (raw TCP where a header must be what no well-behaved client sends).
 */

describe.each(dialects)('hostile clients on %s', (dialect) => {
  let live: LiveServer
  let a: Session
  let b: Session
  let dialogId: number
  let messageId: number

  beforeAll(async () => {
    live = await startLive(dialect)
    ;({ a, b, dialogId } = await live.t.pair())
    const sent = await live.t.call('POST', `/dialogs/${dialogId}/messages`, {
      token: b.access_token,
      body: { client_msg_id: 'first', type: 'text', text: 'hello' },
    })
    messageId = sent.body.id
  })
  afterAll(() => live.close())

  test('#13.1 timestamps outside years 0001–9999 in UTC are 422 in bodies, queries and frames; the bounds themselves are fine', async () => {
    const outside = [
      '0000-12-31T23:59:59Z',
      '9999-12-31T23:59:59-23:59', // year 10000 in UTC
      '0001-01-01T00:00:00+00:01', // year 0000 in UTC
      '0001-01-01T00:30:00+01:00',
    ]
    const token = a.access_token
    for (const at of outside) {
      expectContractError(
        await live.t.call('POST', `/dialogs/${dialogId}/read_up_to`, { token, body: { last_read_message_id: messageId, read_at: at } }),
        422,
        'validation_failed',
        'read_at',
      )
      const q = encodeURIComponent(at)
      expectContractError(await live.t.call('GET', `/dialogs?before=${q}`, { token }), 422, 'validation_failed', 'before')
      expectContractError(await live.t.call('GET', `/dialogs/${dialogId}/messages?before=${q}`, { token }), 422, 'validation_failed', 'before')
    }
    const ws = await Client.login(live.base, a)
    for (const at of outside) {
      ws.send({ type: 'message:read', dialog_id: dialogId, last_read_message_id: messageId, read_at: at })
      expect(await ws.next('error')).toMatchObject({ code: 'validation_failed', details: { field: 'read_at' } })
      ws.send({ type: 'message:delivered', message_id: messageId, delivered_at: at })
      expect(await ws.next('error')).toMatchObject({ code: 'validation_failed', details: { field: 'delivered_at' } })
    }
    // The first and last representable instants are ordinary timestamps.
    for (const at of ['0001-01-01T00:00:00Z', '9999-12-31T23:59:59.999Z', '9999-12-31T23:59:59+23:59', '0001-01-01T00:00:00-23:59']) {
      const q = encodeURIComponent(at)
      expect((await live.t.call('GET', `/dialogs?before=${q}`, { token })).status).toBe(200)
      expect((await live.t.call('GET', `/dialogs/${dialogId}/messages?before=${q}`, { token })).status).toBe(200)
    }
    ws.send({ type: 'message:delivered', message_id: messageId, delivered_at: '0001-01-01T00:00:00Z' })
    expect(await ws.drain()).toEqual([])
    await ws.close()
    // Still sending: nothing poisoned.
    const after = await live.t.call('POST', `/dialogs/${dialogId}/messages`, { token, body: { client_msg_id: 'ts-after', type: 'text', text: 'x' } })
    expect(after.status).toBe(201)
  })

  test('#13.1 bad receipts sent together with messages (one write batch) never cost those messages their message:new', async () => {
    const [sender, watcher] = await Promise.all([Client.login(live.base, a), Client.login(live.base, b)])
    // One burst: the frames arrive in one event-loop turn, so the sends and receipts meet in one batch.
    for (let i = 0; i < 5; i++) {
      sender.send(sendFrame(dialogId, `batch-${i}`))
      sender.send({ type: 'message:read', dialog_id: dialogId, last_read_message_id: messageId, read_at: '9999-12-31T23:59:59-23:59' })
      sender.send({ type: 'message:delivered', message_id: messageId, delivered_at: '0000-06-01T00:00:00Z' })
    }
    const acks: string[] = []
    while (acks.length < 5) acks.push((await sender.next('message:ack')).message.client_msg_id)
    expect(acks.sort()).toEqual([0, 1, 2, 3, 4].map((i) => `batch-${i}`))
    const published: string[] = []
    while (published.length < 5) published.push((await watcher.next('message:new')).message.client_msg_id)
    expect(published.sort()).toEqual(acks)
    expect(sender.frames.filter((f) => f.type === 'error').map((f) => f.code)).toEqual(Array(10).fill('validation_failed'))
    await Promise.all([sender.close(), watcher.close()])
  })

  test('#13.2 a Host of 3 characters or fewer routes like any other; Host: x with /abc/metrics does not serve /metrics', async () => {
    const port = live.running.server.port!
    // Also Hosts Bun cannot use at all (it then hands on the bare path as the URL), and one no URL parser takes.
    for (const host of ['x', 'ab', 'api', 'web', 'app', 'x:1', 'a:80', '[::1]', 'localhost', '', 'a b', 'x/y', '@', 'user@host', 'éé', '$$$]']) {
      const health = await rawRequest(port, `GET /health HTTP/1.1\r\nHost: ${host}`)
      expect({ host, status: health?.status, body: health?.json }).toEqual({ host, status: 200, body: { status: 'ok' } })
      const me = await rawRequest(port, `GET /me HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${a.access_token}`)
      expect({ host, status: me?.status, id: me?.json?.id }).toEqual({ host, status: 200, id: a.user.id })
      const body = JSON.stringify({ client_msg_id: `host-${host}`, type: 'text', text: 'hi' })
      const sent = await rawRequest(
        port,
        `POST /dialogs/${dialogId}/messages HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${a.access_token}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}`,
        body,
      )
      expect({ host, status: sent?.status }).toEqual({ host, status: 201 })
      // The path is the path: a prefix never gets cut off into another route.
      for (const path of ['/abc/metrics', '/abcd/health', '/x/me']) {
        const res = await rawRequest(port, `GET ${path} HTTP/1.1\r\nHost: ${host}`)
        expect({ host, path, status: res?.status, code: res?.json?.error?.code }).toEqual({ host, path, status: 404, code: 'not_found' })
        expect(res!.text).not.toContain('chat_')
      }
    }
    // WebSocket upgrades route alike.
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers: { host: 'x/y' } } as unknown as string[])
    const opened = await new Promise<boolean>((resolve) => {
      ws.onopen = () => resolve(true)
      ws.onerror = () => resolve(false)
    })
    expect(opened).toBe(true)
    ws.close()
  })

  test('#13.4 bodies of any size over the limit get the contract JSON 413, announced, sent or chunked', async () => {
    const port = live.running.server.port!
    const post = (path: string, headers: string) => `POST ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n${headers}`
    const expect413 = (res: Awaited<ReturnType<typeof rawRequest>>) => {
      expect({ status: res?.status, type: res?.headers['content-type'], code: res?.json?.error?.code }).toEqual({
        status: 413,
        type: 'application/json; charset=utf-8',
        code: 'payload_too_large',
      })
    }
    for (const size of [70_000, 300_000, 2 * 1024 * 1024]) {
      const body = JSON.stringify({ username: 'someone', password: 'x'.repeat(size) })
      expect413(await rawRequest(port, post('/auth/login', `Content-Length: ${body.length}`), body))
      // Chunked: no length announced, the limit is found while reading.
      const chunked = `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`
      expect413(await rawRequest(port, post('/auth/login', 'Transfer-Encoding: chunked'), chunked))
    }
    // A length announced and never sent is refused at once, without waiting for the bytes.
    expect413(await rawRequest(port, post('/auth/login', 'Content-Length: 1000000000000'), '{}', 2_000))
    expect413(await rawRequest(port, post(`/dialogs/${dialogId}/messages`, `Authorization: Bearer ${a.access_token}\r\nContent-Length: 500000`), '{}', 2_000))
    // The server is fine afterwards.
    expect((await rawRequest(port, 'GET /health HTTP/1.1\r\nHost: localhost'))?.status).toBe(200)
  })

  test('#13.5 client_msg_id is 1–64 characters (code points), not UTF-16 units, on REST and WebSocket', async () => {
    const id64 = '😀'.repeat(63) + 'é'
    const id65 = '😀'.repeat(65)
    const token = a.access_token
    const send = (client_msg_id: string) => live.t.call('POST', `/dialogs/${dialogId}/messages`, { token, body: { client_msg_id, type: 'text', text: 'x' } })
    const sent = await send(id64)
    expect(sent.status).toBe(201)
    expect(sent.body.client_msg_id).toBe(id64)
    expect((await send(id64)).status).toBe(200)
    expectContractError(await send(id65), 422, 'validation_failed', 'client_msg_id')

    const ws = await Client.login(live.base, a)
    const wsId = '🙂'.repeat(64)
    ws.send(sendFrame(dialogId, wsId))
    expect((await ws.next('message:ack')).message.client_msg_id).toBe(wsId)
    ws.send(sendFrame(dialogId, '🙂'.repeat(65)))
    expect(await ws.next('error')).toMatchObject({ code: 'validation_failed', details: { field: 'client_msg_id' } })
    // An error about a 64-character id echoes it, so the client can match it to its pending send.
    ws.send(sendFrame(987654, wsId))
    expect(await ws.next('error')).toMatchObject({ code: 'not_found', client_msg_id: wsId })
    await ws.close()
  })

  test('#13.6 CORS: with CORS_ORIGINS=* any origin gets * without credentials; a list echoes (with credentials) only its origins', async () => {
    const cors = (res: { headers: Headers }) => ({
      origin: res.headers.get('access-control-allow-origin'),
      credentials: res.headers.get('access-control-allow-credentials'),
    })
    const preflight = { 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' }
    // The Socket.IO endpoint's long-polling requests (a listening server's own fetch, outside the app).
    const socketIo = (base: string, origin: string, method = 'GET') =>
      fetch(`${base.replace('ws://', 'http://')}/socket.io/?EIO=4&transport=polling`, {
        method,
        headers: method === 'OPTIONS' ? { origin, ...preflight } : { origin },
      })
    for (const origin of ['https://evil.example', 'null', 'http://localhost:3000']) {
      expect(cors(await live.t.call('GET', '/health', { headers: { origin } }))).toEqual({ origin: '*', credentials: null })
      expect(cors(await live.t.call('OPTIONS', '/auth/login', { headers: { origin, ...preflight } }))).toEqual({ origin: '*', credentials: null })
      expect(cors(await socketIo(live.base, origin))).toEqual({ origin: '*', credentials: null })
      expect(cors(await socketIo(live.base, origin, 'OPTIONS'))).toEqual({ origin: '*', credentials: null })
    }
    const listed = await startLive(dialect, { CORS_ORIGINS: 'https://app.example,https://admin.example' })
    try {
      for (const origin of ['https://app.example', 'https://evil.example', 'null']) {
        const expected = origin === 'https://app.example' ? { origin, credentials: 'true' } : { origin: null, credentials: null }
        expect(cors(await socketIo(listed.base, origin))).toEqual(expected)
        expect(cors(await socketIo(listed.base, origin, 'OPTIONS'))).toEqual(expected)
      }
      for (const origin of ['https://app.example', 'https://admin.example']) {
        expect(cors(await listed.t.call('GET', '/health', { headers: { origin } }))).toEqual({ origin, credentials: 'true' })
        const pre = await listed.t.call('OPTIONS', '/auth/login', { headers: { origin, ...preflight } })
        expect(cors(pre)).toEqual({ origin, credentials: 'true' })
      }
      for (const origin of ['https://evil.example', 'null', 'http://app.example', 'https://app.example.evil.example']) {
        expect(cors(await listed.t.call('GET', '/health', { headers: { origin } })).origin).toBeNull()
        expect(cors(await listed.t.call('OPTIONS', '/auth/login', { headers: { origin, ...preflight } })).origin).toBeNull()
      }
    } finally {
      await listed.close()
    }
  })

  test('#13.7 only canonical base64url tokens verify: padding or a twin last character is 401, and a padded refresh token is not reuse', async () => {
    const session = await live.t.register()
    // Same bytes, another spelling: the last character of a 43-character signature carries 2 unused bits.
    const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    const twin = (token: string) => {
      const last = B64.indexOf(token.at(-1)!)
      return token.slice(0, -1) + B64[last ^ 1]
    }
    const variants = (token: string) => [token + '=', token + '==', twin(token), token.replace('.', '=.')]
    for (const bad of variants(session.access_token))
      expectContractError(await live.t.call('GET', '/me', { token: bad }), 401, 'unauthorized')
    for (const bad of variants(session.refresh_token)) {
      expectContractError(await live.t.call('POST', '/auth/refresh', { body: { refresh_token: bad } }), 401, 'unauthorized')
      expectContractError(await live.t.call('POST', '/auth/logout', { body: { refresh_token: bad } }), 401, 'unauthorized')
    }
    const ws = await Client.open(`${live.base}/ws`)
    ws.send({ type: 'auth', access_token: session.access_token + '=' })
    expect((await ws.closed).code).toBe(4401)
    // None of that touched the session: its tokens still work, and its refresh token rotates once.
    expect((await live.t.call('GET', '/me', { token: session.access_token })).status).toBe(200)
    expect((await live.t.call('POST', '/auth/refresh', { body: { refresh_token: session.refresh_token } })).status).toBe(200)
  })

  test('#13.8 usernames compare ASCII-lowercased: the Kelvin sign reaches nobody; login refuses what register refuses', async () => {
    const name = `k${Math.random().toString(36).slice(2, 10)}`
    const owner = await live.t.register(name, 'correct horse battery')
    const kelvin = '\u212A' + name.slice(1)
    expect(kelvin.toLowerCase()).toBe(name)
    expectContractError(
      await live.t.call('POST', '/auth/login', { body: { username: kelvin, password: 'correct horse battery' } }),
      422,
      'validation_failed',
      'username',
    )
    expectContractError(await live.t.call('POST', '/auth/register', { body: { username: kelvin, password: 'correct horse battery' } }), 422, 'validation_failed', 'username')
    for (const query of [`username=${encodeURIComponent(kelvin)}`, `q=${encodeURIComponent(kelvin)}`])
      expect((await live.t.call('GET', `/users?${query}`, { token: a.access_token })).body).toEqual({ users: [] })
    // ASCII case still folds.
    expect((await live.t.call('POST', '/auth/login', { body: { username: name.toUpperCase(), password: 'correct horse battery' } })).status).toBe(200)
    expect((await live.t.call('GET', `/users?username=${name.toUpperCase()}`, { token: a.access_token })).body).toEqual({ users: [owner.user] })
  })

  test('#13.9 "__proto__" in a body or frame is an ordinary key, ignored: it never supplies fields', async () => {
    const token = a.access_token
    const peer = await live.t.register()
    const raw = (obj: string) => ({ token, raw: obj })
    expectContractError(await live.t.call('POST', '/dialogs', raw(`{"__proto__": {"peer_user_id": ${peer.user.id}}}`)), 422, 'validation_failed', 'peer_user_id')
    expectContractError(
      await live.t.call('POST', '/auth/register', { raw: `{"username": "proto_${Date.now() % 1e6}", "__proto__": {"password": "correct horse battery"}}` }),
      422,
      'validation_failed',
      'password',
    )
    // Escaped spelling, nested: still just a key.
    expectContractError(
      await live.t.call('POST', `/dialogs/${dialogId}/messages`, raw(`{"client_msg_id": "p1", "type": "text", "\\u005f_proto__": {"text": "smuggled"}}`)),
      422,
      'validation_failed',
      'text',
    )
    // Beside the real fields it changes nothing.
    const opened = await live.t.call('POST', '/dialogs', raw(`{"peer_user_id": ${peer.user.id}, "__proto__": {"peer_user_id": 1, "x": {"__proto__": null}}}`))
    expect(opened.status).toBe(201)
    expect(opened.body.peer.id).toBe(peer.user.id)

    const ws = await Client.login(live.base, a)
    ws.send(`{"type": "message:send", "client_msg_id": "p2", "msg_type": "text", "text": "t", "__proto__": {"dialog_id": ${dialogId}}}`)
    expect(await ws.next('error')).toMatchObject({ code: 'validation_failed', details: { field: 'dialog_id' } })
    ws.send(`{"__proto__": {"type": "ping"}}`)
    expect(await ws.next('error')).toMatchObject({ code: 'bad_request', details: { field: 'type' } })
    ws.send(`{"type": "ping", "__proto__": {"type": "auth"}}`)
    expect(await ws.next()).toEqual({ type: 'pong' })
    await ws.close()
  })

  test('#13.10 body ids are JSON integers; path and query ids are canonical decimal digits', async () => {
    const token = a.access_token
    const peer = await live.t.register()
    for (const peer_user_id of [String(peer.user.id), `${peer.user.id}.5`, [peer.user.id], { id: peer.user.id }, true, null])
      expectContractError(await live.t.call('POST', '/dialogs', { token, body: { peer_user_id } }), 422, 'validation_failed', 'peer_user_id')
    expectContractError(
      await live.t.call('POST', `/dialogs/${dialogId}/read_up_to`, { token, body: { last_read_message_id: String(messageId) } }),
      422,
      'validation_failed',
      'last_read_message_id',
    )
    const noncanonical = (id: number) => [`0${id}`, `+${id}`, `${id}.0`, `${id}e0`, `0x${id.toString(16)}`, `%20${id}`, `${id}%20`, `${id}%00`, '']
    for (const spelled of noncanonical(dialogId)) {
      if (spelled !== '') {
        expectContractError(await live.t.call('GET', `/dialogs/${spelled}`, { token }), 422, 'validation_failed', 'dialog_id')
        expectContractError(await live.t.call('GET', `/dialogs/${spelled}/messages`, { token }), 422, 'validation_failed', 'dialog_id')
        expectContractError(
          await live.t.call('POST', `/dialogs/${spelled}/messages`, { token, body: { client_msg_id: 'nc', type: 'text', text: 'x' } }),
          422,
          'validation_failed',
          'dialog_id',
        )
      }
    }
    for (const spelled of noncanonical(messageId)) {
      for (const key of ['before_id', 'after_id'])
        expectContractError(await live.t.call('GET', `/dialogs/${dialogId}/messages?${key}=${spelled}`, { token }), 422, 'validation_failed', key)
    }
    // The canonical spellings still work, after_id=0 included.
    expect((await live.t.call('POST', '/dialogs', { token, body: { peer_user_id: peer.user.id } })).status).toBe(201)
    expect((await live.t.call('GET', `/dialogs/${dialogId}`, { token })).status).toBe(200)
    expect((await live.t.call('GET', `/dialogs/${dialogId}/messages?after_id=0`, { token })).status).toBe(200)
    expect((await live.t.call('GET', `/dialogs/${dialogId}/messages?before_id=${messageId}`, { token })).status).toBe(200)
  })
})

describe.each(dialects)('hostile connections on %s', (dialect) => {
  let live: LiveServer
  beforeAll(async () => {
    live = await startLive(dialect, { SEND_RATE_BURST: '6', SEND_RATE_PER_SEC: '0.01', WS_MAX_CONNECTIONS_PER_USER: '3' })
  })
  afterAll(() => live.close())

  test('#13.3 the send bucket is per user across all its connections (and REST); connections per user are capped, over it → close 4429', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const devices = await Promise.all([0, 1, 2].map(() => Client.login(live.base, a)))
    devices.forEach((ws, d) => [0, 1, 2].forEach((i) => ws.send(sendFrame(dialogId, `d${d}-${i}`))))
    const answersOf = async (ws: Client) => {
      const got: Frame[] = []
      while (got.length < 3) {
        const f = await ws.next()
        if (f.type === 'message:ack' || f.type === 'error') got.push(f)
      }
      return got
    }
    const answers = (await Promise.all(devices.map(answersOf))).flat()
    expect(answers.filter((f) => f.type === 'message:ack')).toHaveLength(6)
    const limited = answers.filter((f) => f.type === 'error')
    expect(limited).toHaveLength(3)
    for (const f of limited) expect(f).toMatchObject({ code: 'rate_limited', frame_type: 'message:send' })
    // REST draws on the same bucket.
    const rest = await live.t.call('POST', `/dialogs/${dialogId}/messages`, { token: a.access_token, body: { client_msg_id: 'rest', type: 'text', text: 'x' } })
    expectContractError(rest, 429, 'rate_limited')
    // Another user has a bucket of their own.
    expect((await live.t.call('POST', `/dialogs/${dialogId}/messages`, { token: b.access_token, body: { client_msg_id: 'b', type: 'text', text: 'x' } })).status).toBe(201)

    // A fourth connection of the same user is refused, with a frame saying why and close code 4429.
    const fourth = await Client.open(`${live.base}/ws`)
    fourth.send({ type: 'auth', access_token: a.access_token })
    expect(await fourth.next()).toMatchObject({ type: 'error', code: 'rate_limited', frame_type: 'auth' })
    expect((await fourth.closed).code).toBe(4429)
    const byQuery = await Client.open(`${live.base}/ws?access_token=${a.access_token}`)
    expect((await byQuery.closed).code).toBe(4429)
    // The three still work; the other user connects; once one closes there is room again.
    expect((await devices[0]!.drain()).map((f) => f.type)).toEqual(['message:new']) // b's REST message
    const other = await Client.login(live.base, b)
    await devices[2]!.close()
    const again = await Client.login(live.base, a)
    await Promise.all([devices[0]!.close(), devices[1]!.close(), again.close(), other.close()])
  })
})

describe.each(dialects)('garbage floods on %s', (dialect) => {
  let live: LiveServer
  beforeAll(async () => {
    live = await startLive(dialect)
  })
  afterAll(() => live.close())

  test('#13.11 invalid frames spend a per-connection budget: a connection that keeps sending garbage is closed with 1008', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const [flooder, bystander] = await Promise.all([Client.login(live.base, a), Client.login(live.base, b)])
    const garbage = ['not json', '[]', '{"type": 5}', '{"type": "nope"}', JSON.stringify(sendFrame(dialogId, 'g', '  ')), '{"type":"message:read"}']
    for (let i = 0; i < 1_000 && flooder.ws.readyState === WebSocket.OPEN; i++) flooder.send(garbage[i % garbage.length])
    const closed = await Promise.race([flooder.closed, Bun.sleep(5_000).then(() => ({ code: 0, reason: 'still open after 5 s' }))])
    expect(closed).toMatchObject({ code: 1008 })
    // Each refused frame got its error frame until the budget ran out; far fewer than were sent.
    const errors = flooder.frames.filter((f) => f.type === 'error')
    expect(errors.length).toBeGreaterThan(20)
    expect(errors.length).toBeLessThan(200)
    // The others carry on, and the flooder's user may come back.
    bystander.send(sendFrame(dialogId, 'still-here'))
    expect((await bystander.next('message:ack')).client_msg_id).toBe('still-here')
    const back = await Client.login(live.base, a)
    back.send({ type: 'ping' })
    expect(await back.next('pong')).toEqual({ type: 'pong' })
    await Promise.all([bystander.close(), back.close()])
  }, 15_000)
})
