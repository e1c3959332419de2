import { and, inArray, isNotNull } from 'drizzle-orm'
import type { Hub } from '../realtime/hub'
import { rows, type Db, type Routine, type Scope } from '../storage/database'

/** Postgres takes up to 65535 parameters per statement; SQLite 32766. */
const CHUNK = 1000

function* revokedAmong({ db, t }: Scope, ids: string[]): Routine<string[]> {
  const found = yield* rows(
    db
      .select({ id: t.sessions.id })
      .from(t.sessions)
      .where(and(inArray(t.sessions.id, ids), isNotNull(t.sessions.revokedAt))),
  )
  return found.map((row) => row.id)
}

/**
 * Closes live connections whose session was revoked by another process: the `user` CLI commands write
 * the revocation to the database (which every REST request checks) and, in a cluster, announce it on
 * Redis; without Redis, this check every `everyMs` is how a node's open sockets learn of it.
 */
export function startSessionCheck(db: Db, hub: Hub, everyMs: number): () => void {
  let running = false
  const timer = setInterval(async () => {
    if (running) return
    running = true
    try {
      await endRevokedSessions(db, hub)
    } catch {
      // The database being away is /health's business; the next round tries again.
    } finally {
      running = false
    }
  }, everyMs)
  timer.unref()
  return () => clearInterval(timer)
}

/** Ends this node's live connections whose session the database says is revoked. */
export async function endRevokedSessions(db: Db, hub: Hub): Promise<void> {
  const live = hub.liveSessions()
  for (let i = 0; i < live.length; i += CHUNK) {
    const chunk = live.slice(i, i + CHUNK)
    for (const id of await db.read((s) => revokedAmong(s, chunk))) hub.endSession(id)
  }
}
