import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createTestApp, type Session, type TestApp } from './support/app'
import { dialects } from './support/databases'

type Message = {
  id: number
  dialog_id: number
  seq: number
  text: string
  client_msg_id: string
  type: string
  status: string
  sender_id: number
  created_at: string
  edited_at: string | null
  deleted: boolean
  reactions: { emoji: string; user_ids: number[] }[]
  version: number
  attachment: unknown
}

describe.each(dialects)('messages on %s', (dialect) => {
  let t: TestApp
  const send = (s: Session, dialogId: number, clientMsgId: string, text = clientMsgId) =>
    t.call<Message>('POST', `/dialogs/${dialogId}/messages`, { token: s.access_token, body: { client_msg_id: clientMsgId, type: 'text', text } })
  const page = (s: Session, dialogId: number, query = '') =>
    t.call<{ messages: Message[]; has_more: boolean }>('GET', `/dialogs/${dialogId}/messages${query}`, { token: s.access_token })

  beforeAll(async () => {
    t = await createTestApp(dialect)
  })
  afterAll(() => t.close())

  test('send → 201 with the message; the same client_msg_id again → 200 with the original, nothing new', async () => {
    const { a, b, dialogId } = await t.pair()
    const first = await send(a, dialogId, 'c-1', 'hello')
    expect(first.status).toBe(201)
    expect(first.body).toEqual({
      id: expect.any(Number),
      dialog_id: dialogId,
      seq: 1,
      sender_id: a.user.id,
      client_msg_id: 'c-1',
      type: 'text',
      text: 'hello',
      created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      status: 'sent',
      edited_at: null,
      deleted: false,
      reactions: [],
      version: 1,
      attachment: null,
    })
    const retry = await send(a, dialogId, 'c-1', 'different text')
    expect(retry.status).toBe(200)
    expect(retry.body).toEqual(first.body)
    // Another sender may use the same client id: it is scoped per sender.
    const peer = await send(b, dialogId, 'c-1', 'from b')
    expect(peer.status).toBe(201)
    expect(peer.body.seq).toBe(2)
    expect((await page(a, dialogId)).body.messages.map((m) => m.text)).toEqual(['hello', 'from b'])
  })

  test('text: 1–4000 characters (code points), not only whitespace; type must be text; client_msg_id 1–64', async () => {
    const { a, dialogId } = await t.pair()
    expect((await send(a, dialogId, 'emoji', '😀'.repeat(4000))).status).toBe(201)
    const cases: [Record<string, unknown>, string][] = [
      [{ client_msg_id: 'long', type: 'text', text: 'x'.repeat(4001) }, 'text'],
      [{ client_msg_id: 'blank', type: 'text', text: ' \n\t ' }, 'text'],
      [{ client_msg_id: 'empty', type: 'text', text: '' }, 'text'],
      [{ client_msg_id: 'img', type: 'video', text: 'x' }, 'type'],
      [{ client_msg_id: '', type: 'text', text: 'x' }, 'client_msg_id'],
      [{ client_msg_id: 'x'.repeat(65), type: 'text', text: 'x' }, 'client_msg_id'],
      [{ type: 'text', text: 'x' }, 'client_msg_id'],
    ]
    for (const [body, field] of cases) {
      const res = await t.call('POST', `/dialogs/${dialogId}/messages`, { token: a.access_token, body })
      expect(res.status).toBe(422)
      expect(res.body.error.code).toBe('validation_failed')
      expect(res.body.error.details.field).toBe(field)
    }
  })

  test('40 parallel sends from both members: seq 1..40, no gaps, no duplicates', async () => {
    const { a, b, dialogId } = await t.pair()
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => send(i % 2 ? a : b, dialogId, `p${i}`)))
    expect(results.every((r) => r.status === 201)).toBe(true)
    expect(results.map((r) => r.body.seq).sort((x, y) => x - y)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1))
    const all = (await page(a, dialogId, '?limit=100')).body.messages
    expect(all.map((m) => m.seq)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1))
    // ids are global and increasing in seq order
    expect(all.map((m) => m.id)).toEqual([...all.map((m) => m.id)].sort((x, y) => x - y))
  })

  test('history: newest page ascending by default (30), limit 1–100, before_id / after_id / before with has_more', async () => {
    const { a, b, dialogId } = await t.pair()
    const sent: Message[] = []
    for (let i = 1; i <= 35; i++) sent.push((await send(i % 2 ? a : b, dialogId, `h${i}`)).body)
    const newest = await page(b, dialogId)
    expect(newest.body.messages.map((m) => m.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 6))
    expect(newest.body.has_more).toBe(true)
    const older = await page(b, dialogId, `?before_id=${newest.body.messages[0]!.id}&limit=10`)
    expect(older.body.messages.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5])
    expect(older.body.has_more).toBe(false)
    const after = await page(b, dialogId, `?after_id=${sent[29]!.id}&limit=3`)
    expect(after.body.messages.map((m) => m.seq)).toEqual([31, 32, 33])
    expect(after.body.has_more).toBe(true)
    const tail = await page(b, dialogId, `?after_id=${sent[31]!.id}&limit=3`)
    expect(tail.body.messages.map((m) => m.seq)).toEqual([33, 34, 35])
    expect(tail.body.has_more).toBe(false)
    const everything = await page(b, dialogId, `?after_id=0&limit=100`)
    expect(everything.body.messages).toHaveLength(35)
    // before: strictly older than the given time, newest first within the page, returned ascending.
    const future = await page(b, dialogId, `?before=${encodeURIComponent('2999-01-01T00:00:00+02:00')}&limit=2`)
    expect(future.body.messages.map((m) => m.seq)).toEqual([34, 35])
    const past = await page(b, dialogId, `?before=${encodeURIComponent('2000-01-01T00:00:00Z')}`)
    expect(past.body).toEqual({ messages: [], has_more: false })
    const strict = await page(b, dialogId, `?before=${encodeURIComponent(sent[0]!.created_at)}`)
    expect(strict.body.messages.every((m) => m.created_at < sent[0]!.created_at)).toBe(true)
  })

  test('history by time and by ids of other dialogs: exactly the messages on the right side of the cursor', async () => {
    const { a, b, dialogId } = await t.pair()
    const other = await t.pair()
    const sent: Message[] = []
    const foreign: Message[] = []
    for (let i = 1; i <= 9; i++) {
      sent.push((await send(i % 2 ? a : b, dialogId, `t${i}`)).body)
      foreign.push((await send(other.a, other.dialogId, `o${i}`)).body)
      await Bun.sleep(3) // distinct times
    }
    const texts = (r: { body: { messages: Message[] } }) => r.body.messages.map((m) => m.text)
    // before=<time>: strictly older than the 6th message's time.
    const byTime = await page(b, dialogId, `?before=${encodeURIComponent(sent[5]!.created_at)}&limit=3`)
    expect(texts(byTime)).toEqual(['t3', 't4', 't5'])
    expect(byTime.body.has_more).toBe(true)
    const offset = await page(b, dialogId, `?before=${encodeURIComponent(sent[5]!.created_at.replace('Z', '+00:00'))}&limit=10`)
    expect(texts(offset)).toEqual(['t1', 't2', 't3', 't4', 't5'])
    expect(offset.body.has_more).toBe(false)
    // Ids from another dialog still order against this dialog's ids.
    const beforeForeign = await page(b, dialogId, `?before_id=${foreign[3]!.id}`)
    expect(texts(beforeForeign)).toEqual(['t1', 't2', 't3', 't4'])
    const afterForeign = await page(b, dialogId, `?after_id=${foreign[6]!.id}`)
    expect(texts(afterForeign)).toEqual(['t8', 't9'])
    expect(texts(await page(b, dialogId, `?after_id=${sent[8]!.id}`))).toEqual([])
  })

  test('history rejects bad cursors and limits, naming the parameter', async () => {
    const { a, dialogId } = await t.pair()
    for (const [query, field] of [
      ['?limit=0', 'limit'],
      ['?limit=101', 'limit'],
      ['?limit=ten', 'limit'],
      ['?before=2026-11-23', 'before'],
      ['?before=2026-11-23T10:15:30', 'before'],
      ['?before=tomorrow', 'before'],
      ['?before_id=-1', 'before_id'],
      ['?before_id=1&after_id=1', 'after_id'],
    ]) {
      const res = await page(a, dialogId!, query)
      expect(res.status).toBe(422)
      expect((res.body as any).error.details.field).toBe(field)
    }
    const path = await t.call('GET', '/dialogs/abc/messages', { token: a.access_token })
    expect(path.status).toBe(422)
    expect(path.body.error.details.field).toBe('dialog_id')
  })

  test('read_up_to: forward only, moves delivered too, counts unread; statuses follow the recipient', async () => {
    const { a, b, dialogId } = await t.pair()
    const m1 = (await send(a, dialogId, 'r1')).body
    const m2 = (await send(a, dialogId, 'r2')).body
    const m3 = (await send(a, dialogId, 'r3')).body
    expect((await t.call('GET', `/dialogs/${dialogId}`, { token: b.access_token })).body.unread_count).toBe(3)

    const read = await t.call('POST', `/dialogs/${dialogId}/read_up_to`, {
      token: b.access_token,
      body: { last_read_message_id: m2.id, read_at: '2026-11-23T12:00:00.000+01:00' },
    })
    expect(read.status).toBe(200)
    expect(read.body).toEqual({ dialog_id: dialogId, last_read_message_id: m2.id, read_at: '2026-11-23T11:00:00.000Z', unread_count: 1 })

    const back = await t.call('POST', `/dialogs/${dialogId}/read_up_to`, { token: b.access_token, body: { last_read_message_id: m1.id } })
    expect(back.status).toBe(200)
    expect(back.body).toEqual(read.body)

    const senderView = (await t.call('GET', `/dialogs/${dialogId}`, { token: a.access_token })).body
    expect(senderView.peer_last_read_message_id).toBe(m2.id)
    expect(senderView.peer_last_delivered_message_id).toBe(m2.id)
    expect((await t.call('GET', `/dialogs/${dialogId}`, { token: b.access_token })).body.last_read_message_id).toBe(m2.id)
    expect((await page(a, dialogId)).body.messages.map((m) => [m.id, m.status])).toEqual([
      [m1.id, 'read'],
      [m2.id, 'read'],
      [m3.id, 'sent'],
    ])
  })

  test('read_up_to: the id must belong to the dialog (422); bad body → 422', async () => {
    const one = await t.pair()
    const two = await t.pair()
    const foreign = (await send(two.a, two.dialogId, 'f')).body
    const res = await t.call('POST', `/dialogs/${one.dialogId}/read_up_to`, { token: one.b.access_token, body: { last_read_message_id: foreign.id } })
    expect(res.status).toBe(422)
    expect(res.body.error.details.field).toBe('last_read_message_id')
    const missing = await t.call('POST', `/dialogs/${one.dialogId}/read_up_to`, { token: one.b.access_token, body: {} })
    expect(missing.status).toBe(422)
    expect(missing.body.error.details.field).toBe('last_read_message_id')
    const badTime = await t.call('POST', `/dialogs/${one.dialogId}/read_up_to`, {
      token: one.b.access_token,
      body: { last_read_message_id: foreign.id, read_at: 'noon' },
    })
    expect(badTime.status).toBe(422)
  })
})
