import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { expectContractError, type Session } from './support/app'
import { dialects } from './support/databases'
import { redisAvailable } from './support/redis'
import { Client, sendFrame, startLive, type LiveServer } from './support/ws'
import { twoNodes } from './support/two-nodes'

describe.each(dialects)('blocking on %s', (dialect) => {
  let live: LiveServer
  beforeAll(async () => {
    live = await startLive(dialect)
  })
  afterAll(() => live.close())

  const call = (method: string, path: string, s: Session, body?: unknown) => live.t.call(method, path, { token: s.access_token, body })
  const block = (s: Session, target: number | string) => call('PUT', `/users/${target}/block`, s)
  const unblock = (s: Session, target: number | string) => call('DELETE', `/users/${target}/block`, s)
  const send = (s: Session, dialogId: number, id: string) =>
    call('POST', `/dialogs/${dialogId}/messages`, s, { client_msg_id: id, type: 'text', text: `text of ${id}` })
  const open = (s: Session) => Client.login(live.base, s)

  test('PUT/DELETE /users/{id}/block → 204 (idempotent); GET /users/blocked lists whom the caller blocks; self 422, unknown 404', async () => {
    const [me, one, two] = await Promise.all([live.t.register(), live.t.register(), live.t.register()])
    expect((await block(me, one.user.id)).status).toBe(204)
    expect((await block(me, one.user.id)).status).toBe(204)
    expect((await block(me, two.user.id)).status).toBe(204)
    expect((await call('GET', '/users/blocked', me)).body).toEqual({ users: [one.user, two.user] })
    // Blocking is one-way in the list: the blocked user's own list is empty.
    expect((await call('GET', '/users/blocked', one)).body).toEqual({ users: [] })

    expect((await unblock(me, one.user.id)).status).toBe(204)
    expect((await unblock(me, one.user.id)).status).toBe(204)
    expect((await call('GET', '/users/blocked', me)).body).toEqual({ users: [two.user] })

    expectContractError(await block(me, me.user.id), 422, 'validation_failed', 'user_id')
    expectContractError(await block(me, 2_000_000_000), 404, 'not_found')
    expectContractError(await unblock(me, 2_000_000_000), 404, 'not_found')
    expectContractError(await block(me, 'x'), 422, 'validation_failed', 'user_id')
    expect((await live.t.call('PUT', `/users/${one.user.id}/block`)).status).toBe(401)
    expect((await live.t.call('GET', '/users/blocked')).status).toBe(401)
  })

  test('REST: a send either way is 403 blocked while either blocks; history stays readable; unblock restores', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const before = await send(b, dialogId, 'before')
    expect(before.status).toBe(201)

    expect((await block(a, b.user.id)).status).toBe(204)
    expectContractError(await send(b, dialogId, 'b-1'), 403, 'blocked')
    expectContractError(await send(a, dialogId, 'a-1'), 403, 'blocked')
    // Both block: still blocked after one of them lifts theirs.
    expect((await block(b, a.user.id)).status).toBe(204)
    expect((await unblock(a, b.user.id)).status).toBe(204)
    expectContractError(await send(a, dialogId, 'a-2'), 403, 'blocked')

    for (const s of [a, b]) {
      const history = await call('GET', `/dialogs/${dialogId}/messages`, s)
      expect(history.status).toBe(200)
      expect(history.body.messages.map((m: { client_msg_id: string }) => m.client_msg_id)).toEqual(['before'])
      expect((await call('GET', `/dialogs/${dialogId}`, s)).status).toBe(200)
    }
    // The existing dialog still opens (200); nothing was created by the refused sends.
    expect((await call('POST', '/dialogs', a, { peer_user_id: b.user.id })).status).toBe(200)

    expect((await unblock(b, a.user.id)).status).toBe(204)
    expect((await send(a, dialogId, 'a-3')).status).toBe(201)
    expect((await send(b, dialogId, 'b-2')).status).toBe(201)
  })

  test('a retry of a send stored before the block answers its original (200, over REST and WebSocket); a new one is blocked', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const sent = await send(b, dialogId, 'acked-late')
    expect(sent.status).toBe(201)
    expect((await call('PUT', `/dialogs/${dialogId}/messages/${sent.body.id}/reactions/${encodeURIComponent('👍')}`, a)).status).toBe(204)
    const b1 = await open(b)
    expect((await block(a, b.user.id)).status).toBe(204)
    // As history shows it: reactions and all.
    const original = (await call('GET', `/dialogs/${dialogId}/messages`, b)).body.messages[0]
    expect(original.reactions).toEqual([{ emoji: '👍', user_ids: [a.user.id] }])
    // The client never saw its ack (a dropped connection) and sends again: the message did go out.
    const again = await send(b, dialogId, 'acked-late')
    expect(again.status).toBe(200)
    expect(again.body).toEqual(original)
    b1.send(sendFrame(dialogId, 'acked-late'))
    expect((await b1.next('message:ack')).message).toEqual(original)
    expectContractError(await send(b, dialogId, 'new-one'), 403, 'blocked')
    // The same client_msg_id in a dialog of someone else's is no retry.
    expectContractError(await send(a, dialogId, 'acked-late'), 403, 'blocked')
    const history = await call('GET', `/dialogs/${dialogId}/messages`, a)
    expect(history.body.messages.map((m: { client_msg_id: string }) => m.client_msg_id)).toEqual(['acked-late'])
    await b1.close()
  })

  test('no new dialog between two users while either blocks the other, either way', async () => {
    const [a, b] = await Promise.all([live.t.register(), live.t.register()])
    expect((await block(b, a.user.id)).status).toBe(204)
    expectContractError(await call('POST', '/dialogs', a, { peer_user_id: b.user.id }), 403, 'blocked')
    expectContractError(await call('POST', '/dialogs', b, { peer_user_id: a.user.id }), 403, 'blocked')
    expect((await call('GET', '/dialogs', a)).body.dialogs).toEqual([])
    expect((await unblock(b, a.user.id)).status).toBe(204)
    expect((await call('POST', '/dialogs', a, { peer_user_id: b.user.id })).status).toBe(201)
  })

  test('WebSocket: message:send either way gets an error frame `blocked`; typing and presence never arrive; unblock restores all', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const [a1, b1] = await Promise.all([open(a), open(b)])
    // Warm every cache first (a typing frame that does arrive), so the block must invalidate it.
    b1.send({ type: 'typing', dialog_id: dialogId, state: 'start' })
    expect(await a1.next('typing')).toMatchObject({ user_id: b.user.id })
    await a1.drain()

    expect((await block(a, b.user.id)).status).toBe(204)
    // Each is told the other as REST now shows them, hidden (offline, never seen), not left as last heard
    // (past the online events of their connections, which may still be on their way).
    const hidden = async (client: Client) => {
      for (;;) {
        const frame = await client.next('presence')
        if (frame.last_seen_at === null) return frame
      }
    }
    expect(await hidden(a1)).toEqual({ type: 'presence', user_id: b.user.id, online: false, last_seen_at: null })
    expect(await hidden(b1)).toEqual({ type: 'presence', user_id: a.user.id, online: false, last_seen_at: null })
    b1.send(sendFrame(dialogId, 'b-ws'))
    expect(await b1.next('error')).toMatchObject({ code: 'blocked', frame_type: 'message:send', client_msg_id: 'b-ws' })
    a1.send(sendFrame(dialogId, 'a-ws'))
    expect(await a1.next('error')).toMatchObject({ code: 'blocked', client_msg_id: 'a-ws' })

    b1.send({ type: 'typing', dialog_id: dialogId, state: 'start' })
    a1.send({ type: 'typing', dialog_id: dialogId, state: 'start' })
    // b's second device comes and goes: no presence for a either.
    const b2 = await open(b)
    await b1.close()
    await b2.close()
    await Bun.sleep(100)
    const seenByA = await a1.drain({ presence: true })
    expect(seenByA.filter((f) => f.type === 'typing' || f.type === 'presence' || f.type === 'message:new')).toEqual([])
    expect((await call('GET', `/dialogs/${dialogId}`, a)).body.peer).toMatchObject({ online: false, last_seen_at: null })

    expect((await unblock(a, b.user.id)).status).toBe(204)
    // Shown again as it is: offline, last seen (when b's last device closed).
    const shown = await a1.next('presence')
    expect(shown).toMatchObject({ user_id: b.user.id, online: false })
    expect(Number.isNaN(Date.parse(shown.last_seen_at))).toBe(false)
    const b3 = await open(b)
    expect(await a1.next('presence')).toMatchObject({ user_id: b.user.id, online: true })
    b3.send({ type: 'typing', dialog_id: dialogId, state: 'stop' })
    expect(await a1.next('typing')).toMatchObject({ user_id: b.user.id, state: 'stop' })
    b3.send(sendFrame(dialogId, 'b-after'))
    expect((await b3.next('message:ack')).message.client_msg_id).toBe('b-after')
    expect((await a1.next('message:new')).message.client_msg_id).toBe('b-after')
    await Promise.all([a1.close(), b3.close()])
  })

  test('while blocked, an edit and a new reaction are 403 blocked (both ways) and reach no one; taking a reaction back and deleting stay possible', async () => {
    const { a: blocked, b: blocker, dialogId } = await live.t.pair()
    const own = (await send(blocked, dialogId, 'own')).body
    const theirs = (await send(blocker, dialogId, 'theirs')).body
    const react = (s: Session, messageId: number, method: string) =>
      call(method, `/dialogs/${dialogId}/messages/${messageId}/reactions/${encodeURIComponent('👍')}`, s)
    expect((await react(blocked, theirs.id, 'PUT')).status).toBe(204)
    expect((await block(blocker, blocked.user.id)).status).toBe(204)

    const watching = await open(blocker)
    const ws = await open(blocked)
    expectContractError(await call('PATCH', `/dialogs/${dialogId}/messages/${own.id}`, blocked, { text: 'you cannot block me' }), 403, 'blocked')
    expectContractError(await react(blocked, theirs.id, 'PUT'), 403, 'blocked')
    ws.send({ type: 'message:edit', message_id: own.id, text: 'over the socket' })
    expect(await ws.next('error')).toMatchObject({ code: 'blocked' })
    // Both ways, as sends are; what takes content away stays possible.
    expectContractError(await call('PATCH', `/dialogs/${dialogId}/messages/${theirs.id}`, blocker, { text: 'edited by the blocker' }), 403, 'blocked')
    expect((await react(blocked, theirs.id, 'DELETE')).status).toBe(204)
    expect((await call('DELETE', `/dialogs/${dialogId}/messages/${own.id}`, blocked)).status).toBe(204)
    const seen = (await watching.drain()).map((f) => (f.type === 'message:edited' ? `edited: ${f.message.text}` : f.type))
    expect(seen).toEqual(['message:reactions', 'message:deleted'])
    const history = (await call('GET', `/dialogs/${dialogId}/messages`, blocker)).body.messages
    expect(history.map((m: { text: string; deleted: boolean }) => [m.text, m.deleted])).toEqual([['', true], ['text of theirs', false]])
    await Promise.all([watching.close(), ws.close()])
  })
})

/** Two nodes: a block made through one node holds on the other at once (its cache is told over Redis). */
describe.each(dialects)('a block and the sends already under way, on %s', (dialect) => {
  let live: LiveServer
  beforeAll(async () => {
    // Sends wait for their batch a while (WRITER_BATCH_WAIT_MS; a busy writer queues them as long).
    live = await startLive(dialect, { WRITER_BATCH_WAIT_MS: '300' })
  })
  afterAll(() => live.close())

  test('a send still queued when the block comes lands before the block answers 204; from then on nothing gets through', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const call = (method: string, path: string, s: Session, body?: unknown) => live.t.call(method, path, { token: s.access_token, body })
    const send = (id: string) => call('POST', `/dialogs/${dialogId}/messages`, b, { client_msg_id: id, type: 'text', text: id })
    await send('warm')
    const watcher = await Client.login(live.base, a)
    let sentAt = Infinity
    const sent = send('under way').then((res) => ((sentAt = performance.now()), res))
    await Bun.sleep(20)
    expect((await call('PUT', `/users/${b.user.id}/block`, a)).status).toBe(204)
    const blockedAt = performance.now()
    expect((await sent).status).toBe(201)
    // Answered (committed and published) before the block was: the blocker was told the block holds after it.
    expect(sentAt).toBeLessThan(blockedAt)
    expectContractError(await send('too late'), 403, 'blocked')
    await Bun.sleep(100)
    const news = (await watcher.drain()).filter((f) => f.type === 'message:new').map((f) => f.message.text)
    expect(news).toEqual(['under way'])
    await watcher.close()
  })
})

describe.skipIf(!redisAvailable).each(dialects)('blocking across two nodes on %s', (dialect) => {
  const nodes = twoNodes(dialect, 'blocks')

  test('blocked on node A: sends from node B refused, typing and presence dropped; unblocked on A: they flow again', async () => {
    const alice = await nodes.a.t.register()
    const bob = await nodes.b.t.register()
    const opened = await nodes.a.t.call('POST', '/dialogs', { token: alice.access_token, body: { peer_user_id: bob.user.id } })
    const dialogId = opened.body.id
    const [aliceOnA, bobOnB] = await Promise.all([Client.login(nodes.a.base, alice), Client.login(nodes.b.base, bob)])
    // Node B has answered "not blocked" for this pair already: the block must reach its cache.
    bobOnB.send(sendFrame(dialogId, 'warm'))
    await bobOnB.next('message:ack')
    bobOnB.send({ type: 'typing', dialog_id: dialogId, state: 'start' })
    expect(await aliceOnA.next('typing')).toMatchObject({ user_id: bob.user.id })
    await aliceOnA.next('message:new')

    expect((await nodes.a.t.call('PUT', `/users/${bob.user.id}/block`, { token: alice.access_token })).status).toBe(204)
    bobOnB.send(sendFrame(dialogId, 'refused'))
    expect(await bobOnB.next('error')).toMatchObject({ code: 'blocked', client_msg_id: 'refused' })
    expectContractError(
      await nodes.b.t.call('POST', `/dialogs/${dialogId}/messages`, {
        token: bob.access_token,
        body: { client_msg_id: 'rest', type: 'text', text: 'hi' },
      }),
      403,
      'blocked',
    )
    bobOnB.send({ type: 'typing', dialog_id: dialogId, state: 'start' })
    await bobOnB.drain()
    // Bob goes offline and comes back on node B: alice, on node A, hears nothing of it.
    await aliceOnA.drain()
    await bobOnB.close()
    const bobAgain = await Client.login(nodes.b.base, bob)
    await Bun.sleep(150)
    expect((await aliceOnA.drain({ presence: true })).filter((f) => f.type === 'typing' || f.type === 'message:new' || f.type === 'presence')).toEqual([])

    expect((await nodes.a.t.call('DELETE', `/users/${bob.user.id}/block`, { token: alice.access_token })).status).toBe(204)
    // Bob is shown again as he is: online, on the other node.
    expect(await aliceOnA.next('presence')).toMatchObject({ user_id: bob.user.id, online: true })
    bobAgain.send({ type: 'typing', dialog_id: dialogId, state: 'stop' })
    expect(await aliceOnA.next('typing')).toMatchObject({ user_id: bob.user.id, state: 'stop' })
    bobAgain.send(sendFrame(dialogId, 'again'))
    expect((await aliceOnA.next('message:new')).message.client_msg_id).toBe('again')
    await bobAgain.close()
    expect(await aliceOnA.next('presence')).toMatchObject({ user_id: bob.user.id, online: false })
    await aliceOnA.close()
  })
})
