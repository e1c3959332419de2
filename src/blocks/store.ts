import { and, asc, eq, or } from 'drizzle-orm'
import { exec, rows, type Routine, type Scope } from '../storage/database'
import type { UserRecord } from '../users/model'

export function* insertBlock({ db, t }: Scope, blockerId: number, blockedId: number, at: Date): Routine<void> {
  yield* exec(db.insert(t.blocks).values({ blockerId, blockedId, createdAt: at }).onConflictDoNothing())
}

export function* deleteBlock({ db, t }: Scope, blockerId: number, blockedId: number): Routine<void> {
  yield* exec(db.delete(t.blocks).where(and(eq(t.blocks.blockerId, blockerId), eq(t.blocks.blockedId, blockedId))))
}

/** The users `blockerId` blocks, oldest block first. */
export function* blockedUsers({ db, t }: Scope, blockerId: number): Routine<UserRecord[]> {
  return yield* rows(
    db
      .select({ id: t.users.id, username: t.users.username, createdAt: t.users.createdAt, lastSeenAt: t.users.lastSeenAt })
      .from(t.blocks)
      .innerJoin(t.users, eq(t.users.id, t.blocks.blockedId))
      .where(eq(t.blocks.blockerId, blockerId))
      .orderBy(asc(t.blocks.createdAt), asc(t.users.id)),
  )
}

/** Every user in a block with `userId`, either way. */
export function* blockRelations({ db, t }: Scope, userId: number): Routine<number[]> {
  const found = yield* rows(
    db
      .select({ blockerId: t.blocks.blockerId, blockedId: t.blocks.blockedId })
      .from(t.blocks)
      .where(or(eq(t.blocks.blockerId, userId), eq(t.blocks.blockedId, userId))),
  )
  return found.map((r) => (r.blockerId === userId ? r.blockedId : r.blockerId))
}
