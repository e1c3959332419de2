import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { setLastSeen } from '../src/users/store'
import type { Session, TestApp } from './support/app'
import { dialects } from './support/databases'
import { twoApps } from './support/two-apps'

/**
 * A dialog list, once read, is used again while the user's dialogsStamp is unchanged, and on SQLite without
 * reading even that while this process reported no change to the user's dialogs or peers (DialogService.list,
 * LocalChanges): every change the list shows must still show at once, whether the node answering made it or
 * another did. Two apps on one database stand for two nodes (no cluster channel: the stamp is in the
 * database; on SQLite the other's commits move data_version).
 */
describe.each(dialects)('dialog lists kept between changes on %s', (dialect) => {
  let a: TestApp, b: TestApp, alice: Session, bob: Session, dialogId: number, close: () => Promise<void>
  beforeEach(async () => void ({ a, b, alice, bob, dialogId, close } = await twoApps(dialect)))
  afterEach(() => close())

  const list = async () => {
    const res = await a.call('GET', '/dialogs', { token: alice.access_token })
    expect(res.status).toBe(200)
    return res.body.dialogs as any[]
  }
  const one = async () => (await list()).find((d) => d.id === dialogId)
  const send = async (on: TestApp, who: Session, id: string, text: string) =>
    (await on.call('POST', `/dialogs/${dialogId}/messages`, { token: who.access_token, body: { client_msg_id: id, type: 'text', text } })).body

  test.each(['this node', 'the other node'])('messages, edits, reactions, deletes, reads both ways, last seen and new dialogs show on the next read, made by %s', async (which) => {
    const on = which === 'this node' ? a : b
    expect(await one()).toMatchObject({ last_message: null, unread_count: 0 })
    expect(await list()).toEqual(await list())

    const first = await send(on, bob, 'l1', 'hello')
    expect(await one()).toMatchObject({ last_message: { id: first.id, text: 'hello', status: 'sent' }, unread_count: 1 })
    const second = await send(on, bob, 'l2', 'again')
    expect(await one()).toMatchObject({ last_message: { id: second.id }, unread_count: 2 })

    expect((await on.call('PATCH', `/dialogs/${dialogId}/messages/${second.id}`, { token: bob.access_token, body: { text: 'once more' } })).status).toBe(200)
    expect((await one()).last_message.text).toBe('once more')
    expect((await on.call('PUT', `/dialogs/${dialogId}/messages/${second.id}/reactions/${encodeURIComponent('🎉')}`, { token: bob.access_token })).status).toBe(204)
    expect((await one()).last_message.reactions).toEqual([{ emoji: '🎉', user_ids: [bob.user.id] }])

    // Delivered first, so that the reads below move the read watermarks alone.
    await on.core.messages.delivered(alice.user.id, second.id, new Date())
    expect((await one()).last_message).toMatchObject({ id: second.id, status: 'delivered' })
    expect((await on.call('POST', `/dialogs/${dialogId}/read_up_to`, { token: alice.access_token, body: { last_read_message_id: first.id } })).status).toBe(200)
    expect(await one()).toMatchObject({ unread_count: 1, last_read_message_id: first.id })

    const mine = await send(on, alice, 'l3', 'mine')
    expect((await one()).last_message).toMatchObject({ id: mine.id, status: 'sent' })
    await on.core.messages.delivered(bob.user.id, mine.id, new Date())
    expect(await one()).toMatchObject({ last_message: { id: mine.id, status: 'delivered' }, peer_last_delivered_message_id: mine.id })
    expect((await on.call('POST', `/dialogs/${dialogId}/read_up_to`, { token: bob.access_token, body: { last_read_message_id: mine.id } })).status).toBe(200)
    expect(await one()).toMatchObject({ last_message: { id: mine.id, status: 'read' }, peer_last_read_message_id: mine.id })

    expect((await on.call('DELETE', `/dialogs/${dialogId}/messages/${mine.id}`, { token: alice.access_token })).status).toBe(204)
    expect((await one()).last_message).toMatchObject({ id: mine.id, deleted: true, text: '' })

    const seen = new Date(Date.now() - 1000)
    await on.core.presence.seen([bob.user.id], seen)
    expect((await one()).peer.last_seen_at).toBe(seen.toISOString())

    const carol = await on.register()
    const opened = await on.call('POST', '/dialogs', { token: carol.access_token, body: { peer_user_id: alice.user.id } })
    expect((await list()).map((d) => d.id)).toEqual([opened.body.id, dialogId])
  })

  test('a change no service reported (written straight to the database by this node) shows within two seconds', async () => {
    expect((await one()).peer.last_seen_at).toBeNull()
    const seen = new Date(Date.now() - 5000)
    await a.db.tx((s) => setLastSeen(s, [bob.user.id], seen))
    // LocalChanges trusts a quiet list for at most TRUST_MS (2 s) before checking the database again.
    await Bun.sleep(2100)
    expect((await one()).peer.last_seen_at).toBe(seen.toISOString())
  })
})
