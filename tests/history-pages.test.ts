import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import type { Session, TestApp } from './support/app'
import { dialects } from './support/databases'
import { twoApps } from './support/two-apps'

/**
 * A page of history, once built, is answered again while its dialog's stamp (version and watermarks) is
 * unchanged, and on SQLite without reading even that while this process reported no change to the dialog
 * (MessageService.history, LocalChanges): every change a page shows must still show at once, whether the
 * node answering made it or another did. Two apps on one database stand for two nodes (no cluster channel:
 * the stamp is in the database; on SQLite the other's commits move data_version).
 */
describe.each(dialects)('history pages kept between changes on %s', (dialect) => {
  let a: TestApp, b: TestApp, alice: Session, bob: Session, dialogId: number, close: () => Promise<void>
  beforeEach(async () => void ({ a, b, alice, bob, dialogId, close } = await twoApps(dialect)))
  afterEach(() => close())

  const page = async (query = '') => {
    const res = await a.call('GET', `/dialogs/${dialogId}/messages${query}`, { token: alice.access_token })
    expect(res.status).toBe(200)
    return res.body as { messages: { id: number; text: string; status: string; deleted: boolean; reactions: unknown[] }[]; has_more: boolean }
  }
  const send = async (on: TestApp, who: Session, id: string, text: string) =>
    (await on.call('POST', `/dialogs/${dialogId}/messages`, { token: who.access_token, body: { client_msg_id: id, type: 'text', text } })).body

  test.each(['this node', 'the other node'])('a new message, an edit, a reaction, a delete and a read show on the next read of the same page, made by %s', async (which) => {
    const on = which === 'this node' ? a : b
    const first = await send(a, alice, 'p1', 'one')
    expect((await page()).messages.map((m) => m.text)).toEqual(['one'])
    expect(await page()).toEqual(await page())

    const second = await send(on, bob, 'p2', 'two')
    expect((await page()).messages.map((m) => m.text)).toEqual(['one', 'two'])
    expect((await page('?limit=1')).has_more).toBe(true)

    expect((await on.call('PATCH', `/dialogs/${dialogId}/messages/${first.id}`, { token: alice.access_token, body: { text: 'uno' } })).status).toBe(200)
    expect((await page()).messages[0]!.text).toBe('uno')

    expect((await on.call('PUT', `/dialogs/${dialogId}/messages/${second.id}/reactions/${encodeURIComponent('👍')}`, { token: alice.access_token })).status).toBe(204)
    expect((await page()).messages[1]!.reactions).toEqual([{ emoji: '👍', user_ids: [alice.user.id] }])

    expect((await page()).messages[0]!.status).toBe('sent')
    expect((await on.call('POST', `/dialogs/${dialogId}/read_up_to`, { token: bob.access_token, body: { last_read_message_id: first.id } })).status).toBe(200)
    expect((await page()).messages[0]!.status).toBe('read')

    expect((await on.call('DELETE', `/dialogs/${dialogId}/messages/${first.id}`, { token: alice.access_token })).status).toBe(204)
    expect((await page()).messages[0]).toMatchObject({ deleted: true, text: '' })

    // Other cursors are pages of their own, and follow the same changes.
    expect((await page(`?after_id=${first.id}`)).messages.map((m) => m.text)).toEqual(['two'])
    await send(on, bob, 'p3', 'three')
    expect((await page(`?after_id=${first.id}`)).messages.map((m) => m.text)).toEqual(['two', 'three'])
    expect((await page(`?before_id=${second.id}`)).messages.map((m) => m.deleted)).toEqual([true])
  })
})
