import { and, eq, gt, inArray, isNotNull, isNull, lte, or, sql } from 'drizzle-orm'
import { exec, rows, type Routine, type Scope } from '../storage/database'

export interface SubscriptionRecord {
  id: number
  userId: number
  endpoint: string
  p256dh: string
  auth: string
}

/**
 * Stores the caller's subscription in their session: `created` false when this session already had that
 * endpoint (its keys are refreshed), 'full' when the user already has `max` live subscriptions. An endpoint
 * held by another session or account is taken over: the browser that owns it now belongs to this login.
 */
export function* saveSubscription(
  s: Scope,
  sub: { userId: number; sessionId: string; endpoint: string; p256dh: string; auth: string; now: Date },
  max: number,
): Routine<{ created: boolean } | 'full'> {
  const { db, t } = s
  // Two subscribes of one user must not both pass the count below: a no-op update of the user's row locks it
  // on Postgres, so they take turns (SQLite's BEGIN IMMEDIATE already does); the same statement on both.
  yield* exec(db.update(t.users).set({ username: sql`${t.users.username}` }).where(eq(t.users.id, sub.userId)))
  yield* pruneEnded(s, sub.userId, sub.now)
  const [held] = yield* rows(
    db
      .select({ userId: t.pushSubscriptions.userId, sessionId: t.pushSubscriptions.sessionId })
      .from(t.pushSubscriptions)
      .where(eq(t.pushSubscriptions.endpoint, sub.endpoint)),
  )
  if (held?.userId !== sub.userId) {
    const [counted] = yield* rows(
      db
        .select({ n: sql<number>`count(*)`.mapWith(Number) })
        .from(t.pushSubscriptions)
        .where(eq(t.pushSubscriptions.userId, sub.userId)),
    )
    if ((counted?.n ?? 0) >= max) return 'full'
  }
  const values = { userId: sub.userId, sessionId: sub.sessionId, p256dh: sub.p256dh, auth: sub.auth }
  yield* exec(
    db
      .insert(t.pushSubscriptions)
      .values({ ...values, endpoint: sub.endpoint, createdAt: sub.now })
      .onConflictDoUpdate({ target: t.pushSubscriptions.endpoint, set: values }),
  )
  return { created: held?.sessionId !== sub.sessionId }
}

/** Subscriptions left by sessions that ended without a logout (expired) or before this table existed. */
function* pruneEnded({ db, t }: Scope, userId: number, now: Date): Routine<void> {
  const ended = db
    .select({ id: t.sessions.id })
    .from(t.sessions)
    .where(and(eq(t.sessions.userId, userId), or(lte(t.sessions.expiresAt, now), isNotNull(t.sessions.revokedAt))))
  yield* exec(
    db.delete(t.pushSubscriptions).where(and(eq(t.pushSubscriptions.userId, userId), inArray(t.pushSubscriptions.sessionId, ended))),
  )
}

/** Removes one of the user's subscriptions, if it is theirs. */
export function* deleteSubscription({ db, t }: Scope, userId: number, endpoint: string): Routine<void> {
  yield* exec(
    db
      .delete(t.pushSubscriptions)
      .where(and(eq(t.pushSubscriptions.userId, userId), eq(t.pushSubscriptions.endpoint, endpoint))),
  )
}

/** The push service said the endpoint is gone (404/410). */
export function* deleteGone({ db, t }: Scope, id: number, endpoint: string): Routine<void> {
  yield* exec(
    db.delete(t.pushSubscriptions).where(and(eq(t.pushSubscriptions.id, id), eq(t.pushSubscriptions.endpoint, endpoint))),
  )
}

/** A session ended (logout, revocation): its subscriptions end with it. */
export function* deleteOfSession({ db, t }: Scope, sessionId: string): Routine<void> {
  yield* exec(db.delete(t.pushSubscriptions).where(eq(t.pushSubscriptions.sessionId, sessionId)))
}

/** The subscriptions of these users whose sessions are still live. */
export function* liveSubscriptions({ db, t }: Scope, userIds: number[], now: Date): Routine<SubscriptionRecord[]> {
  return yield* rows(
    db
      .select({
        id: t.pushSubscriptions.id,
        userId: t.pushSubscriptions.userId,
        endpoint: t.pushSubscriptions.endpoint,
        p256dh: t.pushSubscriptions.p256dh,
        auth: t.pushSubscriptions.auth,
      })
      .from(t.pushSubscriptions)
      .innerJoin(t.sessions, eq(t.sessions.id, t.pushSubscriptions.sessionId))
      .where(and(inArray(t.pushSubscriptions.userId, userIds), isNull(t.sessions.revokedAt), gt(t.sessions.expiresAt, now))),
  )
}

/**
 * Whether a subscription is still what a delivery was queued for: the same row, user, endpoint and keys, in a
 * session still live. A logout, an endpoint taken over by another account, or new keys end a queued push.
 */
export function* stillSubscribed({ db, t }: Scope, sub: SubscriptionRecord, now: Date): Routine<boolean> {
  const found = yield* rows(
    db
      .select({ id: t.pushSubscriptions.id })
      .from(t.pushSubscriptions)
      .innerJoin(t.sessions, eq(t.sessions.id, t.pushSubscriptions.sessionId))
      .where(
        and(
          eq(t.pushSubscriptions.id, sub.id),
          eq(t.pushSubscriptions.userId, sub.userId),
          eq(t.pushSubscriptions.endpoint, sub.endpoint),
          eq(t.pushSubscriptions.p256dh, sub.p256dh),
          eq(t.pushSubscriptions.auth, sub.auth),
          isNull(t.sessions.revokedAt),
          gt(t.sessions.expiresAt, now),
        ),
      ),
  )
  return found.length > 0
}

export function* usernames({ db, t }: Scope, userIds: number[]): Routine<Map<number, string>> {
  const found = yield* rows(db.select({ id: t.users.id, username: t.users.username }).from(t.users).where(inArray(t.users.id, userIds)))
  return new Map(found.map((u) => [u.id, u.username]))
}
