import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createTestApp, expectContractError, type Session, type TestApp } from './support/app'
import { dialects } from './support/databases'

type Dialog = {
  id: number
  peer: { id: number; username: string; online: boolean; last_seen_at: string | null }
  created_at: string
  last_message: { id: number; text: string; seq: number; sender_id: number; status: string } | null
  unread_count: number
  last_read_message_id: number
  peer_last_read_message_id: number
  peer_last_delivered_message_id: number
  version: number
}

const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/
/** The activity time a client pages on: last message time, else creation time. */
const activityOf = (d: Dialog & { last_message: { created_at?: string } | null }) => d.last_message?.created_at ?? d.created_at

describe.each(dialects)('REST dialogs on %s', (dialect) => {
  let t: TestApp
  const open = (s: Session, peerId: unknown) => t.call<Dialog>('POST', '/dialogs', { token: s.access_token, body: { peer_user_id: peerId } })
  const list = (s: Session, query = '') => t.call<{ dialogs: Dialog[] }>('GET', `/dialogs${query}`, { token: s.access_token })
  const send = (s: Session, dialogId: number, id: string, text = id) =>
    t.call('POST', `/dialogs/${dialogId}/messages`, { token: s.access_token, body: { client_msg_id: id, type: 'text', text } })

  beforeAll(async () => {
    t = await createTestApp(dialect)
  })
  afterAll(() => t.close())

  test('?before= with digits past the millisecond: a dialog whose activity is strictly before it is listed', async () => {
    const a = await t.register()
    const b = await t.register()
    const dialog = (await open(a, b.user.id)).body
    const last = (await send(a, dialog.id, 'latest')).body as { created_at: string }
    const ids = async (before: string) => (await list(a, `?before=${encodeURIComponent(before)}`)).body.dialogs.map((d) => d.id)
    expect(await ids(last.created_at.replace('Z', '5+00:00'))).toEqual([dialog.id])
    expect(await ids(last.created_at.replace('Z', '000Z'))).toEqual([])
    // Rounded up, the last instant there is stays one (year 10000 is none a database reads).
    expect(await ids('9999-12-31T23:59:59.9999999-00:00')).toEqual([dialog.id])
  })

  test('POST /dialogs → 201 a fresh Dialog, then 200 the same one, also when the peer opens it', async () => {
    const a = await t.register()
    const b = await t.register()
    const created = await open(a, b.user.id)
    expect(created.status).toBe(201)
    expect(created.body).toEqual({
      id: expect.any(Number),
      peer: { id: b.user.id, username: b.user.username, online: false, last_seen_at: null },
      created_at: expect.stringMatching(ISO_MS),
      last_message: null,
      unread_count: 0,
      last_read_message_id: 0,
      peer_last_read_message_id: 0,
      peer_last_delivered_message_id: 0,
      version: 0,
    })
    const again = await open(a, b.user.id)
    expect(again.status).toBe(200)
    expect(again.body).toEqual(created.body)
    const fromPeer = await open(b, a.user.id)
    expect(fromPeer.status).toBe(200)
    expect(fromPeer.body).toEqual({ ...created.body, peer: { id: a.user.id, username: a.user.username, online: false, last_seen_at: null } })
  })

  test('POST /dialogs: unknown peer → 404; yourself → 422; bad peer_user_id → 422 naming it', async () => {
    const a = await t.register()
    expectContractError(await open(a, 987_654), 404, 'not_found')
    expectContractError(await open(a, a.user.id), 422, 'validation_failed', 'peer_user_id')
    for (const bad of ['x', 0, -3, 1.5, null, 3_000_000_000, 1e300])
      expectContractError(await open(a, bad), 422, 'validation_failed', 'peer_user_id')
    expectContractError(await t.call('POST', '/dialogs', { token: a.access_token, body: {} }), 422, 'validation_failed', 'peer_user_id')
    // None of that opened anything.
    expect((await list(a)).body.dialogs).toEqual([])
  })

  test('8 parallel creations for one pair (from both sides) → one dialog: 201 exactly once, 200 for the rest', async () => {
    const a = await t.register()
    const b = await t.register()
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 ? open(a, b.user.id) : open(b, a.user.id))))
    expect(results.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 201])
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1)
    expect((await list(a)).body.dialogs.map((d) => d.id)).toEqual([results[0]!.body.id])
    expect((await list(b)).body.dialogs.map((d) => d.id)).toEqual([results[0]!.body.id])
  })

  test('GET /dialogs/{id} → 200 the Dialog from each side; unknown id → 404; bad id → 422 naming dialog_id', async () => {
    const { a, b, dialogId } = await t.pair()
    const mine = await t.call<Dialog>('GET', `/dialogs/${dialogId}`, { token: a.access_token })
    expect(mine.status).toBe(200)
    expect(mine.body.id).toBe(dialogId)
    expect(mine.body.peer.id).toBe(b.user.id)
    const theirs = await t.call<Dialog>('GET', `/dialogs/${dialogId}`, { token: b.access_token })
    expect(theirs.body.peer).toEqual({ id: a.user.id, username: a.user.username, online: false, last_seen_at: null })
    expectContractError(await t.call('GET', '/dialogs/999999', { token: a.access_token }), 404, 'not_found')
    for (const bad of ['abc', '0', '-1', '1.5', '3000000000', '99999999999999999999'])
      expectContractError(await t.call('GET', `/dialogs/${bad}`, { token: a.access_token }), 422, 'validation_failed', 'dialog_id')
  })

  test('GET /dialogs: most recent activity first; a message moves its dialog to the top', async () => {
    const me = await t.register()
    const peers = [await t.register(), await t.register(), await t.register()]
    const ids: number[] = []
    for (const p of peers) {
      ids.push((await open(me, p.user.id)).body.id)
      await Bun.sleep(3) // distinct creation times
    }
    expect((await list(me)).body.dialogs.map((d) => d.id)).toEqual([ids[2]!, ids[1]!, ids[0]!])
    await send(peers[0]!, ids[0]!, 'up')
    expect((await list(me)).body.dialogs.map((d) => d.id)).toEqual([ids[0]!, ids[2]!, ids[1]!])
    await Bun.sleep(3)
    await send(me, ids[1]!, 'mine-too')
    expect((await list(me)).body.dialogs.map((d) => d.id)).toEqual([ids[1]!, ids[0]!, ids[2]!])
    // The peer sees the dialog too (it was opened by me), ordered the same way for them.
    expect((await list(peers[1]!)).body.dialogs.map((d) => d.id)).toEqual([ids[1]!])
  })

  test('GET /dialogs: peer fields, last_message with its status, unread_count and watermarks per side', async () => {
    const { a, b, dialogId } = await t.pair()
    const m1 = (await send(a, dialogId, 'one', 'first')).body
    const m2 = (await send(a, dialogId, 'two', 'second')).body
    let bView = (await list(b)).body.dialogs.find((d) => d.id === dialogId)!
    expect(bView.peer).toEqual({ id: a.user.id, username: a.user.username, online: false, last_seen_at: null })
    expect(bView.last_message).toEqual({ ...m2, status: 'sent' })
    expect(bView.unread_count).toBe(2)
    expect(bView.last_read_message_id).toBe(0)
    // The sender has nothing unread: own messages do not count.
    let aView = (await list(a)).body.dialogs.find((d) => d.id === dialogId)!
    expect(aView.unread_count).toBe(0)
    expect(aView.last_message).toEqual(bView.last_message)
    // GET /dialogs/{id} says the same as the list.
    expect((await t.call<Dialog>('GET', `/dialogs/${dialogId}`, { token: a.access_token })).body).toEqual(aView)

    await t.call('POST', `/dialogs/${dialogId}/read_up_to`, { token: b.access_token, body: { last_read_message_id: m1.id } })
    bView = (await list(b)).body.dialogs.find((d) => d.id === dialogId)!
    expect(bView.unread_count).toBe(1)
    expect(bView.last_read_message_id).toBe(m1.id)
    expect(bView.peer_last_read_message_id).toBe(0)
    aView = (await list(a)).body.dialogs.find((d) => d.id === dialogId)!
    expect(aView.peer_last_read_message_id).toBe(m1.id)
    expect(aView.peer_last_delivered_message_id).toBe(m1.id)
    expect(aView.last_message!.status).toBe('sent')

    await t.call('POST', `/dialogs/${dialogId}/read_up_to`, { token: b.access_token, body: { last_read_message_id: m2.id } })
    aView = (await t.call<Dialog>('GET', `/dialogs/${dialogId}`, { token: a.access_token })).body
    expect(aView.last_message!.status).toBe('read')
    expect((await t.call<Dialog>('GET', `/dialogs/${dialogId}`, { token: b.access_token })).body.unread_count).toBe(0)
  })

  test('GET /dialogs?limit=&before=: pages on activity time, strictly before, with no overlap', async () => {
    const me = await t.register()
    const ids: number[] = []
    for (let i = 0; i < 5; i++) {
      ids.push((await open(me, (await t.register()).user.id)).body.id)
      await Bun.sleep(3)
    }
    await send(me, ids[0]!, 'bump') // ids[0] is now the most recent
    const expected = [ids[0]!, ids[4]!, ids[3]!, ids[2]!, ids[1]!]
    const first = (await list(me, '?limit=2')).body.dialogs
    expect(first.map((d) => d.id)).toEqual(expected.slice(0, 2))
    const second = (await list(me, `?limit=2&before=${encodeURIComponent(activityOf(first[1]! as never))}`)).body.dialogs
    expect(second.map((d) => d.id)).toEqual(expected.slice(2, 4))
    // An offset other than Z is the same instant.
    const offset = activityOf(second[1]! as never).replace('Z', '+00:00')
    const third = (await list(me, `?before=${encodeURIComponent(offset)}`)).body.dialogs
    expect(third.map((d) => d.id)).toEqual(expected.slice(4))
    expect((await list(me, `?before=${encodeURIComponent('2000-01-01T00:00:00Z')}`)).body.dialogs).toEqual([])
    expect((await list(me, '?limit=100')).body.dialogs).toHaveLength(5)
  })

  test('GET /dialogs: bad limit or before → 422 naming it', async () => {
    const me = await t.register()
    for (const [query, field] of [
      ['?limit=0', 'limit'],
      ['?limit=101', 'limit'],
      ['?limit=x', 'limit'],
      ['?before=yesterday', 'before'],
      ['?before=2026-11-23', 'before'],
      ['?before=2026-11-23T10:15:30', 'before'],
      ['?before=1700000000000', 'before'],
    ])
      expectContractError(await list(me, query), 422, 'validation_failed', field)
  })

  test('a third user gets 404 on every route of a dialog they are not in (never 403)', async () => {
    const { a, dialogId } = await t.pair()
    const m = (await send(a, dialogId, 'secret')).body
    const eve = await t.register()
    const calls = [
      t.call('GET', `/dialogs/${dialogId}`, { token: eve.access_token }),
      t.call('GET', `/dialogs/${dialogId}/messages`, { token: eve.access_token }),
      t.call('GET', `/dialogs/${dialogId}/messages?after_id=0`, { token: eve.access_token }),
      t.call('POST', `/dialogs/${dialogId}/messages`, { token: eve.access_token, body: { client_msg_id: 'x', type: 'text', text: 'hi' } }),
      t.call('POST', `/dialogs/${dialogId}/read_up_to`, { token: eve.access_token, body: { last_read_message_id: m.id } }),
    ]
    const missing = await t.call('GET', '/dialogs/999999', { token: eve.access_token })
    for (const res of await Promise.all(calls)) {
      expectContractError(res, 404, 'not_found')
      // Indistinguishable from a dialog that does not exist.
      expect(res.body).toEqual(missing.body)
    }
    expect((await list(eve)).body.dialogs).toEqual([])
    // Nothing leaked into the dialog.
    const page = await t.call('GET', `/dialogs/${dialogId}/messages`, { token: a.access_token })
    expect(page.body.messages.map((x: { text: string }) => x.text)).toEqual(['secret'])
  })
})
