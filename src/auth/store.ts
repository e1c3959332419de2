import { and, eq, isNull, sql } from 'drizzle-orm'
import { deleteOfSession } from '../push/store'
import { exec, rows, type Routine, type Scope } from '../storage/database'

export interface SessionRecord {
  id: string
  userId: number
  tokenHash: string
  expiresAt: Date
  revokedAt: Date | null
}

export function* insertSession(
  { db, t }: Scope,
  session: { id: string; userId: number; tokenHash: string; createdAt: Date; expiresAt: Date },
): Routine<void> {
  yield* exec(db.insert(t.sessions).values(session))
}

export function* sessionById(scope: Scope, id: string): Routine<SessionRecord | undefined> {
  const [row] = yield* rows(
    scope.prepared(
      'sessionById',
      (db, t) =>
        db
          .select({
            id: t.sessions.id,
            userId: t.sessions.userId,
            tokenHash: t.sessions.tokenHash,
            expiresAt: t.sessions.expiresAt,
            revokedAt: t.sessions.revokedAt,
          })
          .from(t.sessions)
          .where(eq(t.sessions.id, sql.placeholder('id'))),
      { id },
    ),
  )
  return row
}

/** Swaps the current refresh token for the next one; false when another use got there first or it was revoked. */
export function* rotateSession(
  { db, t }: Scope,
  id: string,
  fromHash: string,
  toHash: string,
  expiresAt: Date,
): Routine<boolean> {
  const changed = yield* rows(
    db
      .update(t.sessions)
      .set({ tokenHash: toHash, expiresAt })
      .where(and(eq(t.sessions.id, id), eq(t.sessions.tokenHash, fromHash), isNull(t.sessions.revokedAt)))
      .returning({ id: t.sessions.id }),
  )
  return changed.length === 1
}

/** Ends a login session, and with it the session's push subscriptions. */
export function* revokeSession(s: Scope, id: string, at: Date): Routine<void> {
  const { db, t } = s
  yield* exec(db.update(t.sessions).set({ revokedAt: at }).where(and(eq(t.sessions.id, id), isNull(t.sessions.revokedAt))))
  yield* deleteOfSession(s, id)
}
