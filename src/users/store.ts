import { and, asc, eq, inArray, isNull, lt, or, sql } from 'drizzle-orm'
import { exec, rows, type Routine, type Scope, type Tables } from '../storage/database'
import { usernameKey, type UserRecord } from './model'

const publicColumns = (t: Tables) => ({
  id: t.users.id,
  username: t.users.username,
  createdAt: t.users.createdAt,
  lastSeenAt: t.users.lastSeenAt,
})

/** Inserts a user; undefined when the username (case-insensitively) is taken. */
export function* insertUser(
  { db, t }: Scope,
  user: { username: string; passwordHash: string; createdAt: Date },
): Routine<UserRecord | undefined> {
  const [row] = yield* rows(
    db
      .insert(t.users)
      .values({ ...user, usernameLower: usernameKey(user.username) })
      .onConflictDoNothing({ target: t.users.usernameLower })
      .returning(publicColumns(t)),
  )
  return row
}

/** No username holds a NUL, and Postgres would reject it as a parameter: such lookups find nobody without asking. */
const holdsNul = (value: string) => value.includes('\u0000')

export function* userWithHash({ db, t }: Scope, username: string): Routine<(UserRecord & { passwordHash: string }) | undefined> {
  if (holdsNul(username)) return undefined
  const [row] = yield* rows(
    db
      .select({ ...publicColumns(t), passwordHash: t.users.passwordHash })
      .from(t.users)
      .where(eq(t.users.usernameLower, usernameKey(username))),
  )
  return row
}

/** Replaces a user's password hash, unless it changed since `from` was read (a reset or disable wins). */
export function* replacePasswordHash({ db, t }: Scope, userId: number, from: string, to: string): Routine<void> {
  yield* exec(
    db
      .update(t.users)
      .set({ passwordHash: to })
      .where(and(eq(t.users.id, userId), eq(t.users.passwordHash, from))),
  )
}

export function* userById({ db, t }: Scope, id: number): Routine<UserRecord | undefined> {
  const [row] = yield* rows(db.select(publicColumns(t)).from(t.users).where(eq(t.users.id, id)))
  return row
}

export function* usersByPrefix({ db, t }: Scope, dialect: 'sqlite' | 'pg', prefix: string, limit: number): Routine<UserRecord[]> {
  if (holdsNul(prefix)) return []
  // Usernames may contain `_`, a LIKE wildcard: escape it (and `%`, `\`) so the prefix is literal.
  const pattern = usernameKey(prefix).replace(/[\\%_]/g, (c) => `\\${c}`) + '%'
  return yield* rows(
    db
      .select(publicColumns(t))
      .from(t.users)
      .where(sql`${t.users.usernameLower} like ${pattern} escape '\\'`)
      // Byte order on both: SQLite's own; on Postgres "C", since the database's collation may be a language's,
      // which orders `_`, `-` and `.` otherwise and so would pick other users for the limit.
      .orderBy(dialect === 'pg' ? sql`${t.users.usernameLower} collate "C"` : asc(t.users.usernameLower))
      .limit(limit),
  )
}

/** Records when users were last seen online; only moves forward, so racing writes keep the latest. */
export function* setLastSeen({ db, t }: Scope, userIds: number[], at: Date): Routine<void> {
  if (userIds.length === 0) return
  yield* exec(
    db
      .update(t.users)
      .set({ lastSeenAt: at })
      .where(and(inArray(t.users.id, userIds), or(isNull(t.users.lastSeenAt), lt(t.users.lastSeenAt, at)))),
  )
}
