import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { setLastSeen } from '../src/users/store'
import type { Session, TestApp } from './support/app'
import { dialects } from './support/databases'
import { twoApps } from './support/two-apps'

/**
 * A dialog list, once read, is used again while the user's dialogsStamp is unchanged (DialogService.list):
 * every change the list shows must still show at once, also when another node made it. Two apps on one
 * database stand for two nodes (no cluster channel: the stamp is in the database).
 */
describe.each(dialects)('dialog lists kept between changes on %s', (dialect) => {
  let a: TestApp, b: TestApp, alice: Session, bob: Session, dialogId: number, close: () => Promise<void>
  beforeAll(async () => void ({ a, b, alice, bob, dialogId, close } = await twoApps(dialect)))
  afterAll(() => close())

  const list = async () => {
    const res = await a.call('GET', '/dialogs', { token: alice.access_token })
    expect(res.status).toBe(200)
    return res.body.dialogs as any[]
  }
  const one = async () => (await list()).find((d) => d.id === dialogId)
  const send = async (on: TestApp, who: Session, id: string, text: string) =>
    (await on.call('POST', `/dialogs/${dialogId}/messages`, { token: who.access_token, body: { client_msg_id: id, type: 'text', text } })).body

  test('messages, edits, reactions, deletes, reads both ways, last seen and new dialogs show on the next read, whichever node made them', async () => {
    expect(await one()).toMatchObject({ last_message: null, unread_count: 0 })
    expect(await list()).toEqual(await list())

    const first = await send(b, bob, 'l1', 'hello')
    expect(await one()).toMatchObject({ last_message: { id: first.id, text: 'hello', status: 'sent' }, unread_count: 1 })
    const second = await send(b, bob, 'l2', 'again')
    expect(await one()).toMatchObject({ last_message: { id: second.id }, unread_count: 2 })

    expect((await b.call('PATCH', `/dialogs/${dialogId}/messages/${second.id}`, { token: bob.access_token, body: { text: 'once more' } })).status).toBe(200)
    expect((await one()).last_message.text).toBe('once more')
    expect((await b.call('PUT', `/dialogs/${dialogId}/messages/${second.id}/reactions/${encodeURIComponent('🎉')}`, { token: bob.access_token })).status).toBe(204)
    expect((await one()).last_message.reactions).toEqual([{ emoji: '🎉', user_ids: [bob.user.id] }])

    // Delivered first, so that the reads below move the read watermarks alone.
    await b.core.messages.delivered(alice.user.id, second.id, new Date())
    expect((await one()).last_message).toMatchObject({ id: second.id, status: 'delivered' })
    expect((await b.call('POST', `/dialogs/${dialogId}/read_up_to`, { token: alice.access_token, body: { last_read_message_id: first.id } })).status).toBe(200)
    expect(await one()).toMatchObject({ unread_count: 1, last_read_message_id: first.id })

    const mine = await send(b, alice, 'l3', 'mine')
    expect((await one()).last_message).toMatchObject({ id: mine.id, status: 'sent' })
    await b.core.messages.delivered(bob.user.id, mine.id, new Date())
    expect(await one()).toMatchObject({ last_message: { id: mine.id, status: 'delivered' }, peer_last_delivered_message_id: mine.id })
    expect((await b.call('POST', `/dialogs/${dialogId}/read_up_to`, { token: bob.access_token, body: { last_read_message_id: mine.id } })).status).toBe(200)
    expect(await one()).toMatchObject({ last_message: { id: mine.id, status: 'read' }, peer_last_read_message_id: mine.id })

    expect((await b.call('DELETE', `/dialogs/${dialogId}/messages/${mine.id}`, { token: alice.access_token })).status).toBe(204)
    expect((await one()).last_message).toMatchObject({ id: mine.id, deleted: true, text: '' })

    const seen = new Date(Date.now() - 1000)
    await b.db.tx((s) => setLastSeen(s, [bob.user.id], seen))
    expect((await one()).peer.last_seen_at).toBe(seen.toISOString())

    const carol = await b.register()
    const opened = await b.call('POST', '/dialogs', { token: carol.access_token, body: { peer_user_id: alice.user.id } })
    expect((await list()).map((d) => d.id)).toEqual([opened.body.id, dialogId])
  })
})
