/*
 * Changes to messages already sent — edit, delete, reactions — and reading them back by version. Each
 * change takes the dialog's next version in its own transaction: the dialog row is bumped first (on
 * Postgres that is its row lock, the one the writer's batches take too, so versions and seqs stay
 * gapless under concurrency; on SQLite BEGIN IMMEDIATE already serializes), and a change that turns out
 * not to apply throws, which rolls the bump back.
 */
import { and, asc, eq, gt, inArray, max, sql, type Placeholder } from 'drizzle-orm'
import { AppError, notFound } from '../errors'
import { indexEdited } from '../search/fts.sqlite'
import { exec, rows, type QueryDb, type Routine, type Scope, type Tables } from '../storage/database'
import { messageColumns, watermarks } from './history'
import { checkTextOf, type MessageRecord, type ReactionDto, type Watermarks } from './model'

/** A change that found nothing to change (a repeated PUT of a reaction): rolls its transaction back. */
export class NoChange extends Error {}

/** Takes the dialog's next version (and, on Postgres, its row lock). */
function* nextVersion({ db, t }: Scope, dialogId: number): Routine<number> {
  const [bumped] = yield* rows(
    db
      .update(t.dialogs)
      .set({ version: sql`${t.dialogs.version} + 1` })
      .where(eq(t.dialogs.id, dialogId))
      .returning({ version: t.dialogs.version }),
  )
  if (!bumped) throw notFound('dialog')
  return bumped.version
}

/** The message, if it is in the dialog. */
function* messageIn({ db, t }: Scope, dialogId: number, messageId: number): Routine<MessageRecord | undefined> {
  const [found] = yield* rows(
    db
      .select(messageColumns(t))
      .from(t.messages)
      .where(and(eq(t.messages.id, messageId), eq(t.messages.dialogId, dialogId))),
  )
  return found
}

export interface Changed {
  message: MessageRecord
  reactions: ReactionDto[]
  marks: Watermarks[]
}

/** Replaces a message's text: its sender only, not once deleted. */
export function* editMessage(s: Scope, dialogId: number, messageId: number, userId: number, text: string, now: Date): Routine<Changed> {
  const version = yield* nextVersion(s, dialogId)
  const found = yield* messageIn(s, dialogId, messageId)
  if (!found || found.deleted) throw notFound('message')
  if (found.senderId !== userId) throw new AppError('forbidden', 'only the sender may edit a message')
  checkTextOf(found.type, text)
  yield* exec(s.db.update(s.t.messages).set({ text, editedAt: now, version }).where(eq(s.t.messages.id, messageId)))
  indexEdited(s, messageId, text)
  const message = { ...found, text, editedAt: now, version }
  return { message, reactions: yield* reactionsOf(s, messageId), marks: yield* watermarks(s, dialogId) }
}

/**
 * Deletes a message for everyone: its sender only. The row stays (id, seq) and loses its content in the
 * database — text '' (which also takes it out of the search index) and its reactions. Deleting it again
 * changes nothing (NoChange).
 */
export function* deleteMessage(s: Scope, dialogId: number, messageId: number, userId: number): Routine<number> {
  const version = yield* nextVersion(s, dialogId)
  const found = yield* messageIn(s, dialogId, messageId)
  if (!found) throw notFound('message')
  if (found.senderId !== userId) throw new AppError('forbidden', 'only the sender may delete a message')
  if (found.deleted) throw new NoChange()
  yield* exec(s.db.update(s.t.messages).set({ text: '', deleted: true, version }).where(eq(s.t.messages.id, messageId)))
  yield* exec(s.db.delete(s.t.messageReactions).where(eq(s.t.messageReactions.messageId, messageId)))
  return version
}

/**
 * A new reaction's time: `now`, or just after the message's latest reaction when that is not earlier. The
 * set is listed in the order reactions came, and two within one millisecond would tie (their order then
 * the database's whim); reactions on a dialog are serialised by its version bump, so this read is safe.
 */
function* reactionTime(s: Scope, messageId: number, now: Date): Routine<Date> {
  const r = s.t.messageReactions
  const [latest] = yield* rows(s.db.select({ at: max(r.createdAt) }).from(r).where(eq(r.messageId, messageId)))
  return latest?.at && latest.at >= now ? new Date(latest.at.getTime() + 1) : now
}

/** Adds or removes one user's reaction; NoChange when it was already so (PUT and DELETE are idempotent). */
export function* setReaction(
  s: Scope,
  dialogId: number,
  messageId: number,
  userId: number,
  emoji: string,
  on: boolean,
  now: Date,
): Routine<{ version: number; reactions: ReactionDto[] }> {
  const version = yield* nextVersion(s, dialogId)
  const found = yield* messageIn(s, dialogId, messageId)
  if (!found || found.deleted) throw notFound('message')
  const { db, t } = s
  const r = t.messageReactions
  const changed = on
    ? yield* rows(
        db
          .insert(r)
          .values({ messageId, emoji, userId, createdAt: yield* reactionTime(s, messageId, now) })
          .onConflictDoNothing()
          .returning({ id: r.messageId }),
      )
    : yield* rows(
        db
          .delete(r)
          .where(and(eq(r.messageId, messageId), eq(r.emoji, emoji), eq(r.userId, userId)))
          .returning({ id: r.messageId }),
      )
  if (changed.length === 0) throw new NoChange()
  yield* exec(db.update(t.messages).set({ version }).where(eq(t.messages.id, messageId)))
  return { version, reactions: yield* reactionsOf(s, messageId) }
}

/** A message's reactions: one entry per emoji, in the order each emoji first came, users in the order they reacted. */
export function* reactionsOf(s: Scope, messageId: number): Routine<ReactionDto[]> {
  return (yield* reactionsOfMany(s, [messageId])).get(messageId) ?? []
}

/** Up to this many ids, the reactions query is prepared once per count (a page is at most 100 messages). */
const PREPARED_UP_TO = 100

/** The reactions of several messages (a page), by message id; messages without any are absent. */
export function* reactionsOfMany(scope: Scope, messageIds: number[]): Routine<Map<number, ReactionDto[]>> {
  const byMessage = new Map<number, ReactionDto[]>()
  if (messageIds.length === 0) return byMessage
  const query = (db: QueryDb, t: Tables, ids: (number | Placeholder)[]) => {
    const r = t.messageReactions
    return db
      .select({ messageId: r.messageId, emoji: r.emoji, userId: r.userId })
      .from(r)
      .where(inArray(r.messageId, ids))
      .orderBy(asc(r.createdAt), asc(r.userId))
  }
  // Building a query costs more than running it on a page's few reactions: one prepared statement per count.
  const found =
    messageIds.length > PREPARED_UP_TO
      ? yield* rows(query(scope.db, scope.t, messageIds))
      : yield* rows(
          scope.prepared(
            `reactionsOf.${messageIds.length}`,
            (db, t) => query(db, t, messageIds.map((_, i) => sql.placeholder(`m${i}`))),
            Object.fromEntries(messageIds.map((id, i) => [`m${i}`, id])),
          ),
        )
  for (const { messageId, emoji, userId } of found) {
    let list = byMessage.get(messageId)
    if (!list) byMessage.set(messageId, (list = []))
    const entry = list.find((e) => e.emoji === emoji)
    if (entry) entry.user_ids.push(userId)
    else list.push({ emoji, user_ids: [userId] })
  }
  return byMessage
}

/** The messages of a dialog changed after `version`, ascending by version: one range of the (dialog, version) index. */
export function* changedAfter({ db, t }: Scope, dialogId: number, version: number, limit: number): Routine<{ messages: MessageRecord[]; hasMore: boolean }> {
  const found = yield* rows(
    db
      .select(messageColumns(t))
      .from(t.messages)
      .where(and(eq(t.messages.dialogId, dialogId), gt(t.messages.version, version)))
      .orderBy(asc(t.messages.version))
      .limit(limit + 1),
  )
  const hasMore = found.length > limit
  return { messages: hasMore ? found.slice(0, limit) : found, hasMore }
}
