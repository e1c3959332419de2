import { and, desc, eq, gt, inArray, lt, ne, type SQL } from 'drizzle-orm'
import type { MessageRecord, Watermarks } from '../messages/model'
import { messageColumns } from '../messages/store'
import { exec, rows, type Routine, type Scope } from '../storage/database'

/** One dialog as one member sees it, before presence and status are applied. */
export interface DialogRecord {
  id: number
  createdAt: Date
  lastActivityAt: Date
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

/** The two member ids of a dialog, or undefined when there is no such dialog. */
export function* dialogMembers({ db, t }: Scope, dialogId: number): Routine<[number, number] | undefined> {
  const found = yield* rows(
    db.select({ userId: t.dialogMembers.userId }).from(t.dialogMembers).where(eq(t.dialogMembers.dialogId, dialogId)),
  )
  return found.length === 2 ? [found[0]!.userId, found[1]!.userId] : undefined
}

/** The caller's dialogs, most recent activity first, strictly before `before` when given. */
export function* dialogsOf(
  scope: Scope,
  userId: number,
  page: { limit: number; before?: Date; dialogId?: number },
): Routine<DialogRecord[]> {
  const { db, t } = scope
  const filters: (SQL | undefined)[] = [eq(t.dialogMembers.userId, userId)]
  if (page.before) filters.push(lt(t.dialogs.lastActivityAt, page.before))
  if (page.dialogId !== undefined) filters.push(eq(t.dialogs.id, page.dialogId))
  const found = yield* rows(
    db
      .select({
        id: t.dialogs.id,
        createdAt: t.dialogs.createdAt,
        lastActivityAt: t.dialogs.lastActivityAt,
        peerId: t.dialogMembers.peerId,
        myRead: t.dialogMembers.lastReadMessageId,
        myDelivered: t.dialogMembers.lastDeliveredMessageId,
        peerName: t.users.username,
        peerLastSeenAt: t.users.lastSeenAt,
        unreadCount: db.$count(
          t.messages,
          and(
            eq(t.messages.dialogId, t.dialogs.id),
            ne(t.messages.senderId, userId),
            gt(t.messages.id, t.dialogMembers.lastReadMessageId),
          ),
        ),
        lastMessage: messageColumns(t),
      })
      .from(t.dialogMembers)
      .innerJoin(t.dialogs, eq(t.dialogs.id, t.dialogMembers.dialogId))
      .innerJoin(t.users, eq(t.users.id, t.dialogMembers.peerId))
      .leftJoin(t.messages, eq(t.messages.id, t.dialogs.lastMessageId))
      .where(and(...filters))
      .orderBy(desc(t.dialogs.lastActivityAt), desc(t.dialogs.id))
      .limit(page.limit),
  )
  if (found.length === 0) return []
  const peers = yield* rows(
    db
      .select({
        dialogId: t.dialogMembers.dialogId,
        lastReadMessageId: t.dialogMembers.lastReadMessageId,
        lastDeliveredMessageId: t.dialogMembers.lastDeliveredMessageId,
      })
      .from(t.dialogMembers)
      .where(
        and(
          inArray(
            t.dialogMembers.dialogId,
            found.map((d) => d.id),
          ),
          ne(t.dialogMembers.userId, userId),
        ),
      ),
  )
  const peerBy = new Map(peers.map((p) => [p.dialogId, p]))
  return found.map((d) => ({
    id: d.id,
    createdAt: d.createdAt,
    lastActivityAt: d.lastActivityAt,
    me: { userId, lastReadMessageId: d.myRead, lastDeliveredMessageId: d.myDelivered },
    peer: {
      userId: d.peerId,
      username: d.peerName,
      lastSeenAt: d.peerLastSeenAt,
      lastReadMessageId: peerBy.get(d.id)?.lastReadMessageId ?? 0,
      lastDeliveredMessageId: peerBy.get(d.id)?.lastDeliveredMessageId ?? 0,
    },
    unreadCount: Number(d.unreadCount),
    lastMessage: d.lastMessage,
  }))
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
