import { and, eq, isNull } from 'drizzle-orm'
import { checkPassword } from '../auth/model'
import { Passwords, DISABLED_PREFIX } from '../auth/passwords'
import { Cluster } from '../cluster/cluster'
import type { Config } from '../config'
import { AppError } from '../errors'
import type { Logger } from '../log/logger'
import { exec, rows, type Db, type Routine, type Scope } from '../storage/database'
import { USERNAME_PATTERN } from '../users/model'
import { insertUser, userWithHash } from '../users/store'
import { CliError } from './fail'
import { readPassword } from './password-input'

function* setPasswordHash({ db, t }: Scope, userId: number, hash: string): Routine<void> {
  yield* exec(db.update(t.users).set({ passwordHash: hash }).where(eq(t.users.id, userId)))
}

/** Revokes every live session of the user; returns their ids. */
function* revokeAll({ db, t }: Scope, userId: number, at: Date): Routine<string[]> {
  const revoked = yield* rows(
    db
      .update(t.sessions)
      .set({ revokedAt: at })
      .where(and(eq(t.sessions.userId, userId), isNull(t.sessions.revokedAt)))
      .returning({ id: t.sessions.id }),
  )
  return revoked.map((row) => row.id)
}

export const USER_ACTIONS = ['create', 'reset-password', 'disable'] as const

/**
 * `user create|reset-password|disable <username>`. Ending sessions reaches a running server two ways:
 * the revocation is in the database, which every REST request and WebSocket auth checks; and open
 * sockets are closed by the cluster channel (with REDIS_URL, at once) or by each node's periodic check
 * of its live sessions (SESSION_CHECK_MS). Disabling keeps the hash behind a `!` (as /etc/shadow does):
 * login then fails like a wrong password; `reset-password` enables the user again.
 */
export async function userCommand(config: Config, db: Db, log: Logger, action: string, username: string): Promise<string> {
  const passwords = new Passwords(config.argon2MemoryKib, config.argon2TimeCost)
  const user = await db.read((s) => userWithHash(s, username))
  switch (action) {
    case 'create': {
      if (!new RegExp(USERNAME_PATTERN).test(username)) throw new CliError('user create: username must be 3–32 characters of A-Z a-z 0-9 _ . -')
      if (user) throw new CliError(`user create: username ${username} is taken`)
      const hash = await passwords.hash(await newPassword())
      const created = await db.tx((s) => insertUser(s, { username, passwordHash: hash, createdAt: new Date() }))
      if (!created) throw new CliError(`user create: username ${username} is taken`)
      return `created user ${created.username} (id ${created.id})`
    }
    case 'reset-password':
    case 'disable': {
      if (!user) throw new CliError(`user ${action}: no user named ${username}`)
      const hash =
        action === 'disable'
          ? user.passwordHash.startsWith(DISABLED_PREFIX)
            ? user.passwordHash
            : DISABLED_PREFIX + user.passwordHash
          : await passwords.hash(await newPassword())
      const ended = await db.tx(function* (s) {
        yield* setPasswordHash(s, user.id, hash)
        return yield* revokeAll(s, user.id, new Date())
      })
      await announce(config, log, ended)
      const what = action === 'disable' ? `${user.username} disabled` : `password of ${user.username} reset`
      return `${what}; ${ended.length} session${ended.length === 1 ? '' : 's'} ended`
    }
    default:
      throw new CliError(`user: unknown action "${action}" (create, reset-password or disable)`)
  }
}

async function newPassword(): Promise<string> {
  const password = await readPassword()
  try {
    checkPassword(password)
  } catch (error) {
    if (error instanceof AppError) throw new CliError(`password: ${error.message.replace(/^password: /, '')}`)
    throw error
  }
  return password
}

/** Closes the sessions' sockets on every node at once when there is a cluster; else the nodes' check does. */
async function announce(config: Config, log: Logger, sessionIds: string[]): Promise<void> {
  if (!config.cluster || sessionIds.length === 0) return
  try {
    await Cluster.announceSessionsEnded(config.cluster, sessionIds)
  } catch (error) {
    log.warn(`REDIS_URL: could not tell the nodes (${(error as Error).message}); their sockets close within SESSION_CHECK_MS`)
  }
}
