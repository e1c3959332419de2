import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createTestApp, expectContractError, type Session, type TestApp } from './support/app'
import { dialects } from './support/databases'

type Message = {
  id: number
  dialog_id: number
  seq: number
  sender_id: number
  client_msg_id: string
  type: string
  text: string
  created_at: string
  status: 'sent' | 'delivered' | 'read'
  edited_at: string | null
  deleted: boolean
  reactions: { emoji: string; user_ids: number[] }[]
  version: number
  attachment: unknown
}
type Page = { messages: Message[]; has_more: boolean }

const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

describe.each(dialects)('REST messages on %s', (dialect) => {
  let t: TestApp
  const post = (s: Session, dialogId: number | string, body: unknown) => t.call<Message>('POST', `/dialogs/${dialogId}/messages`, { token: s.access_token, body })
  const send = (s: Session, dialogId: number, id: string, text = id) => post(s, dialogId, { client_msg_id: id, type: 'text', text })
  const page = (s: Session, dialogId: number, query = '') => t.call<Page>('GET', `/dialogs/${dialogId}/messages${query}`, { token: s.access_token })
  const readUpTo = (s: Session, dialogId: number, body: unknown) => t.call('POST', `/dialogs/${dialogId}/read_up_to`, { token: s.access_token, body })
  const seqs = (r: { body: Page }) => r.body.messages.map((m) => m.seq)

  beforeAll(async () => {
    t = await createTestApp(dialect)
  })
  afterAll(() => t.close())

  test('?before= with digits past the millisecond (Python isoformat): messages strictly before it are on the page', async () => {
    const { a, dialogId } = await t.pair()
    const first = (await send(a, dialogId, 'sub-1')).body
    await Bun.sleep(3)
    const second = (await send(a, dialogId, 'sub-2')).body
    // 0.9 ms and 0.1 µs after `second`: both messages are strictly before either bound.
    for (const before of [second.created_at.replace('Z', '9Z'), second.created_at.replace('Z', '0001+00:00')])
      expect(seqs(await page(a, dialogId, `?before=${encodeURIComponent(before)}`))).toEqual([first.seq, second.seq])
    // Zeros past the millisecond name the same instant: still strictly after `first` only.
    expect(seqs(await page(a, dialogId, `?before=${encodeURIComponent(second.created_at.replace('Z', '000Z'))}`))).toEqual([first.seq])
  })

  test('POST messages → 201 the Message; ids global and increasing, seq 1, 2, 3 per dialog', async () => {
    const { a, b, dialogId } = await t.pair()
    const other = await t.pair()
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
      created_at: expect.stringMatching(ISO_MS),
      status: 'sent',
      edited_at: null,
      deleted: false,
      reactions: [],
      version: 1,
      attachment: null,
    })
    const elsewhere = await send(other.a, other.dialogId, 'c-1')
    const second = await send(b, dialogId, 'c-2', 'hi back')
    expect(elsewhere.body.seq).toBe(1)
    expect(second.body.seq).toBe(2)
    expect(elsewhere.body.id).toBeGreaterThan(first.body.id)
    expect(second.body.id).toBeGreaterThan(elsewhere.body.id)
    expect(second.body.created_at >= first.body.created_at).toBe(true)
  })

  test('a repeated client_msg_id → 200 with the original (even with other text), nothing new; another sender or dialog may reuse it', async () => {
    const { a, b, dialogId } = await t.pair()
    const second = await t.call('POST', '/dialogs', { token: a.access_token, body: { peer_user_id: (await t.register()).user.id } })
    const original = await send(a, dialogId, 'dup', 'original')
    expect(original.status).toBe(201)
    const retry = await send(a, dialogId, 'dup', 'changed')
    expect(retry.status).toBe(200)
    expect(retry.body).toEqual(original.body)
    // The retry answers the current status of the original.
    await readUpTo(b, dialogId, { last_read_message_id: original.body.id })
    expect((await send(a, dialogId, 'dup', 'again')).body).toEqual({ ...original.body, status: 'read' })
    const byPeer = await send(b, dialogId, 'dup', 'from b')
    expect(byPeer.status).toBe(201)
    expect(byPeer.body.seq).toBe(2)
    const inOtherDialog = await send(a, second.body.id, 'dup', 'other dialog')
    expect(inOtherDialog.status).toBe(201)
    expect((await page(a, dialogId)).body.messages.map((m) => m.text)).toEqual(['original', 'from b'])
  })

  test('text is 1–4000 characters counted as code points: 4000 emoji accepted, 4001 rejected; whitespace-only rejected', async () => {
    const { a, dialogId } = await t.pair()
    const emoji = await send(a, dialogId, 'emoji', '😀'.repeat(4000))
    expect(emoji.status).toBe(201)
    expect([...emoji.body.text]).toHaveLength(4000)
    expect((await send(a, dialogId, 'ascii', 'x'.repeat(4000))).status).toBe(201)
    expect((await send(a, dialogId, 'one', '.')).status).toBe(201)
    expect((await send(a, dialogId, 'padded', '  a  ')).body.text).toBe('  a  ')
    // Stored as sent, astral characters included.
    const stored = (await page(a, dialogId)).body.messages
    expect(stored.map((m) => m.text)).toEqual(['😀'.repeat(4000), 'x'.repeat(4000), '.', '  a  '])
    for (const text of ['😀'.repeat(4001), 'x'.repeat(4001), 'x'.repeat(3999) + '😀😀', '', ' ', '\n\t \r', '\u00a0\u2003'])
      expectContractError(await send(a, dialogId, `bad-${text.length}`, text), 422, 'validation_failed', 'text')
  })

  test('send body validation names the field; a text no database can store (NUL, lone surrogate) → 422, never 500', async () => {
    const { a, dialogId } = await t.pair()
    const cases: [unknown, string][] = [
      [{ type: 'text', text: 'x' }, 'client_msg_id'],
      [{ client_msg_id: '', type: 'text', text: 'x' }, 'client_msg_id'],
      [{ client_msg_id: 'x'.repeat(65), type: 'text', text: 'x' }, 'client_msg_id'],
      [{ client_msg_id: 7, type: 'text', text: 'x' }, 'client_msg_id'],
      [{ client_msg_id: 'a\u0000b', type: 'text', text: 'x' }, 'client_msg_id'],
      [{ client_msg_id: 'c', type: 'video', text: 'x' }, 'type'],
      [{ client_msg_id: 'c', text: 'x' }, 'type'],
      [{ client_msg_id: 'c', type: 'text' }, 'text'],
      [{ client_msg_id: 'c', type: 'text', text: 5 }, 'text'],
      [{ client_msg_id: 'c', type: 'text', text: 'a\u0000b' }, 'text'],
      [{ client_msg_id: 'c', type: 'text', text: 'a\ud800b' }, 'text'],
    ]
    for (const [body, field] of cases) expectContractError(await post(a, dialogId, body), 422, 'validation_failed', field)
    expect((await post(a, dialogId, { client_msg_id: 'x'.repeat(64), type: 'text', text: 'max id' })).status).toBe(201)
    expect((await page(a, dialogId)).body.messages.map((m) => m.text)).toEqual(['max id'])
  })

  test('POST or GET messages of a dialog that does not exist → 404; a bad dialog_id → 422 naming it', async () => {
    const { a } = await t.pair()
    expectContractError(await send(a, 999_999, 'x'), 404, 'not_found')
    for (const bad of ['abc', '0', '3000000000']) {
      expectContractError(await post(a, bad, { client_msg_id: 'x', type: 'text', text: 'x' }), 422, 'validation_failed', 'dialog_id')
      expectContractError(await t.call('GET', `/dialogs/${bad}/messages`, { token: a.access_token }), 422, 'validation_failed', 'dialog_id')
    }
  })

  test('40 parallel sends from both members → seq 1..40, no gaps, no duplicates, ids in seq order', async () => {
    const { a, b, dialogId } = await t.pair()
    const results = await Promise.all(range(1, 40).map((i) => send(i % 2 ? a : b, dialogId, `p${i}`)))
    expect(results.map((r) => r.status)).toEqual(Array(40).fill(201))
    expect(results.map((r) => r.body.seq).sort((x, y) => x - y)).toEqual(range(1, 40))
    const all = (await page(b, dialogId, '?limit=100')).body.messages
    expect(all.map((m) => m.seq)).toEqual(range(1, 40))
    expect(new Set(all.map((m) => m.id)).size).toBe(40)
    expect(all.map((m) => m.id)).toEqual(all.map((m) => m.id).sort((x, y) => x - y))
    expect(all.map((m) => m.client_msg_id).sort()).toEqual(range(1, 40).map((i) => `p${i}`).sort())
    // The dialog's last message is the seq-40 one.
    const dialog = await t.call('GET', `/dialogs/${dialogId}`, { token: a.access_token })
    expect(dialog.body.last_message.seq).toBe(40)
  })

  test('parallel retries of one client_msg_id create one message', async () => {
    const { a, dialogId } = await t.pair()
    const results = await Promise.all(range(1, 6).map(() => send(a, dialogId, 'same', 'once')))
    expect(results.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 201])
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1)
    expect(seqs(await page(a, dialogId))).toEqual([1])
  })

  test('history: no cursor → the newest 30 ascending; limit 1–100; has_more says older exist', async () => {
    const { a, b, dialogId } = await t.pair()
    expect((await page(a, dialogId)).body).toEqual({ messages: [], has_more: false })
    for (let i = 1; i <= 35; i++) await send(i % 3 ? a : b, dialogId, `h${i}`)
    const newest = await page(a, dialogId)
    expect(newest.status).toBe(200)
    expect(seqs(newest)).toEqual(range(6, 35))
    expect(newest.body.has_more).toBe(true)
    expect(seqs(await page(a, dialogId, '?limit=1'))).toEqual([35])
    const all = await page(a, dialogId, '?limit=100')
    expect(seqs(all)).toEqual(range(1, 35))
    expect(all.body.has_more).toBe(false)
    const exact = await page(a, dialogId, '?limit=35')
    expect(exact.body.has_more).toBe(false)
    expect((await page(a, dialogId, '?limit=34')).body.has_more).toBe(true)
    for (const limit of ['0', '101', '-5', 'many', '1.5'])
      expectContractError(await page(a, dialogId, `?limit=${limit}`), 422, 'validation_failed', 'limit')
  })

  test('history: before_id and after_id page both ways with has_more in each direction, also with ids of another dialog', async () => {
    const { a, b, dialogId } = await t.pair()
    const other = await t.pair()
    const sent: Message[] = []
    const foreign: Message[] = []
    for (let i = 1; i <= 12; i++) {
      sent.push((await send(i % 2 ? a : b, dialogId, `i${i}`)).body)
      foreign.push((await send(other.a, other.dialogId, `o${i}`)).body)
    }
    const id = (seq: number) => sent[seq - 1]!.id

    const older = await page(b, dialogId, `?before_id=${id(8)}&limit=4`)
    expect(seqs(older)).toEqual([4, 5, 6, 7])
    expect(older.body.has_more).toBe(true)
    const oldest = await page(b, dialogId, `?before_id=${id(4)}&limit=4`)
    expect(seqs(oldest)).toEqual([1, 2, 3])
    expect(oldest.body.has_more).toBe(false)
    expect((await page(b, dialogId, `?before_id=${id(1)}`)).body).toEqual({ messages: [], has_more: false })

    const newer = await page(b, dialogId, `?after_id=${id(3)}&limit=4`)
    expect(seqs(newer)).toEqual([4, 5, 6, 7])
    expect(newer.body.has_more).toBe(true)
    const newest = await page(b, dialogId, `?after_id=${id(8)}&limit=4`)
    expect(seqs(newest)).toEqual([9, 10, 11, 12])
    expect(newest.body.has_more).toBe(false)
    expect((await page(b, dialogId, `?after_id=${id(12)}`)).body).toEqual({ messages: [], has_more: false })
    // after_id=0: the catch-up from the very start, oldest first.
    const fromStart = await page(b, dialogId, '?after_id=0&limit=5')
    expect(seqs(fromStart)).toEqual([1, 2, 3, 4, 5])
    expect(fromStart.body.has_more).toBe(true)
    // A catch-up walk visits every message exactly once.
    const seen: number[] = []
    let cursor = 0
    for (;;) {
      const p = await page(b, dialogId, `?after_id=${cursor}&limit=5`)
      seen.push(...seqs(p))
      if (!p.body.has_more) break
      cursor = p.body.messages.at(-1)!.id
    }
    expect(seen).toEqual(range(1, 12))
    // An id of another dialog is a cursor all the same: ids are global, so it orders against this dialog's.
    expect(seqs(await page(b, dialogId, `?before_id=${foreign[3]!.id}`))).toEqual([1, 2, 3, 4])
    expect(seqs(await page(b, dialogId, `?after_id=${foreign[6]!.id}`))).toEqual([8, 9, 10, 11, 12])
  })

  test('history: before=<ISO with offset> is strictly older, any offset; non-ISO or offset-less → 422 naming before', async () => {
    const { a, b, dialogId } = await t.pair()
    const sent: Message[] = []
    for (let i = 1; i <= 6; i++) {
      sent.push((await send(i % 2 ? a : b, dialogId, `b${i}`)).body)
      await Bun.sleep(3) // distinct times
    }
    const at = sent[3]!.created_at // seq 4
    const byZ = await page(b, dialogId, `?before=${encodeURIComponent(at)}`)
    expect(seqs(byZ)).toEqual([1, 2, 3])
    expect(byZ.body.has_more).toBe(false)
    const limited = await page(b, dialogId, `?before=${encodeURIComponent(at)}&limit=2`)
    expect(seqs(limited)).toEqual([2, 3])
    expect(limited.body.has_more).toBe(true)
    // The same instant written with another offset.
    const instant = new Date(at)
    const plusTwo = new Date(instant.getTime() + 2 * 3600_000).toISOString().replace('Z', '+02:00')
    expect(seqs(await page(b, dialogId, `?before=${encodeURIComponent(plusTwo)}`))).toEqual([1, 2, 3])
    const minusFive = new Date(instant.getTime() - 5.5 * 3600_000).toISOString().replace('Z', '-05:30')
    expect(seqs(await page(b, dialogId, `?before=${encodeURIComponent(minusFive)}`))).toEqual([1, 2, 3])
    expect(seqs(await page(b, dialogId, `?before=${encodeURIComponent('2999-01-01T00:00:00Z')}&limit=2`))).toEqual([5, 6])
    expect((await page(b, dialogId, `?before=${encodeURIComponent('2000-01-01T00:00:00.000Z')}`)).body).toEqual({ messages: [], has_more: false })

    for (const bad of ['yesterday', '2026-11-23', '2026-11-23T10:15:30', '2026-11-23T10:15:30.123', '2026-11-23 10:15:30Z', '1700000000', '2026-13-01T00:00:00Z', '2026-02-30T00:00:00Z', ''])
      expectContractError(await page(b, dialogId, `?before=${encodeURIComponent(bad)}`), 422, 'validation_failed', 'before')
    // Only one cursor at a time.
    expectContractError(await page(b, dialogId, `?before_id=${sent[2]!.id}&after_id=0`), 422, 'validation_failed', 'after_id')
    for (const [query, field] of [
      ['?before_id=0', 'before_id'],
      ['?before_id=-1', 'before_id'],
      ['?before_id=x', 'before_id'],
      ['?after_id=-1', 'after_id'],
      ['?after_id=3000000000', 'after_id'],
      ['?before_id=99999999999999999999', 'before_id'],
    ])
      expectContractError(await page(b, dialogId, query), 422, 'validation_failed', field)
  })

  test('status is the recipient progress: sent → delivered → read, the same for both members', async () => {
    const { a, b, dialogId } = await t.pair()
    const m1 = (await send(a, dialogId, 's1')).body
    const m2 = (await send(a, dialogId, 's2')).body
    const m3 = (await send(a, dialogId, 's3')).body
    const fromB = (await send(b, dialogId, 's4')).body
    const statuses = async (s: Session) => (await page(s, dialogId)).body.messages.map((m) => m.status)
    expect(await statuses(a)).toEqual(['sent', 'sent', 'sent', 'sent'])
    // Delivery is reported over WebSocket (message:delivered); the service call is that path.
    await t.core.messages.delivered(b.user.id, m2.id, new Date())
    expect(await statuses(a)).toEqual(['delivered', 'delivered', 'sent', 'sent'])
    expect(await statuses(b)).toEqual(['delivered', 'delivered', 'sent', 'sent'])
    await readUpTo(b, dialogId, { last_read_message_id: m1.id })
    expect(await statuses(b)).toEqual(['read', 'delivered', 'sent', 'sent'])
    // b's own message follows a's progress, not b's.
    await readUpTo(a, dialogId, { last_read_message_id: fromB.id })
    expect(await statuses(b)).toEqual(['read', 'delivered', 'sent', 'read'])
    await readUpTo(b, dialogId, { last_read_message_id: m3.id })
    expect(await statuses(a)).toEqual(['read', 'read', 'read', 'read'])
  })

  test('read_up_to → 200 state; forward only; moves delivered too; counts unread', async () => {
    const { a, b, dialogId } = await t.pair()
    const m = [] as Message[]
    for (let i = 1; i <= 4; i++) m.push((await send(a, dialogId, `r${i}`)).body)
    await send(b, dialogId, 'own') // b's own message never counts as unread for b
    expect((await t.call('GET', `/dialogs/${dialogId}`, { token: b.access_token })).body.unread_count).toBe(4)

    const read = await readUpTo(b, dialogId, { last_read_message_id: m[1]!.id, read_at: '2026-11-23T12:00:00.250+01:00' })
    expect(read.status).toBe(200)
    expect(read.body).toEqual({ dialog_id: dialogId, last_read_message_id: m[1]!.id, read_at: '2026-11-23T11:00:00.250Z', unread_count: 2 })

    // An older id: 200 with the current state, nothing moves back.
    const back = await readUpTo(b, dialogId, { last_read_message_id: m[0]!.id })
    expect(back.status).toBe(200)
    expect(back.body).toEqual(read.body)
    const same = await readUpTo(b, dialogId, { last_read_message_id: m[1]!.id })
    expect(same.body.last_read_message_id).toBe(m[1]!.id)

    const senderView = (await t.call('GET', `/dialogs/${dialogId}`, { token: a.access_token })).body
    expect(senderView.peer_last_read_message_id).toBe(m[1]!.id)
    expect(senderView.peer_last_delivered_message_id).toBe(m[1]!.id)
    expect(senderView.last_read_message_id).toBe(0)
    const readerView = (await t.call('GET', `/dialogs/${dialogId}`, { token: b.access_token })).body
    expect(readerView.last_read_message_id).toBe(m[1]!.id)
    expect(readerView.unread_count).toBe(2)

    // Without read_at the server stamps the time; reading to the end leaves nothing unread.
    const before = Date.now()
    const all = await readUpTo(b, dialogId, { last_read_message_id: m[3]!.id })
    expect(all.body.unread_count).toBe(0)
    expect(all.body.read_at).toMatch(ISO_MS)
    expect(Date.parse(all.body.read_at)).toBeGreaterThanOrEqual(before - 1000)
  })

  test('read_up_to: an id of another dialog or no message → 422 naming last_read_message_id; bad body → 422', async () => {
    const one = await t.pair()
    const two = await t.pair()
    const mine = (await send(one.a, one.dialogId, 'mine')).body
    const foreign = (await send(two.a, two.dialogId, 'theirs')).body
    for (const id of [foreign.id, 999_999])
      expectContractError(await readUpTo(one.b, one.dialogId, { last_read_message_id: id }), 422, 'validation_failed', 'last_read_message_id')
    for (const body of [{}, { last_read_message_id: 0 }, { last_read_message_id: 'x' }, { last_read_message_id: 3_000_000_000 }])
      expectContractError(await readUpTo(one.b, one.dialogId, body), 422, 'validation_failed', 'last_read_message_id')
    for (const readAt of ['noon', '2026-11-23T10:00:00', 5])
      expectContractError(await readUpTo(one.b, one.dialogId, { last_read_message_id: mine.id, read_at: readAt }), 422, 'validation_failed', 'read_at')
    // None of it moved the watermark.
    expect((await t.call('GET', `/dialogs/${one.dialogId}`, { token: one.b.access_token })).body.last_read_message_id).toBe(0)
    expectContractError(await readUpTo(one.b, 999_999, { last_read_message_id: mine.id }), 404, 'not_found')
  })
})

describe.each(dialects)('REST send rate limit on %s', (dialect) => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp(dialect, { SEND_RATE_BURST: '3', SEND_RATE_PER_SEC: '0.01' })
  })
  afterAll(() => t.close())

  test('sending faster than SEND_RATE_BURST → 429 rate_limited with Retry-After; per user', async () => {
    const { a, b, dialogId } = await t.pair()
    const send = (s: Session, id: string) =>
      t.call('POST', `/dialogs/${dialogId}/messages`, { token: s.access_token, body: { client_msg_id: id, type: 'text', text: id } })
    for (const id of ['1', '2', '3']) expect((await send(a, id)).status).toBe(201)
    const limited = await send(a, '4')
    expectContractError(limited, 429, 'rate_limited')
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
    expect(limited.headers.get('retry-after')).toMatch(/^\d+$/)
    // The other member has a bucket of their own; reading is not limited.
    expect((await send(b, 'b1')).status).toBe(201)
    expect((await t.call('GET', `/dialogs/${dialogId}/messages`, { token: a.access_token })).body.messages).toHaveLength(4)
  })
})
