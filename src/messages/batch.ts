import type { Db, SqliteDb } from '../storage/database'
import { commitPgMarks, commitPgSends } from './batch.pg'
import { commitSqliteBatch } from './batch.sqlite'
import type { MarkInput, MarkOutcome } from './receipts'
import type { SendInput, SendOutcome } from './sends'

export type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown }

/**
 * A batch's sends and receipts settle apart: the sends' outcome never depends on the receipts', and on
 * Postgres never waits for them either (a receipt held up by a locked member row would hold the sends'
 * acks and publishes back while later changes of their dialogs went out before them).
 */
export interface BatchOutcome {
  sends: Promise<Settled<SendOutcome[]>>
  marks: Promise<Settled<MarkOutcome[]>>
}

const settle = <T>(work: Promise<T>): Promise<Settled<T>> =>
  work.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  )

/**
 * Commits a batch of sends and watermark moves; settles nothing before the commit. Sends: each dialog is
 * locked, duplicates (against the table and inside the batch) resolve to the original, the rest are
 * numbered gaplessly per dialog and inserted, and each dialog's activity moves. On SQLite the receipts
 * ride the sends' transaction; should that fail, sends and receipts commit again apart, so a bad receipt
 * costs its batch-mates nothing (the failed transaction committed nothing). On Postgres they are two
 * statements side by side from the start (batch.pg.ts).
 */
export function commitBatch(db: Db, sends: SendInput[], marks: MarkInput[], now: Date): BatchOutcome {
  if (db.dialect === 'pg') return { sends: settle(commitPgSends(db.pg, sends, now)), marks: settle(commitPgMarks(db.pg, marks)) }
  const both = commitSqliteTogether(db, sends, marks, now)
  return { sends: both.then((o) => o.sends), marks: both.then((o) => o.marks) }
}

async function commitSqliteTogether(db: SqliteDb, sends: SendInput[], marks: MarkInput[], now: Date): Promise<{ sends: Settled<SendOutcome[]>; marks: Settled<MarkOutcome[]> }> {
  const together = await settle(commitSqliteBatch(db, sends, marks, now))
  if (together.ok) return { sends: { ok: true, value: together.value.sends }, marks: { ok: true, value: together.value.marks } }
  if (sends.length === 0 || marks.length === 0) return { sends: together, marks: together }
  const sent = await settle(commitSqliteBatch(db, sends, [], now).then((r) => r.sends))
  const marked = await settle(commitSqliteBatch(db, [], marks, now).then((r) => r.marks))
  return { sends: sent, marks: marked }
}
