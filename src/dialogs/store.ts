import { and, desc, eq, lt, or, sql, type SQL } from 'drizzle-orm'
import { alias } from 'drizzle-orm/sqlite-core'
import type { MessageRecord, Watermarks } from '../messages/model'
import { messageColumns, unreadOf } from '../messages/history'
import { exec, rows, type QueryDb, type Routine, type Scope, type Tables } from '../storage/database'

/** One dialog as one member sees it, before presence and status are applied. */
export interface DialogRecord {
  id: number
  createdAt: Date
  lastActivityAt: Date
  version: number
  me: Watermarks
  peer: Watermarks & { username: string; lastSeenAt: Date | null }
  unreadCount: number
  lastMessage: MessageRecord | null
}

/** Finds the pair's dialog or creates it with both memberships; the unique pair index settles races. */
export function* findOrCreateDialog(
  { db, t }: Scope,
  userId: number,
  peerId: number,
  now: Date,
): Routine<{ id: number; created: boolean }> {
  const [userLow, userHigh] = userId < peerId ? [userId, peerId] : [peerId, userId]
  const [created] = yield* rows(
    db
      .insert(t.dialogs)
      .values({ userLow, userHigh, createdAt: now, lastActivityAt: now })
      .onConflictDoNothing({ target: [t.dialogs.userLow, t.dialogs.userHigh] })
      .returning({ id: t.dialogs.id }),
  )
  if (created) {
    yield* exec(
      db.insert(t.dialogMembers).values([
        { dialogId: created.id, userId, peerId },
        { dialogId: created.id, userId: peerId, peerId: userId },
      ]),
    )
    return { id: created.id, created: true }
  }
  const [existing] = yield* rows(
    db
      .select({ id: t.dialogs.id })
      .from(t.dialogs)
      .where(and(eq(t.dialogs.userLow, userLow), eq(t.dialogs.userHigh, userHigh))),
  )
  if (!existing) throw new Error(`dialog for pair ${userLow}/${userHigh} vanished`)
  return { id: existing.id, created: false }
}

/** The pair's dialog, if it has one. */
export function* dialogOfPair({ db, t }: Scope, userId: number, peerId: number): Routine<number | undefined> {
  const [userLow, userHigh] = userId < peerId ? [userId, peerId] : [peerId, userId]
  const [found] = yield* rows(
    db
      .select({ id: t.dialogs.id })
      .from(t.dialogs)
      .where(and(eq(t.dialogs.userLow, userLow), eq(t.dialogs.userHigh, userHigh))),
  )
  return found?.id
}

/** The two member ids of a dialog, or undefined when there is no such dialog. */
export function* dialogMembers({ db, t }: Scope, dialogId: number): Routine<[number, number] | undefined> {
  const found = yield* rows(
    db.select({ userId: t.dialogMembers.userId }).from(t.dialogMembers).where(eq(t.dialogMembers.dialogId, dialogId)),
  )
  return found.length === 2 ? [found[0]!.userId, found[1]!.userId] : undefined
}

/**
 * Where a page of a dialog list starts: after activity time `before` (strictly older), or, with `beforeId`,
 * after that dialog in the list's total order, (last activity, id) descending, which skips no tie.
 */
export interface DialogCursor {
  before: Date
  beforeId?: number
}

type Shape = 'newest' | 'before' | 'cursor' | 'one'

/** The caller's dialogs, most recent activity first (then highest id first), after `cursor` when given. */
export function* dialogsOf(
  scope: Scope,
  userId: number,
  page: { limit: number; dialogId?: number } & Partial<DialogCursor>,
): Routine<DialogRecord[]> {
  // Every dialog list and every dialog view runs this: one of four prepared shapes, one statement each.
  const shape: Shape = page.dialogId !== undefined ? 'one' : !page.before ? 'newest' : page.beforeId !== undefined ? 'cursor' : 'before'
  const found = yield* rows(
    scope.prepared(`dialogsOf.${shape}`, (db, t) => dialogsQuery(db, t, shape), {
      userId,
      limit: page.limit,
      // Placeholder values go to the driver as they are: encoded as the column stores them.
      before: page.before && scope.t.dialogs.lastActivityAt.mapToDriverValue(page.before),
      beforeId: page.beforeId,
      dialogId: page.dialogId,
    }),
  )
  return found.map((d) => ({
    id: d.id,
    createdAt: d.createdAt,
    lastActivityAt: d.lastActivityAt,
    version: d.version,
    me: { userId, lastReadMessageId: d.myRead, lastDeliveredMessageId: d.myDelivered },
    peer: {
      userId: d.peerId,
      username: d.peerName,
      lastSeenAt: d.peerLastSeenAt,
      lastReadMessageId: d.peerRead,
      lastDeliveredMessageId: d.peerDelivered,
    },
    unreadCount: Number(d.unreadCount),
    lastMessage: d.lastMessage,
  }))
}

function dialogsQuery(db: QueryDb, t: Tables, shape: Shape) {
  const me = t.dialogMembers
  const peer = alias(t.dialogMembers, 'peer_member')
  const filters: SQL[] = [eq(me.userId, sql.placeholder('userId'))]
  if (shape === 'before') filters.push(lt(t.dialogs.lastActivityAt, sql.placeholder('before')))
  // The order's own key past the cursor: (last_activity_at, id) < (before, beforeId), spelt out for both dialects.
  if (shape === 'cursor')
    filters.push(
      or(
        lt(t.dialogs.lastActivityAt, sql.placeholder('before')),
        and(eq(t.dialogs.lastActivityAt, sql.placeholder('before')), lt(t.dialogs.id, sql.placeholder('beforeId'))),
      )!,
    )
  if (shape === 'one') filters.push(eq(t.dialogs.id, sql.placeholder('dialogId')))
  return db
    .select({
      id: t.dialogs.id,
      createdAt: t.dialogs.createdAt,
      lastActivityAt: t.dialogs.lastActivityAt,
      version: t.dialogs.version,
      peerId: me.peerId,
      myRead: me.lastReadMessageId,
      myDelivered: me.lastDeliveredMessageId,
      peerRead: peer.lastReadMessageId,
      peerDelivered: peer.lastDeliveredMessageId,
      peerName: t.users.username,
      peerLastSeenAt: t.users.lastSeenAt,
      unreadCount: unreadOf(db, t, me),
      lastMessage: messageColumns(t),
    })
    .from(me)
    .innerJoin(t.dialogs, eq(t.dialogs.id, me.dialogId))
    .innerJoin(peer, and(eq(peer.dialogId, me.dialogId), eq(peer.userId, me.peerId)))
    .innerJoin(t.users, eq(t.users.id, me.peerId))
    .leftJoin(t.messages, eq(t.messages.id, t.dialogs.lastMessageId))
    .where(and(...filters))
    .orderBy(desc(t.dialogs.lastActivityAt), desc(t.dialogs.id))
    .limit(sql.placeholder('limit'))
}

/**
 * What a user's dialog list depends on, one row per dialog: its version (every new message, edit, delete
 * and reaction takes the next one), both members' watermarks and the peer's last_seen_at. All of them only
 * move forward and a dialog, once there, stays, so an equal stamp means an unchanged list (usernames never
 * change). Three point reads per dialog, where the list itself also walks each dialog's unread messages.
 */
export function* dialogsStamp(scope: Scope, userId: number): Routine<string> {
  const found = yield* rows(
    scope.prepared(
      'dialogsStamp',
      (db, t) => {
        const me = t.dialogMembers
        const peer = alias(t.dialogMembers, 'peer_member')
        return db
          .select({
            id: me.dialogId,
            version: t.dialogs.version,
            myRead: me.lastReadMessageId,
            myDelivered: me.lastDeliveredMessageId,
            peerRead: peer.lastReadMessageId,
            peerDelivered: peer.lastDeliveredMessageId,
            peerLastSeenAt: t.users.lastSeenAt,
          })
          .from(me)
          .innerJoin(t.dialogs, eq(t.dialogs.id, me.dialogId))
          .innerJoin(peer, and(eq(peer.dialogId, me.dialogId), eq(peer.userId, me.peerId)))
          .innerJoin(t.users, eq(t.users.id, me.peerId))
          .where(eq(me.userId, sql.placeholder('userId')))
      },
      { userId },
    ),
  )
  return found.map((d) => `${d.id}:${d.version}:${d.myRead}:${d.myDelivered}:${d.peerRead}:${d.peerDelivered}:${d.peerLastSeenAt?.getTime() ?? ''}`).join('|')
}

/** Every dialog id of a user, for subscribing a new connection. */
export function* dialogIdsOf({ db, t }: Scope, userId: number): Routine<number[]> {
  const found = yield* rows(
    db.select({ id: t.dialogMembers.dialogId }).from(t.dialogMembers).where(eq(t.dialogMembers.userId, userId)),
  )
  return found.map((r) => r.id)
}

/** Peers of a user across all dialogs, for presence events. */
export function* peerIdsOf({ db, t }: Scope, userId: number): Routine<number[]> {
  const found = yield* rows(
    db.select({ id: t.dialogMembers.peerId }).from(t.dialogMembers).where(eq(t.dialogMembers.userId, userId)),
  )
  return found.map((r) => r.id)
}
