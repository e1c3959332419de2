/*
 * How a batch commits on SQLite: one BEGIN IMMEDIATE transaction (the database's write lock) holding the
 * sends and the receipts, as small cached statements, since on an embedded database a statement costs no
 * round trip.
 */
import { and, eq, inArray, lt, sql } from 'drizzle-orm'
import { changedTexts, INDEX_NEW_MESSAGES } from '../search/fts.sqlite'
import { direct, rows, type Routine, type Scope, type SqliteDb } from '../storage/database'
import { bySendKey, unreadOf } from './history'
import type { MessageRecord } from './model'
import { fold, outcomesOf, type MarkInput, type MarkOutcome } from './receipts'
import { createdAtAfter, duplicateDialogs, withRecipients, type Placed, type SendInput, type SendOutcome } from './sends'

export function commitSqliteBatch(db: SqliteDb, sends: SendInput[], marks: MarkInput[], now: Date) {
  return db.tx(function* (s): Routine<{ sends: SendOutcome[]; marks: MarkOutcome[] }> {
    const placed = placeOneByOne(s, s.memo!, sends, now)
    return { sends: yield* withRecipientMarks(s, placed), marks: yield* applyMarks(s, marks) }
  })
}

function* withRecipientMarks({ db, t }: Scope, placed: Placed[]): Routine<SendOutcome[]> {
  const dialogs = duplicateDialogs(placed)
  const marks = dialogs.length
    ? yield* rows(
        db
          .select({
            dialogId: t.dialogMembers.dialogId,
            userId: t.dialogMembers.userId,
            lastReadMessageId: t.dialogMembers.lastReadMessageId,
            lastDeliveredMessageId: t.dialogMembers.lastDeliveredMessageId,
          })
          .from(t.dialogMembers)
          .where(inArray(t.dialogMembers.dialogId, dialogs)),
      )
    : []
  return withRecipients(placed, marks)
}

/**
 * Small cached statements, called directly (they run synchronously on the transaction's connection);
 * BEGIN IMMEDIATE already holds the write lock. One insert per send: ON CONFLICT DO NOTHING can only fire
 * on (dialog, sender, client_msg_id) here, since the dialog's seq is ours under the lock; a conflict is a duplicate, which
 * takes no seq and resolves to the original.
 */
function placeOneByOne({ t }: Scope, memo: NonNullable<Scope['memo']>, sends: SendInput[], now: Date): Placed[] {
  const seqOf = memo('dialogs.lastSeq', (db) =>
    db
      .select({ userLow: t.dialogs.userLow, userHigh: t.dialogs.userHigh, lastSeq: t.dialogs.lastSeq, version: t.dialogs.version, lastActivityAt: t.dialogs.lastActivityAt })
      .from(t.dialogs)
      .where(eq(t.dialogs.id, sql.placeholder('id')))
      .prepare(),
  )
  const insert = memo('messages.insertIgnore', (db, _t, client) =>
    direct<Omit<MessageRecord, 'id' | 'editedAt' | 'deleted'> & { attachmentId: number | null }>(
      client,
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
          version: sql.placeholder('version'),
          attachmentId: sql.placeholder('attachmentId'),
          attachment: sql.placeholder('attachment'),
        })
        .onConflictDoNothing(),
    ),
  )
  const original = memo('messages.byClientId', (db) => bySendKey(db, t).prepare())
  const moveActivity = memo('dialogs.moveActivity', (db) =>
    db
      .update(t.dialogs)
      // Placeholders in SET go in as SQL; this path is SQLite's, where timestamps are stored as ms.
      .set({
        lastSeq: sql`${sql.placeholder('seq')}`,
        version: sql`${sql.placeholder('version')}`,
        lastMessageId: sql`${sql.placeholder('id')}`,
        lastActivityAt: sql`${sql.placeholder('at')}`,
      })
      .where(eq(t.dialogs.id, sql.placeholder('dialogId')))
      .prepare(),
  )

  const indexNew = memo('messages_fts.indexNew', (_db, _t, client) => client.query<unknown, [number, number, string | null]>(INDEX_NEW_MESSAGES))

  // The batch's new rows: their ids run from the first to the last (see INDEX_NEW_MESSAGES).
  let firstId = 0
  let lastId = 0
  const dialogs = new Map<number, { users: [number, number]; lastSeq: number; version: number; at: Date } | undefined>()
  const lastOf = new Map<number, MessageRecord>()
  const placed: Placed[] = []
  for (const send of sends) {
    if (!dialogs.has(send.dialogId)) {
      const [row] = seqOf.all({ id: send.dialogId })
      dialogs.set(send.dialogId, row && { users: [row.userLow, row.userHigh], lastSeq: row.lastSeq, version: row.version, at: createdAtAfter(row.lastActivityAt, now) })
    }
    const dialog = dialogs.get(send.dialogId)
    // Only the dialog's two users send to it, as on Postgres (where nothing else checks that the sender exists).
    if (dialog === undefined || !dialog.users.includes(send.senderId)) {
      placed.push({ kind: 'missing' })
      continue
    }
    // Field by field, not spread: this runs once per message. The upload id is the row's, not the record's.
    const message: MessageRecord & { attachmentId: number | null } = {
      id: 0,
      dialogId: send.dialogId,
      seq: dialog.lastSeq + 1,
      senderId: send.senderId,
      clientMsgId: send.clientMsgId,
      type: send.type,
      text: send.text,
      createdAt: dialog.at,
      version: dialog.version + 1,
      editedAt: null,
      deleted: false,
      attachment: send.attachment ?? null,
      attachmentId: send.attachmentId ?? null,
    }
    // No RETURNING: the row is what we inserted, and its id is SQLite's last rowid.
    const result = insert(message)
    if (result.changes === 1) {
      message.id = Number(result.lastInsertRowid)
      if (firstId === 0) firstId = message.id
      lastId = message.id
      dialog.lastSeq = message.seq
      dialog.version = message.version
      lastOf.set(send.dialogId, message)
      placed.push({ kind: 'created', message })
      continue
    }
    const [old] = original.all({ ...send })
    if (!old) throw new Error('insert ignored without a conflicting message')
    placed.push({ kind: 'duplicate', message: old })
  }
  for (const m of lastOf.values()) moveActivity.run({ seq: m.seq, version: m.version, id: m.id, at: m.createdAt.getTime(), dialogId: m.dialogId })
  if (firstId > 0) indexNew.run(firstId, lastId, changedTexts(firstId, placed.flatMap((p) => (p.kind === 'created' ? [p.message] : []))))
  return placed
}

/**
 * Moves members' watermarks forward, never back. The marks of one member in a batch are folded into one
 * move to the highest of them (the watermarks are "up to"), so a burst of receipts costs a few statements
 * per member, not per receipt; the mark that carried the highest id is the one that moved it.
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
