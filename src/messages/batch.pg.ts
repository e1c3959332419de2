/*
 * How a batch commits on Postgres, where every statement is a round trip: the sends as one prepared
 * statement that is its own transaction, and the receipts as another, side by side. The two settle
 * apart: a receipt that fails (a time Postgres cannot store, a dropped connection) leaves the sends'
 * outcome as it is.
 */
import { inArray, sql } from 'drizzle-orm'
import postgres from 'postgres'
import type { PgAccess, PgScope } from '../storage/database'
import { driverError, unreachable } from '../storage/driver-error'
import { messageColumns } from './history'
import type { MessageRecord } from './model'
import { fold, outcomesOf, type Folded, type MarkInput, type MarkOutcome } from './receipts'
import { createdAtAfter, duplicateDialogs, sendKey, withRecipients, type Placed, type SendInput, type SendOutcome } from './sends'

/**
 * Sends: first as one statement (one round trip, no BEGIN/COMMIT) that does not look for duplicates: one
 * already in the table is a unique violation that aborts it whole, and the sends then commit again the
 * careful way, in a transaction that looks first — so a retry never costs a seq.
 *
 * An attempt that fails without Postgres saying why (the connection dropped, or the answer to COMMIT was
 * lost) may have committed. The careful way then runs again, knowing what that attempt would have
 * inserted: keys that did not exist when it ran (had one existed, the one statement would have met a
 * unique violation; the careful way looked under lock). If all of them are there now, that attempt
 * committed them, and they are reported as created — published and counted — not as duplicates of
 * themselves. Only this call knows it, so it keeps trying (a few times, backing off) rather than hand
 * the sends to a retry that would not.
 */
export async function commitPgSends(pg: PgAccess, sends: SendInput[], now: Date): Promise<SendOutcome[]> {
  if (sends.length === 0) return []
  let uncertain: Uncertain | undefined
  try {
    return await pg.read((s) => commitInOneStatement(s, sends, now))
  } catch (error) {
    if ((postgresError(error) && !isUniqueViolation(error)) || unreachable(error)) throw error
    if (!isUniqueViolation(error)) uncertain = { ours: new Set(), lastAttempt: sends.map((x) => sendKey(x.dialogId, x.senderId, x.clientMsgId)) }
  }
  for (let attempt = 1; ; attempt++) {
    const seen: Seen = { ours: new Set(), fresh: [] }
    try {
      return await pg.tx((s) => commitLookingFirst(s, sends, now, uncertain, seen))
    } catch (error) {
      if (postgresError(error) || unreachable(error) || attempt >= UNCERTAIN_ATTEMPTS) throw error
      // What this attempt found to be ours stays ours; what it was inserting is the new unknown.
      if (seen.ours.size > 0 || seen.fresh.length > 0) uncertain = { ours: seen.ours, lastAttempt: seen.fresh }
      await Bun.sleep(100 * 2 ** (attempt - 1))
    }
  }
}

/** The careful way's tries after an attempt of unknown outcome (about 1.5 s of waiting in all). */
const UNCERTAIN_ATTEMPTS = 5

/**
 * What earlier attempts of unknown outcome may have stored: `ours`, keys known to be stored by them;
 * `lastAttempt`, the keys the latest such attempt would have inserted, all stored if it committed.
 */
interface Uncertain {
  ours: Set<string>
  lastAttempt: string[]
}
/** What a careful attempt found (its own) and was about to insert, for the next try if it fails. */
interface Seen {
  ours: Set<string>
  fresh: string[]
}

/** Receipts: one statement of their own, beside the sends' (see applyMarksInOneStatement). */
export async function commitPgMarks(pg: PgAccess, marks: MarkInput[]): Promise<MarkOutcome[]> {
  return marks.length === 0 ? [] : pg.read((s) => applyMarksInOneStatement(s, marks))
}

/**
 * Postgres's own answer to a statement, whether the driver's error came as it is or wrapped by drizzle (a
 * transaction's statements are): Postgres said why, so the statement did not commit.
 */
const postgresError = (error: unknown) => {
  const inner = driverError(error)
  return inner instanceof postgres.PostgresError ? inner : undefined
}

/** Postgres's unique_violation: the one-statement batch met a (dialog, sender, client_msg_id) already stored. */
const isUniqueViolation = (error: unknown) => postgresError(error)?.code === '23505'

async function commitInOneStatement(s: PgScope, sends: SendInput[], now: Date): Promise<SendOutcome[]> {
  return withRecipientMarks(s, await placeInOneStatement(s, sends, now))
}

async function commitLookingFirst(s: PgScope, sends: SendInput[], now: Date, uncertain: Uncertain | undefined, seen: Seen): Promise<SendOutcome[]> {
  return withRecipientMarks(s, await placeLookingFirst(s, sends, now, uncertain, seen))
}

async function withRecipientMarks({ db, t }: PgScope, placed: Placed[]): Promise<SendOutcome[]> {
  const dialogs = duplicateDialogs(placed)
  const marks = dialogs.length
    ? await db
        .select({
          dialogId: t.dialogMembers.dialogId,
          userId: t.dialogMembers.userId,
          lastReadMessageId: t.dialogMembers.lastReadMessageId,
          lastDeliveredMessageId: t.dialogMembers.lastDeliveredMessageId,
        })
        .from(t.dialogMembers)
        .where(inArray(t.dialogMembers.dialogId, dialogs))
    : []
  return withRecipients(placed, marks)
}

/**
 * Optimistic: the whole batch in one statement, as the raw baseline's one insert — lock the dialogs (in
 * id order), number the rows per dialog after each dialog's last seq, insert them, move the dialogs'
 * activity. No ON CONFLICT: a send already in the table is a unique violation that aborts the statement,
 * and with it the batch, so no seq is taken and lost. A missing dialog's sends, and the sends of a user
 * who is not one of the dialog's two, join no lock row and come back missing; the rest commit. (That join
 * is the messages' only guard that the sender exists: they have no foreign key to users, see schema.pg.ts.)
 */
async function placeInOneStatement({ t, execute }: PgScope, sends: SendInput[], now: Date): Promise<Placed[]> {
  // Repeats inside the batch resolve to their first occurrence here; the statement sees each key once.
  const firstOf = new Map<string, number>()
  const unique: SendInput[] = []
  const order = sends.map((send) => {
    const key = sendKey(send.dialogId, send.senderId, send.clientMsgId)
    let index = firstOf.get(key)
    if (index === undefined) firstOf.set(key, (index = unique.push(send) - 1))
    return index
  })
  const column = <T>(pick: (s: SendInput) => T) => sql.param(unique.map(pick))
  const inserted = await execute<{ id: number; dialog_id: number; sender_id: number; seq: number; version: number; created_ms: number }>(
    sql`with locked as (
          select id, user_low, user_high, last_seq, version, last_activity_at from ${t.dialogs}
          where id = any(${sql.param([...new Set(unique.map((s) => s.dialogId))])}::int[]) order by id for update
        ), batch as (
          select * from unnest(${column((s) => s.dialogId)}::int[], ${column((s) => s.senderId)}::int[], ${column((s) => s.clientMsgId)}::text[],
            ${column((s) => s.type)}::text[], ${column((s) => s.text)}::text[], ${column((s) => s.attachmentId ?? null)}::int[],
            ${column((s) => s.attachment ?? null)}::text[], ${sql.param(unique.map((_, i) => i))}::int[])
            as b(dialog_id, sender_id, client_msg_id, type, text, attachment_id, attachment, ord)
        ), numbered as (
          select b.dialog_id, l.last_seq + row_number() over w as seq, l.version + row_number() over w as version, b.sender_id,
            b.client_msg_id, b.type, b.text, b.attachment_id, b.attachment, greatest(l.last_activity_at, ${now.toISOString()}::timestamptz) as created_at, b.ord
          from batch b join locked l on l.id = b.dialog_id and b.sender_id in (l.user_low, l.user_high) window w as (partition by b.dialog_id order by b.ord)
        ), inserted as (
          insert into ${t.messages} (dialog_id, seq, version, sender_id, client_msg_id, type, text, attachment_id, attachment, created_at)
          select dialog_id, seq, version, sender_id, client_msg_id, type, text, attachment_id, attachment, created_at from numbered order by ord
          returning id, dialog_id, sender_id, seq, version, created_at
        ), moved as (
          update ${t.dialogs} set last_seq = latest.seq, version = latest.version, last_message_id = latest.id, last_activity_at = latest.created_at
          from (select dialog_id, max(seq) as seq, max(version) as version, max(id) as id, max(created_at) as created_at from inserted group by dialog_id) as latest
          where ${t.dialogs.id} = latest.dialog_id
        ) select id, dialog_id, sender_id, seq, version, (extract(epoch from created_at) * 1000)::float8 as created_ms from inserted order by id`,
  )
  // Rows come back in insertion order (ids grow with it), which is the batch's order less the sends that
  // joined no lock row: a (dialog, sender) either joined, and all its sends were inserted, or none did.
  const joined = (dialogId: number, senderId: number) => `${dialogId}:${senderId}`
  const present = new Set(inserted.map((row) => joined(row.dialog_id, row.sender_id)))
  let next = 0
  const records = unique.map((send): MessageRecord | undefined => {
    if (!present.has(joined(send.dialogId, send.senderId))) return undefined
    const row = inserted[next++]!
    if (row.dialog_id !== send.dialogId || row.sender_id !== send.senderId) throw new Error('inserted rows out of order')
    return { attachment: null, ...send, id: row.id, seq: row.seq, version: row.version, createdAt: new Date(row.created_ms), editedAt: null, deleted: false }
  })
  const seen = new Set<number>()
  return order.map((index): Placed => {
    const message = records[index]
    if (!message) return { kind: 'missing' }
    if (seen.has(index)) return { kind: 'duplicate', message }
    seen.add(index)
    return { kind: 'created', message }
  })
}

/**
 * The careful way, in a transaction (after the one statement met a duplicate, or may have committed): a
 * fixed handful of statements, since each is a round trip — lock, look the batch's keys up, then one
 * multi-row insert and activity update. Duplicates are found before numbering, so none takes a seq.
 * `uncertain`: what earlier attempts of unknown outcome may have stored; `seen` is filled for the next
 * try (see commitPgSends).
 */
async function placeLookingFirst(
  { db, t, execute }: PgScope,
  sends: SendInput[],
  now: Date,
  uncertain: Uncertain | undefined,
  seen: Seen,
): Promise<Placed[]> {
  // Row locks on the batch's dialogs, in id order (so two writers never deadlock), so concurrent writers
  // (other nodes) number in turn. FOR UPDATE writes no new row versions, unlike a no-op UPDATE.
  const locked = await execute<{ id: number; user_low: number; user_high: number; last_seq: number; version: number; last_activity_ms: number }>(
    // The time as epoch milliseconds: a number, whatever text format the driver would give a timestamp.
    sql`select ${sql.identifier(t.dialogs.id.name)}, ${sql.identifier(t.dialogs.userLow.name)}, ${sql.identifier(t.dialogs.userHigh.name)},
        ${sql.identifier(t.dialogs.lastSeq.name)}, ${sql.identifier(t.dialogs.version.name)},
        (extract(epoch from ${sql.identifier(t.dialogs.lastActivityAt.name)}) * 1000)::float8 as last_activity_ms from ${t.dialogs}
        where ${t.dialogs.id} = any(${sql.param([...new Set(sends.map((s) => s.dialogId))])}::int[]) order by 1 for update`,
  )
  const lastSeq = new Map(locked.map((d) => [d.id, d.last_seq]))
  // As in the one statement: only a dialog's two users send to it (the messages' only guard that the sender exists).
  const users = new Map(locked.map((d) => [d.id, [d.user_low, d.user_high]]))
  const placeable = (send: SendInput) => users.get(send.dialogId)?.includes(send.senderId) ?? false
  const version = new Map(locked.map((d) => [d.id, d.version]))
  const createdAt = new Map(locked.map((d) => [d.id, createdAtAfter(new Date(d.last_activity_ms), now)]))
  const existing = new Map<string, MessageRecord>()
  // The batch's (dialog, sender, client_msg_id) keys as three array parameters: one probe of the unique
  // index per key, and a statement whose size does not grow with the batch.
  const candidates = await db
    .select(messageColumns(t))
    .from(t.messages)
    .where(
      sql`(${t.messages.dialogId}, ${t.messages.senderId}, ${t.messages.clientMsgId}) in (select * from unnest(${sql.param(
        sends.map((s) => s.dialogId),
      )}::int[], ${sql.param(sends.map((s) => s.senderId))}::int[], ${sql.param(sends.map((s) => s.clientMsgId))}::text[]))`,
    )
  for (const m of candidates) existing.set(sendKey(m.dialogId, m.senderId, m.clientMsgId), m)
  // The latest uncertain attempt committed iff every key it would have inserted (of sends it could place) is here.
  const ours = new Set(uncertain?.ours)
  const sendOf = new Map(sends.map((x) => [sendKey(x.dialogId, x.senderId, x.clientMsgId), x]))
  const expected = (uncertain?.lastAttempt ?? []).filter((key) => placeable(sendOf.get(key)!))
  if (expected.length > 0 && expected.every((key) => existing.has(key))) for (const key of expected) ours.add(key)
  for (const key of ours) seen.ours.add(key)

  const fresh: (Omit<MessageRecord, 'id'> & Pick<SendInput, 'attachmentId'>)[] = []
  const plan: ({ kind: 'missing' } | { kind: 'old'; message: MessageRecord; ours: boolean } | { kind: 'new'; key: string; first: boolean })[] = []
  const claimed = new Set<string>()
  for (const send of sends) {
    const key = sendKey(send.dialogId, send.senderId, send.clientMsgId)
    const seq = lastSeq.get(send.dialogId)
    const old = existing.get(key)
    if (seq === undefined || !placeable(send)) plan.push({ kind: 'missing' })
    // ours.delete: only a key's first occurrence was created by the earlier attempt; its repeats are duplicates.
    else if (old) plan.push({ kind: 'old', message: old, ours: ours.delete(key) })
    else if (claimed.has(key)) plan.push({ kind: 'new', key, first: false })
    else {
      claimed.add(key)
      seen.fresh.push(key)
      const next = version.get(send.dialogId)! + 1
      lastSeq.set(send.dialogId, seq + 1)
      version.set(send.dialogId, next)
      fresh.push({ attachment: null, ...send, seq: seq + 1, version: next, createdAt: createdAt.get(send.dialogId)!, editedAt: null, deleted: false })
      plan.push({ kind: 'new', key, first: true })
    }
  }

  const inserted = new Map<string, MessageRecord>()
  if (fresh.length > 0) {
    // Columns as arrays (unnest keeps their order): one parameter per column however big the batch, and only
    // the ids come back; the rest of each row is what we sent. Times travel as text: the driver, as
    // drizzle configures it, serializes no timestamp arrays. The dialogs' activity moves in the same
    // statement, from the rows it inserted.
    const column = <T>(pick: (m: (typeof fresh)[number]) => T) => sql.param(fresh.map(pick))
    const into = [
      t.messages.dialogId,
      t.messages.seq,
      t.messages.version,
      t.messages.senderId,
      t.messages.clientMsgId,
      t.messages.type,
      t.messages.text,
      t.messages.createdAt,
      t.messages.attachmentId,
      t.messages.attachment,
    ]
    const ids = await execute<{ id: number; dialog_id: number; seq: number }>(
        sql`with inserted as (
          insert into ${t.messages} (${sql.join(
            into.map((c) => sql.identifier(c.name)),
            sql`, `,
          )}) select * from unnest(${column((m) => m.dialogId)}::int[], ${column((m) => m.seq)}::int[], ${column((m) => m.version)}::int[], ${column((m) => m.senderId)}::int[], ${column(
            (m) => m.clientMsgId,
          )}::text[], ${column((m) => m.type)}::text[], ${column((m) => m.text)}::text[], ${column((m) => m.createdAt.toISOString())}::text[]::timestamptz[],
          ${column((m) => m.attachmentId ?? null)}::int[], ${column((m) => m.attachment ?? null)}::text[])
          returning id, dialog_id, seq, version, created_at
        ), moved as (
          update ${t.dialogs} set last_seq = latest.seq, version = latest.version, last_message_id = latest.id, last_activity_at = latest.created_at
          from (select dialog_id, max(seq) as seq, max(version) as version, max(id) as id, max(created_at) as created_at from inserted group by dialog_id) as latest
          where ${t.dialogs.id} = latest.dialog_id
        ) select id, dialog_id, seq from inserted`,
    )
    const idOf = new Map(ids.map((r) => [`${r.dialog_id}:${r.seq}`, r.id]))
    for (const row of fresh) {
      const id = idOf.get(`${row.dialogId}:${row.seq}`)
      if (id === undefined) throw new Error('inserted message not returned')
      inserted.set(sendKey(row.dialogId, row.senderId, row.clientMsgId), { ...row, id })
    }
  }

  return plan.map((p): Placed => {
    if (p.kind === 'missing') return p
    if (p.kind === 'old') return { kind: p.ours ? 'created' : 'duplicate', message: p.message }
    const message = inserted.get(p.key)
    if (!message) throw new Error('inserted message not returned')
    return { kind: p.first ? 'created' : 'duplicate', message }
  })
}

/**
 * Receipts: the moves of SQLite's small statements (batch.sqlite.ts) as one statement, its own
 * transaction (one round trip): move both watermarks where the marks are ahead, and answer the state
 * after, whether each moved, and the unread count of those who read. The rows are locked first (in key
 * order, so two nodes' batches cannot deadlock) and "moved" compares with what the lock returned: a row
 * another node moved while this statement waited is read as it is after that move, not as the
 * statement's snapshot had it, so its move is not reported twice.
 */
async function applyMarksInOneStatement({ t, execute }: PgScope, marks: MarkInput[]): Promise<MarkOutcome[]> {
  const folded = fold(marks)
  const column = <T>(pick: (f: Folded) => T) => sql.param(folded.map(pick))
  const found = await execute<{
      dialog_id: number
      user_id: number
      last_read_message_id: number
      read_ms: number | null
      last_delivered_message_id: number
      delivered_ms: number | null
      read_moved: boolean
      delivered_moved: boolean
      unread: number
    }>(
      sql`with v as (
          select * from unnest(${column((f) => f.delivered.dialogId)}::int[], ${column((f) => f.delivered.userId)}::int[],
            ${column((f) => f.read?.messageId ?? 0)}::int[], ${column((f) => (f.read ?? f.delivered).at.toISOString())}::text[]::timestamptz[],
            ${column((f) => f.delivered.messageId)}::int[], ${column((f) => f.delivered.at.toISOString())}::text[]::timestamptz[])
            as v(dialog_id, user_id, read_to, read_at, delivered_to, delivered_at)
        ), was as (
          select w.dialog_id, w.user_id, w.last_read_message_id, w.last_delivered_message_id
          from ${t.dialogMembers} w join v on w.dialog_id = v.dialog_id and w.user_id = v.user_id
          order by w.dialog_id, w.user_id for update of w
        ), moved as (
          update ${t.dialogMembers} m set
            last_read_message_id = greatest(m.last_read_message_id, v.read_to),
            read_at = case when v.read_to > m.last_read_message_id then v.read_at else m.read_at end,
            last_delivered_message_id = greatest(m.last_delivered_message_id, v.delivered_to),
            delivered_at = case when v.delivered_to > m.last_delivered_message_id then v.delivered_at else m.delivered_at end
          from v join was on was.dialog_id = v.dialog_id and was.user_id = v.user_id
          where m.dialog_id = v.dialog_id and m.user_id = v.user_id
          returning m.dialog_id, m.user_id, m.last_read_message_id, m.read_at, m.last_delivered_message_id, m.delivered_at, v.read_to,
            m.last_read_message_id > was.last_read_message_id as read_moved,
            m.last_delivered_message_id > was.last_delivered_message_id as delivered_moved
        ) select dialog_id, user_id, last_read_message_id, last_delivered_message_id, read_moved, delivered_moved,
          (extract(epoch from read_at) * 1000)::float8 as read_ms, (extract(epoch from delivered_at) * 1000)::float8 as delivered_ms,
          case when read_to > 0 then (select count(*) from ${t.messages} msg where msg.dialog_id = moved.dialog_id
            and msg.sender_id <> moved.user_id and msg.id > moved.last_read_message_id) else 0 end::int as unread
        from moved`
  )
  const byMember = new Map(found.map((r) => [`${r.dialog_id}:${r.user_id}`, r]))
  const after = folded.map(({ delivered }): MarkOutcome => {
    const r = byMember.get(`${delivered.dialogId}:${delivered.userId}`)
    if (!r) throw new Error(`member ${delivered.userId} of dialog ${delivered.dialogId} vanished`)
    return {
      lastReadMessageId: r.last_read_message_id,
      readAt: r.read_ms === null ? null : new Date(r.read_ms),
      lastDeliveredMessageId: r.last_delivered_message_id,
      deliveredAt: r.delivered_ms === null ? null : new Date(r.delivered_ms),
      unread: r.unread,
      readMoved: r.read_moved,
      deliveredMoved: r.delivered_moved,
    }
  })
  return outcomesOf(marks, folded, after)
}

