import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { Session } from './support/app'
import { dialects } from './support/databases'
import { Client, sendFrame, startLive, type LiveServer } from './support/ws'

describe.each(dialects)('realtime flows on %s', (dialect) => {
  let live: LiveServer
  beforeAll(async () => {
    live = await startLive(dialect)
  })
  afterAll(() => live.close())

  const open = (session: Session, path?: string) => Client.login(live.base, session, path)

  test('auth by first frame on /ws and /socket.io/, or by ?access_token=, answers auth:ok with the user id', async () => {
    const a = await live.t.register()
    const byFrame = await Client.open(`${live.base}/socket.io/?transport=websocket`)
    byFrame.send({ type: 'auth', access_token: a.access_token })
    expect(await byFrame.next()).toEqual({ type: 'auth:ok', user_id: a.user.id })

    const byQuery = await Client.open(`${live.base}/ws?access_token=${a.access_token}`)
    expect(await byQuery.next()).toEqual({ type: 'auth:ok', user_id: a.user.id })
    byQuery.send({ type: 'ping' })
    expect(await byQuery.next()).toEqual({ type: 'pong' })
    await Promise.all([byFrame.close(), byQuery.close()])
  })

  test('message:send: ack to the sender after commit, message:new to the peer and the sender\'s other device only', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const [a1, a2, b1] = await Promise.all([open(a), open(a), open(b)])

    a1.send(sendFrame(dialogId, 'c-1', 'hello'))
    const ack = await a1.next('message:ack')
    expect(ack.client_msg_id).toBe('c-1')
    expect(ack.message).toMatchObject({ dialog_id: dialogId, seq: 1, sender_id: a.user.id, text: 'hello', type: 'text', status: 'sent' })

    // Committed by the time of the ack: the peer's history already has it.
    const history = await live.t.call('GET', `/dialogs/${dialogId}/messages`, { token: b.access_token })
    expect(history.body.messages.map((m: { id: number }) => m.id)).toEqual([ack.message.id])

    expect(await b1.next('message:new')).toEqual({ type: 'message:new', message: ack.message })
    expect(await a2.next('message:new')).toEqual({ type: 'message:new', message: ack.message })
    // The sending connection got the ack and nothing else.
    expect(await a1.drain()).toEqual([])
    await Promise.all([a1.close(), a2.close(), b1.close()])
  })

  test('a repeated client_msg_id acks the original and publishes nothing', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const [a1, b1] = await Promise.all([open(a), open(b)])
    a1.send(sendFrame(dialogId, 'dup', 'first'))
    const first = await a1.next('message:ack')
    await b1.next('message:new')

    a1.send(sendFrame(dialogId, 'dup', 'second'))
    const again = await a1.next('message:ack')
    expect(again.message.id).toBe(first.message.id)
    expect(again.message.text).toBe('first')
    expect(await b1.drain()).toEqual([])
    await Promise.all([a1.close(), b1.close()])
  })

  test('an outsider receives nothing of a dialog, also when connecting mid-conversation', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const outsider = await live.t.register()
    const early = await open(outsider)
    const a1 = await open(a)
    a1.send(sendFrame(dialogId, 'm1'))
    await a1.next('message:ack')
    const late = await open(outsider)
    a1.send(sendFrame(dialogId, 'm2'))
    await a1.next('message:ack')
    a1.send({ type: 'typing', dialog_id: dialogId, state: 'start' })
    await live.t.call('POST', `/dialogs/${dialogId}/messages`, {
      token: b.access_token,
      body: { client_msg_id: 'r1', type: 'text', text: 'via rest' },
    })
    expect(await early.drain({ presence: true })).toEqual([])
    expect(await late.drain({ presence: true })).toEqual([])

    // And it cannot act on the dialog: not_found, never a hint that the dialog exists.
    late.send(sendFrame(dialogId, 'intrude'))
    expect(await late.next()).toMatchObject({ type: 'error', code: 'not_found', frame_type: 'message:send', client_msg_id: 'intrude' })
    late.send({ type: 'typing', dialog_id: dialogId, state: 'start' })
    expect(await late.next()).toMatchObject({ type: 'error', code: 'not_found', frame_type: 'typing' })
    const b1 = await open(b)
    expect(await b1.drain()).toEqual([])
    await Promise.all([early.close(), late.close(), a1.close(), b1.close()])
  })

  test('a dialog created after connect arrives live as dialog:new (each member its own view) and its messages follow', async () => {
    const [a, b] = [await live.t.register(), await live.t.register()]
    const [a1, a2, b1] = await Promise.all([open(a), open(a), open(b)])
    const created = await live.t.call('POST', '/dialogs', { token: a.access_token, body: { peer_user_id: b.user.id } })
    expect(created.status).toBe(201)
    const dialogId = created.body.id

    const forA = await a1.next('dialog:new')
    expect(forA.dialog).toMatchObject({ id: dialogId, peer: { id: b.user.id, online: true } })
    expect((await a2.next('dialog:new')).dialog.id).toBe(dialogId)
    const forB = await b1.next('dialog:new')
    expect(forB.dialog).toMatchObject({ id: dialogId, peer: { id: a.user.id, username: a.user.username, online: true } })

    // Opening it again creates nothing and announces nothing.
    await live.t.call('POST', '/dialogs', { token: b.access_token, body: { peer_user_id: a.user.id } })
    b1.send(sendFrame(dialogId, 'first'))
    const ack = await b1.next('message:ack')
    expect((await a1.next('message:new')).message.id).toBe(ack.message.id)
    expect((await a2.next('message:new')).message.id).toBe(ack.message.id)
    expect(await b1.drain()).toEqual([])
    await Promise.all([a1.close(), a2.close(), b1.close()])
  })

  test('REST sends publish message:new to every connection of both members', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const [a1, b1] = await Promise.all([open(a), open(b)])
    const sent = await live.t.call('POST', `/dialogs/${dialogId}/messages`, {
      token: a.access_token,
      body: { client_msg_id: 'rest-1', type: 'text', text: 'over http' },
    })
    expect(sent.status).toBe(201)
    expect(await a1.next('message:new')).toEqual({ type: 'message:new', message: sent.body })
    expect(await b1.next('message:new')).toEqual({ type: 'message:new', message: sent.body })
    await Promise.all([a1.close(), b1.close()])
  })

  test('delivered and read move watermarks forward only and publish message:status', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const [a1, b1, b2] = await Promise.all([open(a), open(b), open(b)])
    const ids: number[] = []
    for (const n of [1, 2, 3]) {
      a1.send(sendFrame(dialogId, `s${n}`))
      ids.push((await a1.next('message:ack')).message.id)
    }
    await Promise.all([b1.next('message:new'), b2.next('message:new')])
    await Promise.all([b1.drain(), b2.drain()])

    b1.send({ type: 'message:delivered', message_id: ids[1], delivered_at: '2026-01-02T03:04:05.678+01:00' })
    expect(await a1.next('message:status')).toEqual({
      type: 'message:status',
      dialog_id: dialogId,
      message_id: ids[1],
      status: 'delivered',
      user_id: b.user.id,
      at: '2026-01-02T02:04:05.678Z',
    })
    // Backwards: nothing moves, nothing is published.
    b1.send({ type: 'message:delivered', message_id: ids[0] })
    expect(await b1.drain()).toEqual([])
    expect(await a1.drain()).toEqual([])
    // The deliverer's other device hears it once (the forward move), too.
    expect((await b2.drain()).map((f) => [f.type, f.status])).toEqual([['message:status', 'delivered']])

    b1.send({ type: 'message:read', dialog_id: dialogId, last_read_message_id: ids[2] })
    const read = await a1.next('message:status')
    expect(read).toMatchObject({ dialog_id: dialogId, message_id: ids[2], status: 'read', user_id: b.user.id })
    // The reader's other device learns it too; the reading connection does not hear its own read.
    expect(await b2.next('message:status')).toMatchObject({ status: 'read', message_id: ids[2] })
    expect((await b1.drain()).filter((f) => f.type === 'message:status')).toEqual([])

    b1.send({ type: 'message:read', dialog_id: dialogId, last_read_message_id: ids[0] })
    expect(await b1.drain()).toEqual([])
    expect(await a1.drain()).toEqual([])
    const dialog = await live.t.call('GET', `/dialogs/${dialogId}`, { token: b.access_token })
    expect(dialog.body).toMatchObject({ last_read_message_id: ids[2], unread_count: 0 })
    const history = await live.t.call('GET', `/dialogs/${dialogId}/messages`, { token: a.access_token })
    expect(history.body.messages.map((m: { status: string }) => m.status)).toEqual(['read', 'read', 'read'])

    // REST read_up_to publishes the same event.
    a1.send(sendFrame(dialogId, 's4'))
    const fourth = (await a1.next('message:ack')).message.id
    await live.t.call('POST', `/dialogs/${dialogId}/read_up_to`, { token: b.access_token, body: { last_read_message_id: fourth } })
    expect(await a1.next('message:status')).toMatchObject({ status: 'read', message_id: fourth, user_id: b.user.id })
    expect(await b1.next('message:status')).toMatchObject({ status: 'read', message_id: fourth })
    await Promise.all([a1.close(), b1.close(), b2.close()])
  })

  test('a burst of sends is acked in send order, and no receipt\'s status reaches the sender before the ack of its message', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const [sender, receiver] = await Promise.all([open(a), open(b)])
    // Everything the sender receives, in arrival order; the receiver acknowledges each message at once.
    const arrived: { type: string; client_msg_id?: string; message_id?: number; message?: { id: number } }[] = []
    sender.ws.addEventListener('message', (e) => arrived.push(JSON.parse(String(e.data))))
    receiver.ws.addEventListener('message', (e) => {
      const frame = JSON.parse(String(e.data))
      if (frame.type === 'message:new') receiver.send({ type: 'message:delivered', message_id: frame.message.id })
    })

    const sent = Array.from({ length: 60 }, (_, i) => `burst-${i}`)
    for (const id of sent) sender.send(sendFrame(dialogId, id))
    const acks = []
    for (const _ of sent) acks.push(await sender.next('message:ack'))
    expect(acks.map((f) => f.client_msg_id)).toEqual(sent)
    const lastId = acks.at(-1)!.message.id
    while ((await sender.next('message:status')).message_id !== lastId);

    const acked = new Set<number>()
    for (const frame of arrived) {
      if (frame.type === 'message:ack') acked.add(frame.message!.id)
      if (frame.type === 'message:status') expect(acked.has(frame.message_id!)).toBe(true)
    }
    await Promise.all([sender.close(), receiver.close()])
  })

  test('typing is relayed to the peer\'s connections, not echoed, not stored', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const [a1, a2, b1] = await Promise.all([open(a), open(a), open(b)])
    a1.send({ type: 'typing', dialog_id: dialogId, state: 'start' })
    expect(await b1.next('typing')).toEqual({ type: 'typing', dialog_id: dialogId, user_id: a.user.id, state: 'start' })
    a1.send({ type: 'typing', dialog_id: dialogId, state: 'stop' })
    expect((await b1.next('typing')).state).toBe('stop')
    expect(await a1.drain()).toEqual([])
    expect(await a2.drain()).toEqual([])
    const history = await live.t.call('GET', `/dialogs/${dialogId}/messages`, { token: b.access_token })
    expect(history.body.messages).toEqual([])
    await Promise.all([a1.close(), a2.close(), b1.close()])
  })

  test('a device replacing another as it closes (a reconnect): REST and the last presence event agree on last_seen_at', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const watcher = await open(b)
    let device = await open(a)
    const announced = await watcher.next('presence')
    expect(announced).toMatchObject({ user_id: a.user.id, online: true })
    const disagreements: string[] = []
    for (let i = 0; i < 10; i++) {
      // The new socket opens as the old one goes: the old one's last_seen_at write may still be running.
      const opening = Client.open(`${live.base}/ws`)
      device.ws.close()
      const next = await opening
      next.send({ type: 'auth', access_token: a.access_token })
      expect(await next.next('auth:ok')).toMatchObject({ user_id: a.user.id })
      await Bun.sleep(50)
      const told = (await watcher.drain({ presence: true })).filter((f) => f.type === 'presence').at(-1) ?? announced
      const peer = (await live.t.call('GET', `/dialogs/${dialogId}`, { token: b.access_token })).body.peer
      if (peer.online !== told.online || peer.last_seen_at !== told.last_seen_at)
        disagreements.push(`swap ${i}: presence ${JSON.stringify(told)}, REST ${JSON.stringify(peer)}`)
      device = next
    }
    expect(disagreements).toEqual([])
    await Promise.all([device.close(), watcher.close()])
  })

  test('presence: online on the first connection, offline with last_seen_at when the last one closes; dialogs reflect it', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const watcher = await open(b)
    const peerView = async () => (await live.t.call('GET', `/dialogs/${dialogId}`, { token: b.access_token })).body.peer
    expect(await peerView()).toMatchObject({ online: false, last_seen_at: null })

    const a1 = await open(a)
    const online = await watcher.next('presence')
    expect(online).toMatchObject({ type: 'presence', user_id: a.user.id, online: true })
    expect(await peerView()).toMatchObject({ online: true, last_seen_at: online.last_seen_at })

    // A second device changes nothing for the peer; closing one of two neither.
    const a2 = await open(a)
    await a1.close()
    expect(await watcher.drain({ presence: true })).toEqual([])
    expect((await peerView()).online).toBe(true)

    await a2.close()
    const offline = await watcher.next('presence')
    expect(offline).toMatchObject({ user_id: a.user.id, online: false })
    expect(Date.parse(offline.last_seen_at)).toBeGreaterThanOrEqual(Date.parse(online.last_seen_at))
    expect(await peerView()).toEqual(expect.objectContaining({ online: false, last_seen_at: offline.last_seen_at }))
    await watcher.close()
  })

  test('revoking a session (logout, or a reused refresh token) closes its connections with 4401; other sessions stay', async () => {
    const { a, b } = await live.t.pair()
    const login = async () => (await live.t.call('POST', '/auth/login', { body: { username: a.user.username, password: 'correct horse battery' } })).body as Session
    const [phone, laptop] = [await login(), await login()]
    const [first, phoneWs, phoneWs2, laptopWs, peer] = await Promise.all([open(a), open(phone), open(phone), open(laptop), open(b)])

    expect((await live.t.call('POST', '/auth/logout', { body: { refresh_token: phone.refresh_token } })).status).toBe(204)
    for (const ws of [phoneWs, phoneWs2]) {
      expect(await ws.next('error')).toMatchObject({ code: 'unauthorized' })
      expect((await ws.closed).code).toBe(4401)
    }
    expect(await first.drain()).toEqual([])

    // Theft detection: the laptop's refresh token presented twice revokes its session.
    expect((await live.t.call('POST', '/auth/refresh', { body: { refresh_token: laptop.refresh_token } })).status).toBe(200)
    expect((await live.t.call('POST', '/auth/refresh', { body: { refresh_token: laptop.refresh_token } })).status).toBe(401)
    expect((await laptopWs.closed).code).toBe(4401)

    expect(await first.drain()).toEqual([])
    expect(await peer.drain()).toEqual([])
    await Promise.all([first.close(), peer.close()])
  })

  test('a client that reconnects and asks with after_id gets exactly what it missed', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const a1 = await open(a)
    let b1 = await open(b)
    a1.send(sendFrame(dialogId, 'before-1'))
    await a1.next('message:ack')
    const seen = (await b1.next('message:new')).message
    await b1.close()

    const missed: number[] = []
    for (const n of [1, 2, 3]) {
      a1.send(sendFrame(dialogId, `missed-${n}`))
      missed.push((await a1.next('message:ack')).message.id)
    }
    b1 = await open(b)
    const page = await live.t.call('GET', `/dialogs/${dialogId}/messages?after_id=${seen.id}`, { token: b.access_token })
    expect(page.body.messages.map((m: { id: number }) => m.id)).toEqual(missed)
    expect(page.body.messages.map((m: { seq: number }) => m.seq)).toEqual([2, 3, 4])
    expect(page.body.has_more).toBe(false)

    // And live delivery resumes on the new connection.
    a1.send(sendFrame(dialogId, 'after'))
    expect((await b1.next('message:new')).message.seq).toBe(5)
    await Promise.all([a1.close(), b1.close()])
  })
})
