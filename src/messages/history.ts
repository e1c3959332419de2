import { and, asc, count, desc, eq, gt, lte, ne, sql } from 'drizzle-orm'
import { alias } from 'drizzle-orm/sqlite-core'
import { rows, type PgTables, type QueryDb, type Routine, type Scope, type Tables } from '../storage/database'
import { isStorableId } from '../shared/ids'
import type { MessageRecord, Watermarks } from './model'

type MessageColumns<M extends Tables['messages'] | PgTables['messages']> = Pick<
  M,
  'id' | 'dialogId' | 'seq' | 'senderId' | 'clientMsgId' | 'type' | 'text' | 'createdAt' | 'version' | 'editedAt' | 'deleted' | 'attachment'
>

/** A message's columns, in either dialect's tables (typed as that dialect's). */
export function messageColumns(t: Tables): MessageColumns<Tables['messages']>
export function messageColumns(t: PgTables): MessageColumns<PgTables['messages']>
export function messageColumns({ messages: m }: Tables | PgTables) {
  return {
    id: m.id,
    dialogId: m.dialogId,
    seq: m.seq,
    senderId: m.senderId,
    clientMsgId: m.clientMsgId,
    type: m.type,
    text: m.text,
    createdAt: m.createdAt,
    version: m.version,
    editedAt: m.editedAt,
    deleted: m.deleted,
    attachment: m.attachment,
  }
}

/**
 * A member's unread count, as a column of a query over its `dialog_members` row: the peer's messages above
 * its read watermark. The watermark is a message of the dialog (or 0), and within a dialog ids grow with
 * seq, so "above it" is the range after its seq on the (dialog, seq) index: a walk over the messages after
 * the watermark, not over the whole dialog.
 */
export const unreadOf = (db: QueryDb, t: Tables, member: Tables['dialogMembers']) => {
  const mark = alias(t.messages, 'read_mark')
  const after = alias(t.messages, 'unread')
  const markSeq = db.select({ seq: mark.seq }).from(mark).where(eq(mark.id, member.lastReadMessageId))
  const unread = db
    .select({ n: count() })
    .from(after)
    .where(and(eq(after.dialogId, member.dialogId), gt(after.seq, sql`coalesce((${markSeq}), 0)`), ne(after.senderId, member.userId)))
  return sql<number>`(${unread})`
}

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
  scope: Scope,
  dialogId: number,
  below: (m: { id: number; createdAt: Date }) => boolean,
  messageId?: number,
  offset = 0,
): Routine<number> {
  // Prepared, as every page after a cursor runs them (a catch-up's after_id, each step of the search).
  const probe = (shape: 'byId' | 'bySeq', params: Record<string, number>) =>
    rows(
      scope.prepared(
        `seqBound.${shape}`,
        (db, t) =>
          db
            .select({ id: t.messages.id, seq: t.messages.seq, dialogId: t.messages.dialogId, createdAt: t.messages.createdAt })
            .from(t.messages)
            .where(
              shape === 'byId'
                ? eq(t.messages.id, sql.placeholder('id'))
                : and(eq(t.messages.dialogId, sql.placeholder('dialogId')), eq(t.messages.seq, sql.placeholder('seq'))),
            ),
        params,
      ),
    )
  if (messageId !== undefined) {
    const [own] = yield* probe('byId', { id: messageId })
    if (own?.dialogId === dialogId) return own.seq + offset
  }
  const [dialog] = yield* rows(
    scope.prepared('seqBound.lastSeq', (db, t) => db.select({ lastSeq: t.dialogs.lastSeq }).from(t.dialogs).where(eq(t.dialogs.id, sql.placeholder('dialogId'))), { dialogId }),
  )
  let lo = 0
  let hi = dialog?.lastSeq ?? 0
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2)
    const [m] = yield* probe('bySeq', { dialogId, seq: mid })
    if (m && below(m)) lo = mid
    else hi = mid - 1
  }
  return lo
}

/**
 * What a page of a dialog's history depends on besides its messages' rows: the dialog's version (every new
 * message, edit, delete and reaction takes the next one) and both members' watermarks (the statuses). Both
 * only move forward, so an equal stamp means an unchanged page. The watermarks come with it.
 */
export function* pageStamp(scope: Scope, dialogId: number): Routine<{ stamp: string; marks: Watermarks[] }> {
  const found = yield* rows(
    scope.prepared(
      'pageStamp',
      (db, t) =>
        db
          .select({
            version: t.dialogs.version,
            userId: t.dialogMembers.userId,
            lastReadMessageId: t.dialogMembers.lastReadMessageId,
            lastDeliveredMessageId: t.dialogMembers.lastDeliveredMessageId,
          })
          .from(t.dialogMembers)
          .innerJoin(t.dialogs, eq(t.dialogs.id, t.dialogMembers.dialogId))
          .where(eq(t.dialogMembers.dialogId, sql.placeholder('dialogId'))),
      { dialogId },
    ),
  )
  const marks = found.map(({ userId, lastReadMessageId, lastDeliveredMessageId }) => ({ userId, lastReadMessageId, lastDeliveredMessageId }))
  return { stamp: found.map((r) => `${r.version}:${r.userId}:${r.lastReadMessageId}:${r.lastDeliveredMessageId}`).join('|'), marks }
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

/** The message a sender stored under a client_msg_id in a dialog (what a retry of that send finds), by placeholders. */
export const bySendKey = (db: QueryDb, t: Tables) =>
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

export function* messageBySendKey(scope: Scope, dialogId: number, senderId: number, clientMsgId: string): Routine<MessageRecord | undefined> {
  const [row] = yield* rows(scope.prepared('messageBySendKey', bySendKey, { dialogId, senderId, clientMsgId }))
  return row
}

export function* messageById(scope: Scope, id: number): Routine<MessageRecord | undefined> {
  if (!isStorableId(id)) return undefined
  const [row] = yield* rows(
    scope.prepared('messageById', (db, t) => db.select(messageColumns(t)).from(t.messages).where(eq(t.messages.id, sql.placeholder('id'))), { id }),
  )
  return row
}

