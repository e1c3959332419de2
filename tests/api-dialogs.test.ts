import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createTestApp, uniqueName, type TestApp } from './support/app'
import { dialects } from './support/databases'

const send = (t: TestApp, token: string, dialogId: number, clientMsgId: string, text = clientMsgId) =>
  t.call('POST', `/dialogs/${dialogId}/messages`, { token, body: { client_msg_id: clientMsgId, type: 'text', text } })

describe.each(dialects)('users and dialogs on %s', (dialect) => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp(dialect)
  })
  afterAll(() => t.close())

  test('GET /users?username= finds exactly one user, case-insensitively, or none', async () => {
    const me = await t.register()
    const name = uniqueName('Exact')
    const other = await t.register(name)
    const found = await t.call('GET', `/users?username=${name.toLowerCase()}`, { token: me.access_token })
    expect(found.status).toBe(200)
    expect(found.body).toEqual({ users: [other.user] })
    const none = await t.call('GET', `/users?username=${name}x`, { token: me.access_token })
    expect(none.body).toEqual({ users: [] })
  })

  test('GET /users?q= is a prefix search bounded by limit; `_` in the prefix is literal', async () => {
    const me = await t.register()
    const stem = `pfx${Math.random().toString(36).slice(2, 7)}`
    for (const suffix of ['_a', '_b', 'xc', 'Xd']) await t.register(stem + suffix)
    const all = await t.call('GET', `/users?q=${stem.toUpperCase()}`, { token: me.access_token })
    expect(all.body.users.map((u: { username: string }) => u.username).sort()).toEqual([`${stem}Xd`, `${stem}_a`, `${stem}_b`, `${stem}xc`].sort())
    const underscore = await t.call('GET', `/users?q=${stem}_`, { token: me.access_token })
    expect(underscore.body.users.map((u: { username: string }) => u.username).sort()).toEqual([`${stem}_a`, `${stem}_b`])
    const limited = await t.call('GET', `/users?q=${stem}&limit=2`, { token: me.access_token })
    expect(limited.body.users).toHaveLength(2)
    const tooMany = await t.call('GET', `/users?q=${stem}&limit=51`, { token: me.access_token })
    expect(tooMany.status).toBe(422)
    expect(tooMany.body.error.details.field).toBe('limit')
  })

  test('POST /dialogs: 201 when created, 200 with the same dialog afterwards, from either side', async () => {
    const a = await t.register()
    const b = await t.register()
    const created = await t.call('POST', '/dialogs', { token: a.access_token, body: { peer_user_id: b.user.id } })
    expect(created.status).toBe(201)
    expect(created.body).toEqual({
      id: expect.any(Number),
      peer: { id: b.user.id, username: b.user.username, online: false, last_seen_at: null },
      created_at: expect.any(String),
      last_message: null,
      unread_count: 0,
      last_read_message_id: 0,
      peer_last_read_message_id: 0,
      peer_last_delivered_message_id: 0,
      version: 0,
    })
    const again = await t.call('POST', '/dialogs', { token: a.access_token, body: { peer_user_id: b.user.id } })
    expect(again.status).toBe(200)
    expect(again.body.id).toBe(created.body.id)
    const fromPeer = await t.call('POST', '/dialogs', { token: b.access_token, body: { peer_user_id: a.user.id } })
    expect(fromPeer.status).toBe(200)
    expect(fromPeer.body.id).toBe(created.body.id)
    expect(fromPeer.body.peer.id).toBe(a.user.id)
  })

  test('POST /dialogs: unknown peer → 404, yourself → 422, bad body → 422 naming peer_user_id', async () => {
    const a = await t.register()
    expect((await t.call('POST', '/dialogs', { token: a.access_token, body: { peer_user_id: 999_999 } })).body.error.code).toBe('not_found')
    const self = await t.call('POST', '/dialogs', { token: a.access_token, body: { peer_user_id: a.user.id } })
    expect(self.status).toBe(422)
    expect(self.body.error.details.field).toBe('peer_user_id')
    const bad = await t.call('POST', '/dialogs', { token: a.access_token, body: { peer_user_id: 'two' } })
    expect(bad.status).toBe(422)
    expect(bad.body.error.details.field).toBe('peer_user_id')
  })

  test('8 parallel creations for one pair give one dialog: exactly one 201', async () => {
    const a = await t.register()
    const b = await t.register()
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        i % 2
          ? t.call('POST', '/dialogs', { token: a.access_token, body: { peer_user_id: b.user.id } })
          : t.call('POST', '/dialogs', { token: b.access_token, body: { peer_user_id: a.user.id } }),
      ),
    )
    expect(results.filter((r) => r.status === 201)).toHaveLength(1)
    expect(results.filter((r) => r.status === 200)).toHaveLength(7)
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1)
    const list = await t.call('GET', '/dialogs', { token: a.access_token })
    expect(list.body.dialogs).toHaveLength(1)
  })

  test('GET /dialogs: most recent activity first, with last message, unread count and watermarks', async () => {
    const me = await t.register()
    const peers = [await t.register(), await t.register(), await t.register()]
    const ids: number[] = []
    for (const p of peers) {
      const d = await t.call('POST', '/dialogs', { token: me.access_token, body: { peer_user_id: p.user.id } })
      ids.push(d.body.id)
      await Bun.sleep(5)
    }
    let list = await t.call('GET', '/dialogs', { token: me.access_token })
    expect(list.body.dialogs.map((d: { id: number }) => d.id)).toEqual([ids[2], ids[1], ids[0]])
    // A message moves the oldest dialog to the top.
    await Bun.sleep(5)
    await send(t, peers[0]!.access_token, ids[0]!, 'm1', 'first')
    await send(t, peers[0]!.access_token, ids[0]!, 'm2', 'second')
    list = await t.call('GET', '/dialogs', { token: me.access_token })
    expect(list.body.dialogs.map((d: { id: number }) => d.id)).toEqual([ids[0], ids[2], ids[1]])
    const top = list.body.dialogs[0]
    expect(top.peer).toEqual({ id: peers[0]!.user.id, username: peers[0]!.user.username, online: false, last_seen_at: null })
    expect(top.last_message).toMatchObject({ text: 'second', seq: 2, sender_id: peers[0]!.user.id, status: 'sent' })
    expect(top.unread_count).toBe(2)
    // The peer's own view: nothing unread (own messages don't count).
    const theirs = await t.call('GET', `/dialogs/${ids[0]}`, { token: peers[0]!.access_token })
    expect(theirs.body.unread_count).toBe(0)
    expect(theirs.body.last_message.text).toBe('second')
  })

  test('GET /dialogs?before= pages on activity time; limit bounds the page', async () => {
    const me = await t.register()
    const ids: number[] = []
    for (let i = 0; i < 3; i++) {
      const p = await t.register()
      ids.push((await t.call('POST', '/dialogs', { token: me.access_token, body: { peer_user_id: p.user.id } })).body.id)
      await Bun.sleep(5)
    }
    const first = await t.call('GET', '/dialogs?limit=2', { token: me.access_token })
    expect(first.body.dialogs.map((d: { id: number }) => d.id)).toEqual([ids[2], ids[1]])
    const cursor = first.body.dialogs[1].created_at
    const next = await t.call('GET', `/dialogs?limit=2&before=${encodeURIComponent(cursor)}`, { token: me.access_token })
    expect(next.body.dialogs.map((d: { id: number }) => d.id)).toEqual([ids[0]])
    const bad = await t.call('GET', '/dialogs?before=yesterday', { token: me.access_token })
    expect(bad.status).toBe(422)
    expect(bad.body.error.details.field).toBe('before')
  })

  test('a third user gets 404 on every dialog route, as for a dialog that does not exist', async () => {
    const { dialogId, a } = await t.pair()
    const m = await send(t, a.access_token, dialogId, 'private')
    const outsider = await t.register()
    const token = outsider.access_token
    const attempts = [
      t.call('GET', `/dialogs/${dialogId}`, { token }),
      t.call('GET', `/dialogs/${dialogId}/messages`, { token }),
      t.call('POST', `/dialogs/${dialogId}/messages`, { token, body: { client_msg_id: 'x', type: 'text', text: 'hi' } }),
      t.call('POST', `/dialogs/${dialogId}/read_up_to`, { token, body: { last_read_message_id: m.body.id } }),
    ]
    for (const res of await Promise.all(attempts)) {
      expect(res.status).toBe(404)
      expect(res.body.error.code).toBe('not_found')
    }
    const missing = await t.call('GET', '/dialogs/987654', { token })
    expect(missing.body).toEqual((await attempts[0]!).body)
    expect((await t.call('GET', '/dialogs', { token })).body.dialogs).toEqual([])
  })
})
