import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { eq } from 'drizzle-orm'
import postgres from 'postgres'
import { setReaction } from '../src/messages/changes'
import { rows } from '../src/storage/database'
import { expectContractError, type Session } from './support/app'
import { dialects, pgAvailable } from './support/databases'
import { Client, startLive, type LiveServer } from './support/ws'

type Message = {
  id: number
  dialog_id: number
  seq: number
  sender_id: number
  text: string
  edited_at: string | null
  deleted: boolean
  reactions: { emoji: string; user_ids: number[] }[]
  version: number
  status?: string
}
type Page = { messages: Message[]; has_more: boolean }

describe.each(dialects)('edit, delete, reactions and changed_after on %s', (dialect) => {
  let live: LiveServer
  beforeAll(async () => {
    live = await startLive(dialect)
  })
  afterAll(() => live.close())

  const call = <T = any>(method: string, path: string, s: Session, body?: unknown) => live.t.call<T>(method, path, { token: s.access_token, body })
  const send = async (s: Session, dialogId: number, id: string, text = id) =>
    (await call<Message>('POST', `/dialogs/${dialogId}/messages`, s, { client_msg_id: id, type: 'text', text })).body
  const path = (dialogId: number, messageId: number) => `/dialogs/${dialogId}/messages/${messageId}`
  const react = (method: 'PUT' | 'DELETE', s: Session, dialogId: number, messageId: number, emoji: string) =>
    call(method, `${path(dialogId, messageId)}/reactions/${encodeURIComponent(emoji)}`, s)
  const changed = (s: Session, dialogId: number, after: number, limit = 30) =>
    call<Page>('GET', `/dialogs/${dialogId}/messages?changed_after=${after}&limit=${limit}`, s)

  test('PATCH edits the sender\'s message: 200 with edited_at and a new version; history shows the new text', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const m = await send(a, dialogId, 'e1', 'helo')
    expect(m).toMatchObject({ edited_at: null, deleted: false, reactions: [], version: 1 })
    const edited = await call<Message>('PATCH', path(dialogId, m.id), a, { text: 'hello' })
    expect(edited.status).toBe(200)
    expect(edited.body).toMatchObject({ id: m.id, seq: 1, text: 'hello', deleted: false, version: 2 })
    expect(edited.body.edited_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    const page = await call<Page>('GET', `/dialogs/${dialogId}/messages`, b)
    expect(page.body.messages).toEqual([{ ...edited.body, status: 'sent' }])
    const dialog = await call('GET', `/dialogs/${dialogId}`, b)
    expect(dialog.body).toMatchObject({ version: 2, last_message: { id: m.id, text: 'hello', edited_at: edited.body.edited_at } })
  })

  test('edit errors: the peer → 403 forbidden; an outsider, another dialog\'s message, a deleted message → 404; blank text → 422', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const other = await live.t.pair()
    const m = await send(a, dialogId, 'x1')
    const foreign = await send(other.a, other.dialogId, 'y1')
    expectContractError(await call('PATCH', path(dialogId, m.id), b, { text: 'not mine' }), 403, 'forbidden')
    expectContractError(await call('PATCH', path(dialogId, m.id), other.a, { text: 'outsider' }), 404, 'not_found')
    expectContractError(await call('PATCH', path(dialogId, foreign.id), a, { text: 'elsewhere' }), 404, 'not_found')
    expectContractError(await call('PATCH', path(dialogId, 2_000_000_000), a, { text: 'nothing' }), 404, 'not_found')
    expectContractError(await call('PATCH', path(dialogId, m.id), a, { text: '   ' }), 422, 'validation_failed', 'text')
    expectContractError(await call('PATCH', path(dialogId, m.id), a, {}), 422, 'validation_failed')
    expectContractError(await call('PATCH', `/dialogs/${dialogId}/messages/abc`, a, { text: 'x' }), 422, 'validation_failed')
    expect((await call('DELETE', path(dialogId, m.id), a)).status).toBe(204)
    expectContractError(await call('PATCH', path(dialogId, m.id), a, { text: 'too late' }), 404, 'not_found')
    // None of the failures took a version: the dialog moved by one message and one delete.
    expect((await call('GET', `/dialogs/${dialogId}`, a)).body.version).toBe(2)
  })

  test('DELETE → 204, again → 204; the message keeps id and seq, loses text and reactions, in the database too', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const m = await send(a, dialogId, 'd1', 'secret')
    await send(b, dialogId, 'd2')
    expect((await react('PUT', b, dialogId, m.id, '👍')).status).toBe(204)
    expectContractError(await call('DELETE', path(dialogId, m.id), b), 403, 'forbidden')
    expect((await call('DELETE', path(dialogId, m.id), a)).status).toBe(204)
    expect((await call('DELETE', path(dialogId, m.id), a)).status).toBe(204)
    const page = (await call<Page>('GET', `/dialogs/${dialogId}/messages`, b)).body.messages
    expect(page[0]).toMatchObject({ id: m.id, seq: 1, text: '', deleted: true, reactions: [], version: 4 })
    const stored = await live.t.db.read(function* ({ db, t }) {
      return {
        messages: yield* rows(db.select({ text: t.messages.text, deleted: t.messages.deleted }).from(t.messages).where(eq(t.messages.id, m.id))),
        reactions: yield* rows(db.select().from(t.messageReactions).where(eq(t.messageReactions.messageId, m.id))),
      }
    })
    expect(stored).toEqual({ messages: [{ text: '', deleted: true }], reactions: [] })
    expectContractError(await call('DELETE', path(dialogId, m.id), (await live.t.pair()).a), 404, 'not_found')
    expectContractError(await react('PUT', b, dialogId, m.id, '👍'), 404, 'not_found')
  })

  test('reactions: one emoji each, PUT and DELETE idempotent, either member; the whole set per message', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const m = await send(a, dialogId, 'r1')
    for (const emoji of ['👍', '👍🏽', '👨‍👩‍👧', '🇺🇦', '1️⃣', '❤️']) expect((await react('PUT', a, dialogId, m.id, emoji)).status).toBe(204)
    expect((await react('PUT', b, dialogId, m.id, '👍')).status).toBe(204)
    expect((await react('PUT', b, dialogId, m.id, '👍')).status).toBe(204)
    let page = (await call<Page>('GET', `/dialogs/${dialogId}/messages`, b)).body.messages
    expect(page[0]!.reactions).toEqual([
      { emoji: '👍', user_ids: [a.user.id, b.user.id] },
      { emoji: '👍🏽', user_ids: [a.user.id] },
      { emoji: '👨‍👩‍👧', user_ids: [a.user.id] },
      { emoji: '🇺🇦', user_ids: [a.user.id] },
      { emoji: '1️⃣', user_ids: [a.user.id] },
      { emoji: '❤️', user_ids: [a.user.id] },
    ])
    // 1 message + 7 changes; the repeated PUT took no version.
    expect(page[0]!.version).toBe(8)
    expect((await react('DELETE', a, dialogId, m.id, '👍')).status).toBe(204)
    expect((await react('DELETE', a, dialogId, m.id, '👍')).status).toBe(204)
    page = (await call<Page>('GET', `/dialogs/${dialogId}/messages`, b)).body.messages
    // An emoji's place is its earliest remaining reaction: 👍 is now b's, the latest.
    expect(page[0]!.reactions.map((r) => r.emoji)).toEqual(['👍🏽', '👨‍👩‍👧', '🇺🇦', '1️⃣', '❤️', '👍'])
    expect(page[0]!.reactions.at(-1)).toEqual({ emoji: '👍', user_ids: [b.user.id] })
    expect(page[0]!.version).toBe(9)
    // One grapheme cluster is not enough: a stray combining mark or a dangling ZWJ joins the cluster but makes no emoji.
    for (const bad of ['a', '👍👍', 'hi👍', ':)', '1', '  ', '👍 ', '👍\u0301', '😀\u0300\u0301\u0302\u0303', '👍\u200d', '\u{1F3FB}'])
      expectContractError(await react('PUT', a, dialogId, m.id, bad), 422, 'validation_failed', 'emoji')
    // Longer sequences of UTS #51 are one emoji each.
    for (const emoji of ['🏳️‍🌈', '🏳️‍⚧️', '🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}', '🧑🏻‍❤️‍💋‍🧑🏼', '☺️', '#⃣'])
      expect((await react('PUT', a, dialogId, m.id, emoji)).status).toBe(204)
    expectContractError(await react('PUT', (await live.t.pair()).a, dialogId, m.id, '👍'), 404, 'not_found')
  })

  test('a retried send (its ack lost) answers the original whole, reactions included, over REST and WebSocket', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const m = await send(a, dialogId, 'retried')
    expect((await react('PUT', b, dialogId, m.id, '👍')).status).toBe(204)
    const original = (await call<Page>('GET', `/dialogs/${dialogId}/messages`, a)).body.messages[0]!
    expect(original.reactions).toEqual([{ emoji: '👍', user_ids: [b.user.id] }])
    const again = await call<Message>('POST', `/dialogs/${dialogId}/messages`, a, { client_msg_id: 'retried', type: 'text', text: 'retried' })
    expect(again.status).toBe(200)
    expect(again.body).toEqual(original)
    const device = await Client.login(live.base, a)
    device.send({ type: 'message:send', dialog_id: dialogId, client_msg_id: 'retried', msg_type: 'text', text: 'retried' })
    expect((await device.next('message:ack')).message).toEqual(original)
    await device.close()
  })

  test('reactions within one millisecond keep the order they came in', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const m = await send(a, dialogId, 'quick')
    // All in one millisecond (the clock each request reads, held still), each emoji sorting before the
    // last: a tie once came out in the primary key's order, by emoji.
    const emojis = ['😀', '😃', '😄', '😁', '😆', '😅', '🤣', '😂', '🙂', '🙃'].sort().reverse()
    const now = new Date()
    for (const [i, emoji] of emojis.entries())
      await live.t.db.tx((s) => setReaction(s, dialogId, m.id, (i % 2 ? b : a).user.id, emoji, true, now))
    const page = (await call<Page>('GET', `/dialogs/${dialogId}/messages`, a)).body.messages
    expect(page[0]!.reactions.map((r) => r.emoji)).toEqual(emojis)
  })

  test('events: every connection of both members, the acting one included, gets message:edited, message:reactions, message:deleted', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const [a1, a2, b1, b2] = await Promise.all([a, a, b, b].map((s) => Client.login(live.base, s))) as [Client, Client, Client, Client]
    const m = await send(a, dialogId, 'ev1', 'first')
    for (const c of [a1, a2, b1, b2]) await c.next('message:new')
    a1.send({ type: 'message:edit', message_id: m.id, text: 'second' })
    for (const c of [a1, a2, b1, b2]) expect((await c.next('message:edited')).message).toMatchObject({ id: m.id, text: 'second', version: 2 })
    await react('PUT', b, dialogId, m.id, '🎉')
    for (const c of [a1, a2, b1, b2])
      expect(await c.next('message:reactions')).toEqual({
        type: 'message:reactions',
        dialog_id: dialogId,
        message_id: m.id,
        reactions: [{ emoji: '🎉', user_ids: [b.user.id] }],
        version: 3,
      })
    // The peer cannot edit or delete over WebSocket either; an unknown message is not_found.
    b1.send({ type: 'message:edit', message_id: m.id, text: 'hijack' })
    expect(await b1.next('error')).toMatchObject({ code: 'forbidden', frame_type: 'message:edit' })
    b1.send({ type: 'message:delete', message_id: 2_000_000_000 })
    expect(await b1.next('error')).toMatchObject({ code: 'not_found', frame_type: 'message:delete' })
    a2.send({ type: 'message:edit', message_id: m.id, text: '' })
    expect(await a2.next('error')).toMatchObject({ code: 'validation_failed', frame_type: 'message:edit' })
    a2.send({ type: 'message:delete', message_id: m.id })
    for (const c of [a1, a2, b1, b2])
      expect(await c.next('message:deleted')).toEqual({ type: 'message:deleted', dialog_id: dialogId, message_id: m.id, version: 4 })
    await Promise.all([a1, a2, b1, b2].map((c) => c.close()))
  })

  test('changed_after: after an edit, a delete, a reaction and new messages while away, ascending by version, paged', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const ms: Message[] = []
    for (let i = 0; i < 5; i++) ms.push(await send(a, dialogId, `c${i}`))
    // b has seen everything up to the dialog's current version, then goes away.
    const seen = (await call('GET', `/dialogs/${dialogId}`, b)).body.version
    expect(seen).toBe(5)
    await call('PATCH', path(dialogId, ms[1]!.id), a, { text: 'edited while away' })
    await call('DELETE', path(dialogId, ms[0]!.id), a)
    await react('PUT', a, dialogId, ms[3]!.id, '🔥')
    const n1 = await send(a, dialogId, 'new-1')
    const n2 = await send(b, dialogId, 'new-2')
    const first = (await changed(b, dialogId, seen, 3)).body
    expect(first.has_more).toBe(true)
    expect(first.messages.map((m) => [m.id, m.version])).toEqual([
      [ms[1]!.id, 6],
      [ms[0]!.id, 7],
      [ms[3]!.id, 8],
    ])
    expect(first.messages[1]).toMatchObject({ deleted: true, text: '' })
    const rest = (await changed(b, dialogId, first.messages.at(-1)!.version, 3)).body
    expect(rest).toMatchObject({ has_more: false })
    expect(rest.messages.map((m) => [m.id, m.version])).toEqual([
      [n1.id, 9],
      [n2.id, 10],
    ])
    expect((await changed(b, dialogId, 10)).body).toEqual({ messages: [], has_more: false })
    expectContractError(await call('GET', `/dialogs/${dialogId}/messages?changed_after=1&after_id=1`, b), 422, 'validation_failed')
    expectContractError(await call('GET', `/dialogs/${dialogId}/messages?changed_after=-1`, b), 422, 'validation_failed')
    expectContractError(await changed((await live.t.pair()).a, dialogId, 0), 404, 'not_found')
  })

  test('40 concurrent sends mixed with edits and reactions: seq and version stay gapless', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const base = [await send(a, dialogId, 'g0'), await send(b, dialogId, 'g1')]
    const work: Promise<unknown>[] = []
    for (let i = 0; i < 40; i++) {
      work.push(send(i % 2 ? a : b, dialogId, `p${i}`))
      if (i % 4 === 0) work.push(call('PATCH', path(dialogId, base[0]!.id), a, { text: `edit ${i}` }))
      if (i % 8 === 0) work.push(react('PUT', b, dialogId, base[1]!.id, ['👍', '🎉', '🔥', '❤️', '😂'][i / 8]!))
    }
    await Promise.all(work)
    const all = (await call<Page>('GET', `/dialogs/${dialogId}/messages?limit=100`, a)).body.messages
    expect(all.map((m) => m.seq)).toEqual(Array.from({ length: 42 }, (_, i) => i + 1))
    const dialog = (await call('GET', `/dialogs/${dialogId}`, a)).body
    // 42 messages + 10 edits + 5 reactions
    expect(dialog.version).toBe(57)
    const versions = all.map((m) => m.version).sort((x, y) => x - y)
    expect(new Set(versions).size).toBe(42)
    expect(versions.at(-1)).toBeLessThanOrEqual(57)
    // Every version 1..57 was taken once: the messages' current ones, and the rest by superseded changes.
    const paged: number[] = []
    let after = 0
    for (;;) {
      const page = (await changed(a, dialogId, after, 7)).body
      paged.push(...page.messages.map((m) => m.version))
      if (!page.has_more) break
      after = page.messages.at(-1)!.version
    }
    expect(paged).toEqual(versions)
  })
})

/*
 * On Postgres a batch's sends and receipts are two statements side by side; the sends must be answered
 * (and published) as soon as theirs commits, whatever holds the receipts up.
 */
describe.skipIf(!pgAvailable)('a batch\'s sends and receipts on pg', () => {
  let live: LiveServer
  beforeAll(async () => {
    live = await startLive('pg')
  })
  afterAll(() => live.close())

  const call = <T = any>(method: string, path: string, s: Session, body?: unknown) => live.t.call<T>(method, path, { token: s.access_token, body })
  const restSend = (s: Session, dialogId: number, id: string, text = `t ${id}`) =>
    call<any>('POST', `/dialogs/${dialogId}/messages`, s, { client_msg_id: id, type: 'text', text })

  test('a receipt held up in its batch does not let a later change overtake a committed send: message:new (version v) reaches the peer before a change with version v+1', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const other = await live.t.pair()
    const m0 = (await restSend(a, dialogId, 'm0')).body
    const x = (await restSend(other.a, other.dialogId, 'x')).body
    // Warm every cache the two requests below pass through.
    await call('POST', `/dialogs/${other.dialogId}/read_up_to`, other.b, { last_read_message_id: x.id })
    const x2 = (await restSend(other.a, other.dialogId, 'x2')).body
    const b1 = await Client.login(live.base, b)
    // Another node's receipt batch (or any slow statement) holding other.b's membership row.
    const url = (live.t.core.config.database as { url: string }).url
    const lock = postgres(url, { max: 1, onnotice: () => {} })
    const reserved = await lock.reserve()
    await reserved`begin`
    await reserved`select 1 from dialog_members where dialog_id = ${other.dialogId} and user_id = ${other.b.user.id} for update`
    // The receipt and the send enter the writer in the same tick: one batch.
    const receipt = live.t.core.messages.readUpTo(other.b.user.id, other.dialogId, x2.id, new Date())
    const sent = live.t.core.messages.send(a.user.id, { dialogId, clientMsgId: 'm1', type: 'text', text: 'm1' })
    let answered = false
    void sent.then(() => (answered = true))
    await Bun.sleep(300)
    // Its commit is done; the sends' part "never waits on the receipts'" (writer.ts), so it is answered by now.
    const answeredBeforeReceipt = answered
    // The send committed (the dialog row is free again), so this reaction takes the next version.
    const reacted = await call('PUT', `/dialogs/${dialogId}/messages/${m0.id}/reactions/${encodeURIComponent('👍')}`, b)
    expect(reacted.status).toBe(204)
    await Bun.sleep(100)
    await reserved`rollback`
    reserved.release()
    await lock.end()
    const m1 = (await sent).message
    await receipt
    const frames = (await b1.drain()).filter((f) => f.type === 'message:new' || f.type === 'message:reactions')
    const versions = frames.map((f) => (f.type === 'message:new' ? f.message.version : f.version))
    expect(m1.version).toBeLessThan(Math.max(...versions))
    expect({ answeredBeforeReceipt, order: frames.map((f) => f.type) }).toEqual({ answeredBeforeReceipt: true, order: ['message:new', 'message:reactions'] })
    expect(versions).toEqual([...versions].sort((p, q) => p - q))
    await b1.close()
  })
})
