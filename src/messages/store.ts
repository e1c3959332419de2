import { and, asc, desc, eq, gt, inArray, lt, lte, ne, sql, type SQL } from 'drizzle-orm'
import { rows, type Db, type QueryDb, type Routine, type Scope, type Tables } from '../storage/database'
import { isStorableId } from '../shared/ids'
import type { MessageRecord, Watermarks } from './model'

export const messageColumns = (t: Tables) => ({
  id: t.messages.id,
  dialogId: t.messages.dialogId,
  seq: t.messages.seq,
  senderId: t.messages.senderId,
  clientMsgId: t.messages.clientMsgId,
  type: t.messages.type,
  text: t.messages.text,
  createdAt: t.messages.createdAt,
  attachment: t.messages.attachment,
})

/** A member's unread count, as a column of a query over its `dialog_members` row: the peer's messages above its read watermark. */
export const unreadOf = (db: QueryDb, t: Tables, member: Tables['dialogMembers']) =>
  db.$count(t.messages, and(eq(t.messages.dialogId, member.dialogId), ne(t.messages.senderId, member.userId), gt(t.messages.id, member.lastReadMessageId)))

export type HistoryCursor = { before: Date } | { beforeId: number } | { afterId: number } | { newest: true }

/**
 * A page of history in ascending order, and whether more exist beyond it (older, or newer for afterId).
 * Every cursor becomes a seq bound, so each page is one range scan of the (dialog, seq) index.
 */
export function* history(
  scope: Scope,
  dialogId: number,
  cursor: HistoryCursor,
  limit: number,
): Routine<{ messages: MessageRecord[]; hasMore: boolean }> {
  let found: MessageRecord[]
  const params = { dialogId, limit: limit + 1, bound: 0 }
  if ('afterId' in cursor) {
    params.bound = yield* seqBound(scope, dialogId, (m) => m.id <= cursor.afterId, cursor.afterId, 0)
    found = yield* rows(scope.prepared('history.after', (db, t) => historyQuery(db, t, 'after'), params))
  } else if ('newest' in cursor) {
    found = yield* rows(scope.prepared('history.newest', (db, t) => historyQuery(db, t, 'newest'), params))
  } else {
    params.bound =
      'before' in cursor
        ? yield* seqBound(scope, dialogId, (m) => m.createdAt < cursor.before)
        : yield* seqBound(scope, dialogId, (m) => m.id < cursor.beforeId, cursor.beforeId, -1)
    found = yield* rows(scope.prepared('history.upTo', (db, t) => historyQuery(db, t, 'upTo'), params))
  }
  const hasMore = found.length > limit
  const page = hasMore ? found.slice(0, limit) : found
  if (!('afterId' in cursor)) page.reverse()
  return { messages: page, hasMore }
}

/** A page of a dialog as one range of its (dialog, seq) index: after a seq ascending, else up to one (or the newest) descending. */
function historyQuery(db: QueryDb, t: Tables, shape: 'after' | 'upTo' | 'newest') {
  const inDialog = eq(t.messages.dialogId, sql.placeholder('dialogId'))
  const base = db.select(messageColumns(t)).from(t.messages)
  const page =
    shape === 'after'
      ? base.where(and(inDialog, gt(t.messages.seq, sql.placeholder('bound')))).orderBy(asc(t.messages.seq))
      : base.where(shape === 'upTo' ? and(inDialog, lte(t.messages.seq, sql.placeholder('bound'))) : inDialog).orderBy(desc(t.messages.seq))
  return page.limit(sql.placeholder('limit'))
}

/**
 * The largest seq of the dialog whose message passes `below` (0 when none). Within a dialog both id and
 * created_at grow with seq (ids are taken under the dialog's lock; the writer never lets created_at go
 * back), so this is a binary search of point reads on the (dialog, seq) index. When the cursor is a
 * message id of this very dialog, its own seq answers at once (`offset` from it).
 */
function* seqBound(
  { db, t }: Scope,
  dialogId: number,
  below: (m: { id: number; createdAt: Date }) => boolean,
  messageId?: number,
  offset = 0,
): Routine<number> {
  const probe = (where: SQL | undefined) =>
    rows(db.select({ id: t.messages.id, seq: t.messages.seq, dialogId: t.messages.dialogId, createdAt: t.messages.createdAt }).from(t.messages).where(where))
  if (messageId !== undefined) {
    const [own] = yield* probe(eq(t.messages.id, messageId))
    if (own?.dialogId === dialogId) return own.seq + offset
  }
  const [dialog] = yield* rows(db.select({ lastSeq: t.dialogs.lastSeq }).from(t.dialogs).where(eq(t.dialogs.id, dialogId)))
  let lo = 0
  let hi = dialog?.lastSeq ?? 0
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2)
    const [m] = yield* probe(and(eq(t.messages.dialogId, dialogId), eq(t.messages.seq, mid)))
    if (m && below(m)) lo = mid
    else hi = mid - 1
  }
  return lo
}

export function* watermarks(scope: Scope, dialogId: number): Routine<Watermarks[]> {
  return yield* rows(
    scope.prepared(
      'watermarks',
      (db, t) =>
        db
          .select({
            userId: t.dialogMembers.userId,
            lastReadMessageId: t.dialogMembers.lastReadMessageId,
            lastDeliveredMessageId: t.dialogMembers.lastDeliveredMessageId,
          })
          .from(t.dialogMembers)
          .where(eq(t.dialogMembers.dialogId, sql.placeholder('dialogId'))),
      { dialogId },
    ),
  )
}

export function* messageById(scope: Scope, id: number): Routine<MessageRecord | undefined> {
  if (!isStorableId(id)) return undefined
  const [row] = yield* rows(
    scope.prepared('messageById', (db, t) => db.select(messageColumns(t)).from(t.messages).where(eq(t.messages.id, sql.placeholder('id'))), { id }),
  )
  return row
}

export interface MemberProgress {
  lastReadMessageId: number
  readAt: Date | null
  lastDeliveredMessageId: number
  deliveredAt: Date | null
}

/** A member's watermark move, as the writer receives it: `read` moves read and delivered, else delivered only. */
export interface MarkInput {
  dialogId: number
  userId: number
  messageId: number
  at: Date
  read: boolean
}

/** The member's state after the batch; `readMoved`/`deliveredMoved` on the mark that moved it, if any. */
export type MarkOutcome = MemberProgress & { readMoved: boolean; deliveredMoved: boolean; unread: number }

/** A member's marks of one batch, folded: the highest read mark (if any) and the highest mark of all. */
interface Folded {
  read?: MarkInput
  delivered: MarkInput
}

/**
 * Moves members' watermarks forward, never back. The marks of one member in a batch are folded into one
 * move to the highest of them (the watermarks are "up to"), so a burst of receipts costs a few statements
 * per member, not per receipt; the mark that carried the highest id is the one that moved it. This is
 * SQLite's way (small prepared statements, no round trips); Postgres does it in one statement, below.
 */
function* applyMarks(scope: Scope, marks: MarkInput[]): Routine<MarkOutcome[]> {
  const folded = fold(marks)
  const after: MarkOutcome[] = []
  for (const { read, delivered } of folded) {
    const readMoved = read ? (yield* rows(moveMark(scope, 'read', read))).length > 0 : false
    const deliveredMoved = (yield* rows(moveMark(scope, 'delivered', delivered))).length > 0
    const [state] = yield* rows(memberState(scope, delivered, read !== undefined))
    if (!state) throw new Error(`member ${delivered.userId} of dialog ${delivered.dialogId} vanished`)
    after.push({ ...state, unread: Number(state.unread), readMoved, deliveredMoved })
  }
  return outcomesOf(marks, folded, after)
}

/**
 * Postgres: the same moves as one statement, its own transaction (one round trip): move both watermarks
 * where the marks are ahead, and answer the state after, whether each moved, and the unread count of
 * those who read. The rows are locked first (in key order, so two nodes' batches cannot deadlock) and
 * "moved" compares with what the lock returned: a row another node moved while this statement waited
 * is read as it is after that move, not as the statement's snapshot had it, so its move is not reported
 * twice.
 */
function* applyMarksInOneStatement({ t, execute }: Scope, marks: MarkInput[]): Routine<MarkOutcome[]> {
  const folded = fold(marks)
  const column = <T>(pick: (f: Folded) => T) => sql.param(folded.map(pick))
  const found = yield* rows(
    execute!<{
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
        from moved`,
    ),
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

function fold(marks: MarkInput[]): Folded[] {
  const members = new Map<string, Folded>()
  for (const mark of marks) {
    const key = `${mark.dialogId}:${mark.userId}`
    const member = members.get(key)
    if (!member) members.set(key, { read: mark.read ? mark : undefined, delivered: mark })
    else {
      if (mark.read && (!member.read || mark.messageId > member.read.messageId)) member.read = mark
      if (mark.messageId > member.delivered.messageId) member.delivered = mark
    }
  }
  return [...members.values()]
}

/** Each mark gets its member's state; only the marks that carried a member's move say it moved. */
function outcomesOf(marks: MarkInput[], folded: Folded[], after: MarkOutcome[]): MarkOutcome[] {
  const state = new Map<string, MarkOutcome>()
  const movedBy = new Map<MarkInput, { read: boolean; delivered: boolean }>()
  folded.forEach(({ read, delivered }, i) => {
    const member = after[i]!
    state.set(`${delivered.dialogId}:${delivered.userId}`, member)
    if (read) movedBy.set(read, { read: member.readMoved, delivered: false })
    movedBy.set(delivered, { read: movedBy.get(delivered)?.read ?? false, delivered: member.deliveredMoved })
  })
  return marks.map((mark) => {
    const moved = movedBy.get(mark)
    return { ...state.get(`${mark.dialogId}:${mark.userId}`)!, readMoved: moved?.read ?? false, deliveredMoved: moved?.delivered ?? false }
  })
}

/** A member's watermarks after the moves, and its unread count when it has just read (else 0: not asked). */
function memberState(scope: Scope, member: MarkInput, withUnread: boolean) {
  const params = { dialogId: member.dialogId, userId: member.userId }
  return scope.prepared(
    withUnread ? 'marks.stateAndUnread' : 'marks.state',
    (db, t) => {
      const m = t.dialogMembers
      return db
        .select({
          lastReadMessageId: m.lastReadMessageId,
          readAt: m.readAt,
          lastDeliveredMessageId: m.lastDeliveredMessageId,
          deliveredAt: m.deliveredAt,
          unread: withUnread ? unreadOf(db, t, m) : sql<number>`0`,
        })
        .from(m)
        .where(and(eq(m.dialogId, sql.placeholder('dialogId')), eq(m.userId, sql.placeholder('userId'))))
    },
    params,
  )
}

/** Moves one watermark of one member to the mark's message, if that is forward: a row back when it moved. */
function moveMark(scope: Scope, which: 'read' | 'delivered', mark: MarkInput) {
  return scope.prepared(
    `marks.${which}`,
    (db, t) => {
      const m = t.dialogMembers
      const upTo = which === 'read' ? m.lastReadMessageId : m.lastDeliveredMessageId
      return db
        .update(m)
        .set(
          which === 'read'
            ? { lastReadMessageId: sql`${sql.placeholder('messageId')}`, readAt: sql`${sql.placeholder('at')}` }
            : { lastDeliveredMessageId: sql`${sql.placeholder('messageId')}`, deliveredAt: sql`${sql.placeholder('at')}` },
        )
        .where(and(eq(m.dialogId, sql.placeholder('dialogId')), eq(m.userId, sql.placeholder('userId')), lt(upTo, sql.placeholder('messageId'))))
        .returning({ id: m.dialogId })
    },
    {
      dialogId: mark.dialogId,
      userId: mark.userId,
      messageId: mark.messageId,
      // Placeholders in SET go to the driver as they are: encoded as the column stores them.
      at: scope.t.dialogMembers.readAt.mapToDriverValue(mark.at),
    },
  )
}

/** A send as the writer receives it. */
export interface SendInput {
  dialogId: number
  senderId: number
  clientMsgId: string
  type: string
  text: string
  /** An image/file message's upload id and its Message `attachment` as JSON (see uploads/). */
  attachmentId?: number | null
  attachment?: string | null
}

export type SendOutcome =
  | { kind: 'created'; message: MessageRecord }
  | { kind: 'duplicate'; message: MessageRecord; recipient: Watermarks | undefined }
  | { kind: 'missing' }

const sendKey = (dialogId: number, senderId: number, clientMsgId: string) => `${dialogId}\u0000${senderId}\u0000${clientMsgId}`

/**
 * A message's time: now, but never before the dialog's last activity, so that within a dialog `created_at`
 * never decreases with `seq` even if the clock steps back (history by time relies on it).
 */
const createdAtAfter = (lastActivityAt: Date, now: Date) => (lastActivityAt > now ? lastActivityAt : now)

interface Changes {
  changes: number
  lastInsertRowid: number | bigint
}

type Placed = { kind: 'missing' } | { kind: 'created'; message: MessageRecord } | { kind: 'duplicate'; message: MessageRecord }

/**
 * Commits a batch of sends and watermark moves; settles nothing before the commit. Sends: locks each
 * dialog row, resolves duplicates (against the table and inside the batch) to the original, numbers the
 * rest gaplessly per dialog, inserts them and moves each dialog's activity. On SQLite the marks ride the
 * sends' transaction. On Postgres the sends are first tried as one prepared statement that is its own
 * transaction (one round trip, no BEGIN/COMMIT): it does not look for duplicates, and one in the table
 * aborts it whole, so the sends then commit again the careful way; the marks are one statement of their
 * own beside it.
 */
export async function commitBatch(
  db: Db,
  sends: SendInput[],
  marks: MarkInput[],
  now: Date,
): Promise<{ sends: SendOutcome[]; marks: MarkOutcome[] }> {
  if (db.dialect === 'sqlite')
    return db.tx(function* (s) {
      return { sends: yield* commitSends(s, sends, now), marks: yield* applyMarks(s, marks) }
    })
  const [sent, marked] = await Promise.all([
    sends.length > 0 ? commitPgSends(db, sends, now) : [],
    marks.length > 0 ? db.read((s) => applyMarksInOneStatement(s, marks)) : [],
  ])
  return { sends: sent, marks: marked }
}

async function commitPgSends(db: Db, sends: SendInput[], now: Date): Promise<SendOutcome[]> {
  try {
    return await db.read((s) => commitInOneStatement(s, sends, now))
  } catch (error) {
    if (!isUniqueViolation(error)) throw error
  }
  return db.tx((s) => commitSends(s, sends, now))
}

/** Postgres's unique_violation: the one-statement batch met a (dialog, sender, client_msg_id) already stored. */
const isUniqueViolation = (error: unknown) => (error as { code?: unknown } | undefined)?.code === '23505'

/**
 * The careful way, in the caller's transaction. SQLite and Postgres differ only in how many statements
 * that takes (see `Scope.memo`).
 */
function* commitSends(scope: Scope, sends: SendInput[], now: Date): Routine<SendOutcome[]> {
  const placed = scope.memo ? placeOneByOne(scope, scope.memo, sends, now) : yield* placeLookingFirst(scope, sends, now)
  return yield* withRecipientMarks(scope, placed)
}

function* commitInOneStatement(scope: Scope, sends: SendInput[], now: Date): Routine<SendOutcome[]> {
  return yield* withRecipientMarks(scope, yield* placeInOneStatement(scope, sends, now))
}

/** A duplicate's outcome carries the recipient's watermarks, for the original's status in the reply. */
function* withRecipientMarks({ db, t }: Scope, placed: Placed[]): Routine<SendOutcome[]> {
  const dupDialogs = [...new Set(placed.flatMap((p) => (p.kind === 'duplicate' ? [p.message.dialogId] : [])))]
  const marks = dupDialogs.length
    ? yield* rows(
        db
          .select({
            dialogId: t.dialogMembers.dialogId,
            userId: t.dialogMembers.userId,
            lastReadMessageId: t.dialogMembers.lastReadMessageId,
            lastDeliveredMessageId: t.dialogMembers.lastDeliveredMessageId,
          })
          .from(t.dialogMembers)
          .where(inArray(t.dialogMembers.dialogId, dupDialogs)),
      )
    : []
  return placed.map((p) =>
    p.kind === 'duplicate'
      ? { ...p, recipient: marks.find((w) => w.dialogId === p.message.dialogId && w.userId !== p.message.senderId) }
      : p,
  )
}

/**
 * SQLite: small cached statements, since they cost no round trip, called directly (they run
 * synchronously on the transaction's connection); BEGIN IMMEDIATE already holds the write lock. One insert per send: ON CONFLICT DO NOTHING can only fire on (dialog, sender,
 * client_msg_id) here, since the dialog's seq is ours under the lock; a conflict is a duplicate, which
 * takes no seq and resolves to the original.
 */
function placeOneByOne({ t }: Scope, memo: NonNullable<Scope['memo']>, sends: SendInput[], now: Date): Placed[] {
  const seqOf = memo('dialogs.lastSeq', (db) =>
    db
      .select({ lastSeq: t.dialogs.lastSeq, lastActivityAt: t.dialogs.lastActivityAt })
      .from(t.dialogs)
      .where(eq(t.dialogs.id, sql.placeholder('id')))
      .prepare(),
  )
  const insert = memo('messages.insertIgnore', (db) =>
    db
      .insert(t.messages)
      .values({
        dialogId: sql.placeholder('dialogId'),
        seq: sql.placeholder('seq'),
        senderId: sql.placeholder('senderId'),
        clientMsgId: sql.placeholder('clientMsgId'),
        type: sql.placeholder('type'),
        text: sql.placeholder('text'),
        createdAt: sql.placeholder('createdAt'),
        attachmentId: sql.placeholder('attachmentId'),
        attachment: sql.placeholder('attachment'),
      })
      .onConflictDoNothing()
      .prepare(),
  )
  const original = memo('messages.byClientId', (db) =>
    db
      .select(messageColumns(t))
      .from(t.messages)
      .where(
        and(
          eq(t.messages.dialogId, sql.placeholder('dialogId')),
          eq(t.messages.senderId, sql.placeholder('senderId')),
          eq(t.messages.clientMsgId, sql.placeholder('clientMsgId')),
        ),
      )
      .prepare(),
  )
  const moveActivity = memo('dialogs.moveActivity', (db) =>
    db
      .update(t.dialogs)
      // Placeholders in SET go in as SQL; this path is SQLite's, where timestamps are stored as ms.
      .set({ lastSeq: sql`${sql.placeholder('seq')}`, lastMessageId: sql`${sql.placeholder('id')}`, lastActivityAt: sql`${sql.placeholder('at')}` })
      .where(eq(t.dialogs.id, sql.placeholder('dialogId')))
      .prepare(),
  )

  const dialogs = new Map<number, { lastSeq: number; at: Date } | undefined>()
  const lastOf = new Map<number, MessageRecord>()
  const placed: Placed[] = []
  for (const send of sends) {
    if (!dialogs.has(send.dialogId)) {
      const [row] = seqOf.all({ id: send.dialogId })
      dialogs.set(send.dialogId, row && { lastSeq: row.lastSeq, at: createdAtAfter(row.lastActivityAt, now) })
    }
    const dialog = dialogs.get(send.dialogId)
    if (dialog === undefined) {
      placed.push({ kind: 'missing' })
      continue
    }
    const message = { attachmentId: null, attachment: null, ...send, seq: dialog.lastSeq + 1, createdAt: dialog.at, id: 0 }
    // No RETURNING: the row is what we inserted, and its id is SQLite's last rowid.
    // bun:sqlite's run() reports changes and the rowid; drizzle's bun-sqlite types leave that out.
    const result = insert.run(message) as unknown as Changes
    if (result.changes === 1) {
      message.id = Number(result.lastInsertRowid)
      dialog.lastSeq = message.seq
      lastOf.set(send.dialogId, message)
      placed.push({ kind: 'created', message })
      continue
    }
    const [old] = original.all({ ...send })
    if (!old) throw new Error('insert ignored without a conflicting message')
    placed.push({ kind: 'duplicate', message: old })
  }
  for (const m of lastOf.values()) moveActivity.run({ seq: m.seq, id: m.id, at: m.createdAt.getTime(), dialogId: m.dialogId })
  return placed
}

/**
 * Postgres, optimistic: the whole batch in one statement, as the raw baseline's one insert — lock the
 * dialogs (in id order), number the rows per dialog after each dialog's last seq, insert them, move the
 * dialogs' activity. No ON CONFLICT: a send already in the table is a unique violation that aborts the
 * statement, and with it the batch, so no seq is taken and lost. A missing dialog's sends join no lock
 * row and come back missing; the rest commit.
 */
function* placeInOneStatement({ t, execute }: Scope, sends: SendInput[], now: Date): Routine<Placed[]> {
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
  const inserted = yield* rows(
    execute!<{ id: number; dialog_id: number; seq: number; created_ms: number }>(
      sql`with locked as (
          select id, last_seq, last_activity_at from ${t.dialogs}
          where id = any(${sql.param([...new Set(unique.map((s) => s.dialogId))])}::int[]) order by id for update
        ), batch as (
          select * from unnest(${column((s) => s.dialogId)}::int[], ${column((s) => s.senderId)}::int[], ${column((s) => s.clientMsgId)}::text[],
            ${column((s) => s.type)}::text[], ${column((s) => s.text)}::text[], ${sql.param(unique.map((_, i) => i))}::int[],
            ${column((s) => s.attachmentId ?? null)}::int[], ${column((s) => s.attachment ?? null)}::text[])
            as b(dialog_id, sender_id, client_msg_id, type, text, ord, attachment_id, attachment)
        ), numbered as (
          select b.dialog_id, l.last_seq + row_number() over (partition by b.dialog_id order by b.ord) as seq, b.sender_id,
            b.client_msg_id, b.type, b.text, greatest(l.last_activity_at, ${now.toISOString()}::timestamptz) as created_at, b.ord,
            b.attachment_id, b.attachment
          from batch b join locked l on l.id = b.dialog_id
        ), inserted as (
          insert into ${t.messages} (dialog_id, seq, sender_id, client_msg_id, type, text, created_at, attachment_id, attachment)
          select dialog_id, seq, sender_id, client_msg_id, type, text, created_at, attachment_id, attachment from numbered order by ord
          returning id, dialog_id, seq, created_at
        ), moved as (
          update ${t.dialogs} set last_seq = latest.seq, last_message_id = latest.id, last_activity_at = latest.created_at
          from (select dialog_id, max(seq) as seq, max(id) as id, max(created_at) as created_at from inserted group by dialog_id) as latest
          where ${t.dialogs.id} = latest.dialog_id
        ) select id, dialog_id, seq, (extract(epoch from created_at) * 1000)::float8 as created_ms from inserted order by id`,
    ),
  )
  // Rows come back in insertion order (ids grow with it), which is the batch's order less the sends of
  // missing dialogs: a dialog is either locked, and all its sends inserted, or absent.
  const present = new Set(inserted.map((row) => row.dialog_id))
  let next = 0
  const records = unique.map((send): MessageRecord | undefined => {
    if (!present.has(send.dialogId)) return undefined
    const row = inserted[next++]!
    if (row.dialog_id !== send.dialogId) throw new Error('inserted rows out of order')
    return { attachment: null, ...send, id: row.id, seq: row.seq, createdAt: new Date(row.created_ms) }
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
 * Postgres, the careful way (after the one statement met a duplicate): a fixed handful of statements,
 * since each is a round trip — lock, look the batch's keys up, then one multi-row insert and activity
 * update. Duplicates are found before numbering, so none takes a seq.
 */
function* placeLookingFirst({ db, t, execute }: Scope, sends: SendInput[], now: Date): Routine<Placed[]> {
  // Row locks on the batch's dialogs, in id order (so two writers never deadlock), so concurrent writers
  // (other nodes) number in turn. FOR UPDATE writes no new row versions, unlike a no-op UPDATE.
  const locked = yield* rows(
    execute!<{ id: number; last_seq: number; last_activity_ms: number }>(
      // The time as epoch milliseconds: a number, whatever text format the driver would give a timestamp.
      sql`select ${sql.identifier(t.dialogs.id.name)}, ${sql.identifier(t.dialogs.lastSeq.name)},
        (extract(epoch from ${sql.identifier(t.dialogs.lastActivityAt.name)}) * 1000)::float8 as last_activity_ms from ${t.dialogs}
        where ${t.dialogs.id} = any(${sql.param([...new Set(sends.map((s) => s.dialogId))])}::int[]) order by 1 for update`,
    ),
  )
  const lastSeq = new Map(locked.map((d) => [d.id, d.last_seq]))
  const createdAt = new Map(locked.map((d) => [d.id, createdAtAfter(new Date(d.last_activity_ms), now)]))
  const existing = new Map<string, MessageRecord>()
  // The batch's (dialog, sender, client_msg_id) keys as three array parameters: one probe of the unique
  // index per key, and a statement whose size does not grow with the batch.
  const candidates = yield* rows(
    db
      .select(messageColumns(t))
      .from(t.messages)
      .where(
        sql`(${t.messages.dialogId}, ${t.messages.senderId}, ${t.messages.clientMsgId}) in (select * from unnest(${sql.param(
          sends.map((s) => s.dialogId),
        )}::int[], ${sql.param(sends.map((s) => s.senderId))}::int[], ${sql.param(sends.map((s) => s.clientMsgId))}::text[]))`,
      ),
  )
  for (const m of candidates) existing.set(sendKey(m.dialogId, m.senderId, m.clientMsgId), m)

  const fresh: (SendInput & { seq: number; createdAt: Date })[] = []
  const plan: ({ kind: 'missing' } | { kind: 'old'; message: MessageRecord } | { kind: 'new'; key: string; first: boolean })[] = []
  const claimed = new Set<string>()
  for (const send of sends) {
    const key = sendKey(send.dialogId, send.senderId, send.clientMsgId)
    const seq = lastSeq.get(send.dialogId)
    const old = existing.get(key)
    if (seq === undefined) plan.push({ kind: 'missing' })
    else if (old) plan.push({ kind: 'old', message: old })
    else if (claimed.has(key)) plan.push({ kind: 'new', key, first: false })
    else {
      claimed.add(key)
      lastSeq.set(send.dialogId, seq + 1)
      fresh.push({ ...send, seq: seq + 1, createdAt: createdAt.get(send.dialogId)! })
      plan.push({ kind: 'new', key, first: true })
    }
  }

  const inserted = new Map<string, MessageRecord>()
  if (fresh.length > 0) {
    // Columns as arrays (unnest keeps their order): seven parameters however big the batch, and only
    // the ids come back; the rest of each row is what we sent. Times travel as text: the driver, as
    // drizzle configures it, serializes no timestamp arrays. The dialogs' activity moves in the same
    // statement, from the rows it inserted.
    const column = <T>(pick: (m: (typeof fresh)[number]) => T) => sql.param(fresh.map(pick))
    const into = [
      t.messages.dialogId,
      t.messages.seq,
      t.messages.senderId,
      t.messages.clientMsgId,
      t.messages.type,
      t.messages.text,
      t.messages.createdAt,
      t.messages.attachmentId,
      t.messages.attachment,
    ]
    const ids = yield* rows(
      execute!<{ id: number; dialog_id: number; seq: number }>(
        sql`with inserted as (
          insert into ${t.messages} (${sql.join(
            into.map((c) => sql.identifier(c.name)),
            sql`, `,
          )}) select * from unnest(${column((m) => m.dialogId)}::int[], ${column((m) => m.seq)}::int[], ${column((m) => m.senderId)}::int[], ${column(
            (m) => m.clientMsgId,
          )}::text[], ${column((m) => m.type)}::text[], ${column((m) => m.text)}::text[], ${column((m) => m.createdAt.toISOString())}::text[]::timestamptz[],
          ${column((m) => m.attachmentId ?? null)}::int[], ${column((m) => m.attachment ?? null)}::text[])
          returning id, dialog_id, seq, created_at
        ), moved as (
          update ${t.dialogs} set last_seq = latest.seq, last_message_id = latest.id, last_activity_at = latest.created_at
          from (select dialog_id, max(seq) as seq, max(id) as id, max(created_at) as created_at from inserted group by dialog_id) as latest
          where ${t.dialogs.id} = latest.dialog_id
        ) select id, dialog_id, seq from inserted`,
      ),
    )
    const idOf = new Map(ids.map((r) => [`${r.dialog_id}:${r.seq}`, r.id]))
    for (const row of fresh) {
      const id = idOf.get(`${row.dialogId}:${row.seq}`)
      if (id === undefined) throw new Error('inserted message not returned')
      inserted.set(sendKey(row.dialogId, row.senderId, row.clientMsgId), { attachment: null, ...row, id })
    }
  }

  return plan.map((p): Placed => {
    if (p.kind === 'missing') return p
    if (p.kind === 'old') return { kind: 'duplicate', message: p.message }
    const message = inserted.get(p.key)
    if (!message) throw new Error('inserted message not returned')
    return { kind: p.first ? 'created' : 'duplicate', message }
  })
}
