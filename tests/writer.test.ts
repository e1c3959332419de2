import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { eq } from 'drizzle-orm'
import postgres from 'postgres'
import type { SendOutcome } from '../src/messages/sends'
import { logFaultsTo } from '../src/log/fault'
import { Logger } from '../src/log/logger'
import { MessageWriter } from '../src/messages/writer'
import { exec, openDatabase, rows } from '../src/storage/database'
import { createTestApp, type TestApp } from './support/app'
import { dialects } from './support/databases'

const send = (dialogId: number, senderId: number, clientMsgId: string, text = clientMsgId) => ({
  dialogId,
  senderId,
  clientMsgId,
  type: 'text',
  text,
})

function batchSizes(metrics: string): { count: number; sum: number } {
  const count = Number(/chat_write_batch_size_count (\d+)/.exec(metrics)?.[1])
  const sum = Number(/chat_write_batch_size_sum (\d+)/.exec(metrics)?.[1])
  return { count, sum }
}

/** Commits the writer made, batches and any retries of their parts alike. */
const commits = (metrics: string) => Number(/chat_writer_commit_seconds_count (\d+)/.exec(metrics)?.[1])

describe.each(dialects)('group-commit writer on %s', (dialect) => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp(dialect, { WRITER_BATCH_MAX: '64' })
  })
  afterAll(() => t.close())

  test('sends of the same turn commit in one transaction, numbered 1..n', async () => {
    const { a, dialogId } = await t.pair()
    const before = batchSizes((await t.call('GET', '/metrics')).body)
    const outcomes = await Promise.all(
      Array.from({ length: 50 }, (_, i) => t.core.writer.submit(send(dialogId, a.user.id, `m${i}`))),
    )
    const after = batchSizes((await t.call('GET', '/metrics')).body)
    expect(after.count - before.count).toBe(1)
    expect(after.sum - before.sum).toBe(50)
    const seqs = outcomes.map((o) => (o.kind === 'created' ? o.message.seq : -1))
    expect(seqs).toEqual(Array.from({ length: 50 }, (_, i) => i + 1))
  })

  test('a batch over the size bound is split, and seq stays gapless across batches', async () => {
    const { a, b, dialogId } = await t.pair()
    const before = batchSizes((await t.call('GET', '/metrics')).body)
    const outcomes = await Promise.all(
      Array.from({ length: 150 }, (_, i) => t.core.writer.submit(send(dialogId, i % 2 ? a.user.id : b.user.id, `n${i}`))),
    )
    const after = batchSizes((await t.call('GET', '/metrics')).body)
    expect(after.count - before.count).toBe(3)
    const seqs = outcomes.map((o) => (o.kind === 'created' ? o.message.seq : -1)).sort((x, y) => x - y)
    expect(seqs).toEqual(Array.from({ length: 150 }, (_, i) => i + 1))
  })

  test('a backlog of several batches leaves the event loop a turn between them', async () => {
    const { a, dialogId } = await t.pair()
    let settled = 0
    const all = Promise.all(
      Array.from({ length: 192 }, (_, i) => t.core.writer.submit(send(dialogId, a.user.id, `b${i}`)).then(() => settled++)),
    )
    // Queued before anything the writer queues once the first batch settles: it runs between batches, not
    // after the whole backlog (SQLite commits synchronously; chained, they kept the loop for all three).
    const seenBetween = await new Promise<number>((resolve) => setImmediate(() => resolve(settled)))
    await all
    expect(settled).toBe(192)
    expect(seenBetween).toBeLessThan(192)
  })

  test('a duplicate inside one batch resolves to the original, and so does a later retry', async () => {
    const { a, dialogId } = await t.pair()
    const [first, second, other] = await Promise.all([
      t.core.writer.submit(send(dialogId, a.user.id, 'dup', 'one')),
      t.core.writer.submit(send(dialogId, a.user.id, 'dup', 'two')),
      t.core.writer.submit(send(dialogId, a.user.id, 'other')),
    ])
    expect(first!.kind).toBe('created')
    expect(second!.kind).toBe('duplicate')
    if (first!.kind === 'missing' || second!.kind === 'missing' || other!.kind === 'missing') throw new Error('missing')
    expect(second!.message.id).toBe(first!.message.id)
    expect(second!.message.text).toBe('one')
    expect(other!.message.seq).toBe(2)
    const retry = await t.core.writer.submit(send(dialogId, a.user.id, 'dup', 'three'))
    expect(retry.kind).toBe('duplicate')
    if (retry.kind === 'missing') throw new Error('missing')
    expect(retry.message.id).toBe(first!.message.id)
    const next = await t.core.writer.submit(send(dialogId, a.user.id, 'after'))
    expect(next.kind === 'created' && next.message.seq).toBe(3)
  })

  test('a batch mixing a retry of a stored message with new sends: the retry resolves, the rest are numbered on', async () => {
    const { a, b, dialogId } = await t.pair()
    const first = await t.core.writer.submit(send(dialogId, a.user.id, 'stored'))
    const before = commits((await t.call('GET', '/metrics')).body)
    const outcomes = await Promise.all([
      t.core.writer.submit(send(dialogId, b.user.id, 'fresh-1')),
      t.core.writer.submit(send(dialogId, a.user.id, 'stored', 'retried text')),
      t.core.writer.submit(send(dialogId, b.user.id, 'fresh-2')),
    ])
    // One commit: the batch did not fail over to sends one by one (on Postgres: the careful way's insert works).
    expect(commits((await t.call('GET', '/metrics')).body) - before).toBe(1)
    expect(outcomes.map((o) => o.kind)).toEqual(['created', 'duplicate', 'created'])
    if (first.kind !== 'created' || outcomes[1]!.kind !== 'duplicate') throw new Error('unexpected outcome')
    expect(outcomes[1]!.message.id).toBe(first.message.id)
    expect(outcomes.map((o) => (o.kind === 'missing' ? -1 : o.message.seq))).toEqual([2, 1, 3])
  })

  test('created_at never goes back within a dialog, even when the clock does', async () => {
    const { a, dialogId } = await t.pair()
    // The dialog's last activity is an hour ahead, as after a clock that has since stepped back.
    const ahead = new Date(Date.now() + 3_600_000)
    await t.db.tx(function* ({ db, t: tables }) {
      yield* exec(db.update(tables.dialogs).set({ lastActivityAt: ahead }).where(eq(tables.dialogs.id, dialogId)))
    })
    const [first, second] = await Promise.all([
      t.core.writer.submit(send(dialogId, a.user.id, 'late-1')),
      t.core.writer.submit(send(dialogId, a.user.id, 'late-2')),
    ])
    if (first!.kind !== 'created' || second!.kind !== 'created') throw new Error('not created')
    expect(first!.message.createdAt.getTime()).toBe(ahead.getTime())
    expect(second!.message.createdAt.getTime()).toBe(ahead.getTime())
    // …and history by time still finds them on the right side.
    const page = await t.call('GET', `/dialogs/${dialogId}/messages?before=${encodeURIComponent(new Date(ahead.getTime() + 1).toISOString())}`, {
      token: a.access_token,
    })
    expect(page.body.messages.map((m: { client_msg_id: string }) => m.client_msg_id)).toEqual(['late-1', 'late-2'])
    const none = await t.call('GET', `/dialogs/${dialogId}/messages?before=${encodeURIComponent(ahead.toISOString())}`, { token: a.access_token })
    expect(none.body.messages).toEqual([])
  })

  test('a send that fails (its upload already on another message) fails alone; its batch-mates commit', async () => {
    const { a, dialogId } = await t.pair()
    // An upload is attached once (messages_attachment_uq); the writer trusts the claim made before it.
    const withUpload = (clientMsgId: string) => ({ ...send(dialogId, a.user.id, clientMsgId), type: 'file', attachmentId: 424242, attachment: '{}' })
    expect((await t.core.writer.submit(withUpload('first'))).kind).toBe('created')
    // On Postgres the failure is Postgres's answer (a unique violation, wrapped by drizzle inside a
    // transaction): the careful way gives up at once, not after the retries of an unknown outcome.
    let careful = 0
    const pg = t.db.dialect === 'pg' ? t.db.pg : undefined
    const tx = pg?.tx
    if (pg && tx) pg.tx = (work) => (careful++, tx(work))
    const logged: string[] = []
    const log = logFaultsTo(new Logger({ level: 'info', format: 'json' }, (line) => logged.push(line)))
    const results = await Promise.allSettled([
      t.core.writer.submit(send(dialogId, a.user.id, 'ok1')),
      t.core.writer.submit(withUpload('bad')),
      t.core.writer.submit(send(dialogId, a.user.id, 'ok2')),
    ]).finally(() => {
      if (pg && tx) pg.tx = tx
      logFaultsTo(log)
    })
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
    // The batch's failure is not silent: one line for it (the bad send's own error goes to its caller).
    expect(logged.map((line) => JSON.parse(line).msg)).toEqual(['a batch of 3 sends failed; committing them one by one'])
    // Once for the batch, once for the bad send alone.
    if (t.db.dialect === 'pg') expect(careful).toBe(2)
    const page = await t.call('GET', `/dialogs/${dialogId}/messages`, { token: a.access_token })
    expect(page.body.messages.map((m: { client_msg_id: string; seq: number }) => [m.client_msg_id, m.seq])).toEqual([
      ['first', 1],
      ['ok1', 2],
      ['ok2', 3],
    ])
  })

  // On Postgres messages have no foreign key to users: the writer's check is all that keeps a sender real.
  for (const path of ['a plain batch', 'a batch with a retry in it (on Postgres, the careful way)'])
    test(`a send from anyone but the dialog's two users answers missing and stores nothing; its batch-mates commit (${path})`, async () => {
      const { a, b, dialogId } = await t.pair()
      const stranger = await t.pair()
      const careful = path !== 'a plain batch'
      if (careful) expect((await t.core.writer.submit(send(dialogId, a.user.id, 'again'))).kind).toBe('created')
      const outcomes = await Promise.all([
        t.core.writer.submit(send(dialogId, a.user.id, 'y1')),
        t.core.writer.submit(send(dialogId, stranger.a.user.id, 'x1')),
        t.core.writer.submit(send(dialogId, 987654, 'x2')),
        t.core.writer.submit(send(dialogId, b.user.id, 'y2')),
        ...(careful ? [t.core.writer.submit(send(dialogId, a.user.id, 'again'))] : []),
      ])
      const kinds: SendOutcome['kind'][] = ['created', 'missing', 'missing', 'created', ...(careful ? (['duplicate'] as const) : [])]
      expect(outcomes.map((o) => o.kind)).toEqual(kinds)
      const stored = await t.db.read(function* ({ db, t: tables }) {
        return yield* rows(db.select({ sender: tables.messages.senderId, seq: tables.messages.seq }).from(tables.messages).where(eq(tables.messages.dialogId, dialogId)))
      })
      const first = careful ? 2 : 1
      expect(stored.sort((x, y) => x.seq - y.seq)).toEqual([
        ...(careful ? [{ sender: a.user.id, seq: 1 }] : []),
        { sender: a.user.id, seq: first },
        { sender: b.user.id, seq: first + 1 },
      ])
    })

  test("a deleted user's messages go with their dialogs, and no one else's", async () => {
    const doomed = await t.pair()
    const kept = await t.pair()
    const sent = await Promise.all([
      t.core.writer.submit(send(doomed.dialogId, doomed.a.user.id, 'g1')),
      t.core.writer.submit(send(doomed.dialogId, doomed.b.user.id, 'g2')),
      t.core.writer.submit(send(kept.dialogId, kept.a.user.id, 's')),
    ])
    expect(sent.map((o) => o.kind)).toEqual(['created', 'created', 'created'])
    const ids = sent.map((o) => (o.kind === 'created' ? o.message.id : -1))
    await t.db.tx(function* ({ db, t: tables }) {
      yield* exec(db.delete(tables.users).where(eq(tables.users.id, doomed.a.user.id)))
    })
    const left = await t.db.read(function* ({ db, t: tables }) {
      return (yield* rows(db.select({ id: tables.messages.id }).from(tables.messages))).map((m) => m.id)
    })
    expect(ids.filter((id) => left.includes(id))).toEqual([ids[2]!])
  })

  test('a send to a dialog deleted in between answers missing; its batch-mates commit', async () => {
    const doomed = await t.pair()
    const kept = await t.pair()
    await t.db.tx(function* ({ db, t: tables }) {
      yield* exec(db.delete(tables.dialogs).where(eq(tables.dialogs.id, doomed.dialogId)))
    })
    const outcomes = await Promise.all([
      t.core.writer.submit(send(kept.dialogId, kept.a.user.id, 'y1')),
      t.core.writer.submit(send(doomed.dialogId, doomed.a.user.id, 'x')),
      t.core.writer.submit(send(kept.dialogId, kept.b.user.id, 'y2')),
      t.core.writer.submit(send(doomed.dialogId, doomed.b.user.id, 'x')),
      t.core.writer.submit(send(kept.dialogId, kept.a.user.id, 'y1')),
    ])
    expect(outcomes.map((o) => o.kind)).toEqual(['created', 'missing', 'created', 'missing', 'duplicate'])
    const placed = outcomes.map((o) => (o.kind === 'missing' ? undefined : [o.message.clientMsgId, o.message.seq]))
    expect(placed).toEqual([['y1', 1], undefined, ['y2', 2], undefined, ['y1', 1]])
  })

  test('a deleted dialog takes its messages and their reactions with it, and no other dialog\'s', async () => {
    const doomed = await t.pair()
    const kept = await t.pair()
    const [gone, stays] = await Promise.all([
      t.core.writer.submit(send(doomed.dialogId, doomed.a.user.id, 'g')),
      t.core.writer.submit(send(kept.dialogId, kept.a.user.id, 's')),
    ])
    if (gone.kind !== 'created' || stays.kind !== 'created') throw new Error('setup: sends not created')
    for (const message of [gone.message, stays.message])
      await t.db.tx(function* ({ db, t: tables }) {
        yield* exec(db.insert(tables.messageReactions).values({ messageId: message.id, emoji: '👍', userId: message.senderId, createdAt: new Date() }))
      })
    await t.db.tx(function* ({ db, t: tables }) {
      yield* exec(db.delete(tables.dialogs).where(eq(tables.dialogs.id, doomed.dialogId)))
    })
    const left = await t.db.read(function* ({ db, t: tables }) {
      return {
        messages: (yield* rows(db.select({ id: tables.messages.id }).from(tables.messages))).map((m) => m.id),
        reactions: (yield* rows(db.select({ id: tables.messageReactions.messageId }).from(tables.messageReactions))).map((r) => r.id),
      }
    })
    expect(left.messages).toContain(stays.message.id)
    expect(left.messages).not.toContain(gone.message.id)
    expect(left.reactions).toContain(stays.message.id)
    expect(left.reactions).not.toContain(gone.message.id)
  })

  test('two writers on two connections (two nodes) sending to the same dialogs keep seq gapless', async () => {
    const one = await t.pair()
    const two = await t.pair()
    const other = await openDatabase(t.core.config.database)
    try {
      const second = new MessageWriter(other, { batchMax: 16, batchWaitMs: 0 })
      const writers = [t.core.writer, second]
      const outcomes = await Promise.all(
        Array.from({ length: 200 }, (_, i) => {
          const pair = i % 3 ? one : two
          return writers[i % 2]!.submit(send(pair.dialogId, i % 4 < 2 ? pair.a.user.id : pair.b.user.id, `x${i}`))
        }),
      )
      expect(outcomes.every((o) => o.kind === 'created')).toBe(true)
      for (const pair of [one, two]) {
        const page = await t.call('GET', `/dialogs/${pair.dialogId}/messages?limit=100&after_id=0`, { token: pair.a.access_token })
        const seqs = page.body.messages.map((m: { seq: number }) => m.seq)
        expect(seqs).toEqual(seqs.map((_: number, i: number) => i + 1))
      }
      await second.drain()
    } finally {
      await other.close()
    }
  })

  test('receipts ride the batch: sends and watermark moves of the same turn commit together, folded per member', async () => {
    const { a, b, dialogId } = await t.pair()
    const stored = await Promise.all(Array.from({ length: 5 }, (_, i) => t.core.writer.submit(send(dialogId, a.user.id, `r${i}`))))
    const ids = stored.map((o) => (o.kind === 'created' ? o.message.id : 0))
    const at = new Date('2026-11-25T10:00:00.000Z')
    const before = batchSizes((await t.call('GET', '/metrics')).body)
    const mark = (messageId: number, read = false) => t.core.writer.mark({ dialogId, userId: b.user.id, messageId, at, read })
    const [newer, d1, d3, d2, r2, sent] = await Promise.all([
      t.core.writer.submit(send(dialogId, b.user.id, 'reply')),
      mark(ids[0]!),
      mark(ids[2]!),
      mark(ids[1]!),
      mark(ids[1]!, true),
      t.core.writer.submit(send(dialogId, b.user.id, 'reply-2')),
    ])
    const after = batchSizes((await t.call('GET', '/metrics')).body)
    expect({ batches: after.count - before.count, items: after.sum - before.sum }).toEqual({ batches: 1, items: 6 })
    expect([newer!.kind, sent!.kind]).toEqual(['created', 'created'])
    // Delivered went to the highest mark (id 3), read to id 2; only the marks that carried them say they moved.
    expect([d1, d3, d2, r2].map((o) => [o!.deliveredMoved, o!.readMoved])).toEqual([
      [false, false],
      [true, false],
      [false, false],
      [false, true],
    ])
    for (const o of [d1, d3, d2, r2])
      expect(o).toMatchObject({ lastDeliveredMessageId: ids[2], lastReadMessageId: ids[1], deliveredAt: at, readAt: at })
    // Unread for b: a's messages above the read mark (b's own replies do not count).
    expect(r2!.unread).toBe(3)

    // Never back: an older receipt later moves nothing.
    const late = await mark(ids[0]!, true)
    expect(late).toMatchObject({ readMoved: false, deliveredMoved: false, lastReadMessageId: ids[1], lastDeliveredMessageId: ids[2] })
  })

  test('a receipt that fails does not poison its batch: the sends are created, counted, and later retries are duplicates', async () => {
    const { a, b, dialogId } = await t.pair()
    const persisted = async () => Number(/chat_messages_persisted_total (\d+)/.exec((await t.call('GET', '/metrics')).body)?.[1])
    // Both members send once first, so the sends below reach the writer in one turn (membership cached).
    const first = await t.core.messages.send(a.user.id, { dialogId, clientMsgId: 'seen', type: 'text', text: 'seen' })
    await t.core.messages.send(b.user.id, { dialogId, clientMsgId: 'seen', type: 'text', text: 'seen' })
    const before = await persisted()
    const sendAs = (userId: number, id: string) => t.core.messages.send(userId, { dialogId, clientMsgId: id, type: 'text', text: id })
    // A mark of a user who is not a member fails on both dialects; it rides the same batch as 20 sends.
    const results = await Promise.allSettled([
      ...Array.from({ length: 10 }, (_, i) => sendAs(a.user.id, `p${i}`)),
      t.core.writer.mark({ dialogId, userId: 987654, messageId: first.message.id, at: new Date(), read: true }),
      ...Array.from({ length: 10 }, (_, i) => sendAs(b.user.id, `q${i}`)),
    ])
    expect(results[10]!.status).toBe('rejected')
    const created = results.filter((_, i) => i !== 10).map((r) => r.status === 'fulfilled' && (r.value as { created: boolean }).created)
    expect(created).toEqual(Array.from({ length: 20 }, () => true))
    expect((await persisted()) - before).toBe(20)
    const again = await t.call('POST', `/dialogs/${dialogId}/messages`, { token: a.access_token, body: { client_msg_id: 'p3', type: 'text', text: 'p3' } })
    expect(again.status).toBe(200)
  })

  test('with two batches in flight, a dialog held in one waits for it while another dialog commits; each dialog keeps its order', async () => {
    const x = await t.pair()
    const y = await t.pair()
    // The first commit waits until released (a slow round trip); everything after it runs at once.
    let release!: () => void
    let hold: Promise<void> | undefined = new Promise((resolve) => (release = resolve))
    const held = <T>(work: () => Promise<T>) => {
      const h = hold
      hold = undefined
      return h ? h.then(work) : work()
    }
    const db = t.db as typeof t.db & { pg: { read: (w: never) => Promise<unknown>; tx: (w: never) => Promise<unknown> } }
    const gated =
      db.dialect === 'pg'
        ? { ...db, pg: { read: (w: never) => held(() => db.pg.read(w)), tx: (w: never) => held(() => db.pg.tx(w)) } }
        : { ...db, tx: (w: never) => held(() => db.tx(w)) }
    const writer = new MessageWriter(gated as typeof t.db, { batchMax: 64, batchWaitMs: 0, batchesInFlight: 2 })
    let firstDone = false
    const first = writer.submit(send(x.dialogId, x.a.user.id, 'held1')).then((o) => ((firstDone = true), o))
    await Bun.sleep(20)
    const second = writer.submit(send(x.dialogId, x.a.user.id, 'held2'))
    const elsewhere = await writer.submit(send(y.dialogId, y.a.user.id, 'free1'))
    expect(elsewhere.kind).toBe('created')
    expect(firstDone).toBe(false)
    release()
    const [one, two] = await Promise.all([first, second])
    expect(one.kind === 'created' && two.kind === 'created' && two.message.seq).toBe(one.kind === 'created' ? one.message.seq + 1 : -1)
    await writer.drain()
  })

  test('drain waits until everything submitted is committed', async () => {
    const { a, dialogId } = await t.pair()
    const pending = Array.from({ length: 20 }, (_, i) => t.core.writer.submit(send(dialogId, a.user.id, `d${i}`)))
    await t.core.writer.drain()
    const stored = await t.db.read(function* ({ db, t: tables }) {
      return yield* rows(db.select({ id: tables.messages.id }).from(tables.messages).where(eq(tables.messages.dialogId, dialogId)))
    })
    expect(stored.length).toBe(20)
    await Promise.all(pending)
  })
})

describe.each(dialects.filter((d) => d === 'pg'))('receipts racing on %s', (dialect) => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp(dialect)
  })
  afterAll(() => t.close())

  test('a receipt that waited for another node\'s move of the same member says it moved only if it moved past it', async () => {
    const { a, b, dialogId } = await t.pair()
    const stored = await Promise.all(Array.from({ length: 6 }, (_, i) => t.core.writer.submit(send(dialogId, a.user.id, `race${i}`))))
    const ids = stored.map((o) => (o.kind === 'created' ? o.message.id : 0))
    const { url } = t.core.config.database as { url: string }
    // Another node's receipt (read up to the 5th message), its transaction still open: it holds the member row.
    const other = postgres(url, { max: 1, onnotice: () => {} })
    try {
      const reserved = await other.reserve()
      await reserved`begin`
      await reserved`update dialog_members set last_read_message_id = ${ids[4]!}, last_delivered_message_id = ${ids[4]!}
        where dialog_id = ${dialogId} and user_id = ${b.user.id}`
      // This node's receipt for an older message starts meanwhile and waits for that row.
      const mark = t.core.writer.mark({ dialogId, userId: b.user.id, messageId: ids[2]!, at: new Date(), read: true })
      await Bun.sleep(100)
      await reserved`commit`
      reserved.release()
      const outcome = await mark
      expect(outcome).toMatchObject({ lastReadMessageId: ids[4], lastDeliveredMessageId: ids[4], readMoved: false, deliveredMoved: false })
      // One that is ahead of the other node's still moves.
      const ahead = await t.core.writer.mark({ dialogId, userId: b.user.id, messageId: ids[5]!, at: new Date(), read: true })
      expect(ahead).toMatchObject({ lastReadMessageId: ids[5], readMoved: true, deliveredMoved: true, unread: 0 })
    } finally {
      await other.end({ timeout: 1 })
    }
  })
})

describe.each(dialects.filter((d) => d === 'pg'))('a batch whose receipts or answer fail on %s', (dialect) => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp(dialect)
  })
  afterAll(() => t.close())

  test('a read_at Postgres cannot store (year 0000) fails that receipt alone: the sends of its batch are created and published', async () => {
    const { a, b, dialogId } = await t.pair()
    const first = await t.core.messages.send(a.user.id, { dialogId, clientMsgId: 'base', type: 'text', text: 'base' })
    // Below the edge's validation, as a receipt that got past it would arrive.
    const year0 = new Date('0000-06-01T00:00:00.000Z')
    const published: number[] = []
    const realtime = t.core.hub
    const original = realtime.messageNew.bind(realtime)
    realtime.messageNew = (message, origin) => {
      published.push(message.id)
      original(message, origin)
    }
    try {
      const results = await Promise.allSettled([
        ...Array.from({ length: 15 }, (_, i) => t.core.messages.send(a.user.id, { dialogId, clientMsgId: `y${i}`, type: 'text', text: `y${i}` })),
        t.core.messages.readUpTo(b.user.id, dialogId, first.message.id, year0),
        ...Array.from({ length: 15 }, (_, i) => t.core.messages.send(b.user.id, { dialogId, clientMsgId: `z${i}`, type: 'text', text: `z${i}` })),
      ])
      expect(results[15]!.status).toBe('rejected')
      const sends = results.filter((_, i) => i !== 15).map((r) => (r.status === 'fulfilled' ? (r.value as { created: boolean; message: { id: number } }) : undefined))
      expect(sends.map((r) => r?.created)).toEqual(Array.from({ length: 30 }, () => true))
      expect(published.sort((x, y) => x - y)).toEqual(sends.map((r) => r!.message.id).sort((x, y) => x - y))
    } finally {
      realtime.messageNew = original
    }
  })

  /**
   * The same database, but the answers of some statements are lost after they committed, as when the
   * connection drops: `reads` one-statement attempts and `txs` careful transactions, first come first.
   */
  const losing = (budget: { reads: number; txs: number }) => {
    const lost = <T>(kind: 'reads' | 'txs', work: Promise<T>) =>
      work.then((value) => {
        if (budget[kind] === 0) return value
        budget[kind]--
        throw Object.assign(new Error('write CONNECTION_CLOSED'), { code: 'CONNECTION_CLOSED' })
      })
    const db = t.db as typeof t.db & { pg: { read: (w: never) => Promise<unknown>; tx: (w: never) => Promise<unknown> } }
    const flaky = { ...db, pg: { read: (work: never) => lost('reads', db.pg.read(work)), tx: (work: never) => lost('txs', db.pg.tx(work)) } }
    return new MessageWriter(flaky as typeof t.db, { batchMax: 64, batchWaitMs: 0 })
  }

  const seqsOf = (outcomes: SendOutcome[]) => outcomes.map((o) => (o.kind === 'missing' ? 0 : o.message.seq))

  test('sends whose one-statement commit succeeded but whose answer was lost are reported created, not as duplicates of themselves', async () => {
    const { a, b, dialogId } = await t.pair()
    const stored = await t.core.writer.submit(send(dialogId, a.user.id, 'before'))
    if (stored.kind !== 'created') throw new Error('not created')
    const budget = { reads: 1, txs: 0 }
    const writer = losing(budget)
    const outcomes = await Promise.all([
      writer.submit(send(dialogId, a.user.id, 'lost-1')),
      writer.submit(send(dialogId, b.user.id, 'lost-2')),
      writer.submit(send(dialogId, a.user.id, 'lost-1')),
      writer.submit(send(dialogId, b.user.id, 'lost-3')),
    ])
    expect(budget.reads).toBe(0)
    expect(outcomes.map((o) => o.kind)).toEqual(['created', 'created', 'duplicate', 'created'])
    expect(seqsOf(outcomes)).toEqual([2, 3, 2, 4])
    // A real retry afterwards is a duplicate, as always.
    const retry = await writer.submit(send(dialogId, b.user.id, 'lost-2'))
    expect(retry.kind).toBe('duplicate')
  })

  test('and when the careful retry loses its answer too, they are still created, not duplicates', async () => {
    const { a, b, dialogId } = await t.pair()
    const budget = { reads: 1, txs: 2 }
    const writer = losing(budget)
    const outcomes = await Promise.all([
      writer.submit(send(dialogId, a.user.id, 'twice-1')),
      writer.submit(send(dialogId, b.user.id, 'twice-2')),
      writer.submit(send(dialogId, a.user.id, 'twice-3')),
    ])
    expect(budget).toEqual({ reads: 0, txs: 0 })
    expect(outcomes.map((o) => o.kind)).toEqual(['created', 'created', 'created'])
    expect(seqsOf(outcomes)).toEqual([1, 2, 3])
  })

  test('a genuine retry in a batch whose careful commit lost its answer stays a duplicate; the new sends are created once', async () => {
    const { a, b, dialogId } = await t.pair()
    const stored = await t.core.writer.submit(send(dialogId, a.user.id, 'kept'))
    if (stored.kind !== 'created') throw new Error('not created')
    // The one statement meets the stored send (a unique violation, a definite answer); the careful
    // transaction commits, but its answer is lost twice.
    const budget = { reads: 0, txs: 2 }
    const writer = losing(budget)
    const outcomes = await Promise.all([
      writer.submit(send(dialogId, a.user.id, 'kept')),
      writer.submit(send(dialogId, b.user.id, 'new-1')),
      writer.submit(send(dialogId, a.user.id, 'new-2')),
    ])
    expect(budget.txs).toBe(0)
    expect(outcomes.map((o) => o.kind)).toEqual(['duplicate', 'created', 'created'])
    expect(seqsOf(outcomes)).toEqual([1, 2, 3])
    const history = await t.call('GET', `/dialogs/${dialogId}/messages`, { token: a.access_token })
    expect(history.body.messages.map((m: { client_msg_id: string }) => m.client_msg_id)).toEqual(['kept', 'new-1', 'new-2'])
  })
})
