/**
 * The storage ceiling: the same message rows, into the same schema (same tables, indexes and foreign
 * keys, migrated by the project) with the same pragmas, but no framework, seq or duplicate logic:
 * raw bun:sqlite (a cached prepared insert per row) and raw postgres.js (one prepared multi-row insert,
 * which is its own transaction), in transactions of `batch` rows.
 */
import { Database } from 'bun:sqlite'
import postgres from 'postgres'
import { INDEX_NEW_MESSAGES } from '../src/search/fts.sqlite'
import type { Seeded } from './storage-setup'

export interface RawOptions {
  synchronous: 'FULL' | 'NORMAL'
  batch: number
  total: number
}

const TEXT = 'x'.repeat(64)

export function rawSqlite(seeded: Seeded, o: RawOptions): number {
  if (seeded.target.dialect !== 'sqlite') throw new Error('rawSqlite needs a SQLite target')
  const db = new Database(seeded.target.path)
  try {
    db.exec('PRAGMA journal_mode = WAL')
    db.exec(`PRAGMA synchronous = ${o.synchronous}`)
    db.exec('PRAGMA foreign_keys = ON')
    const insert = db.query(
      'insert into messages (dialog_id, seq, sender_id, client_msg_id, type, text, created_at) values (?, ?, ?, ?, ?, ?, ?)',
    )
    // Indexed for search as the writer does it, one statement per transaction: like is compared with like.
    const index = db.query(INDEX_NEW_MESSAGES)
    const { dialogs } = seeded
    const seqs = new Map<number, number>()
    const commit = db.transaction((from: number, to: number) => {
      const now = Date.now()
      let first = 0
      let last = 0
      for (let n = from; n < to; n++) {
        const d = dialogs[n % dialogs.length]!
        const seq = (seqs.get(d.id) ?? 0) + 1
        seqs.set(d.id, seq)
        last = Number(insert.run(d.id, seq, d.sender, `r${n}`, 'text', TEXT, now).lastInsertRowid)
        first ||= last
      }
      index.run(first, last, null) // no text here holds a CJK character: nothing for indexText to change
    })
    const started = performance.now()
    for (let n = 0; n < o.total; n += o.batch) commit.immediate(n, Math.min(o.total, n + o.batch))
    return o.total / ((performance.now() - started) / 1000)
  } finally {
    db.close()
  }
}

export async function rawPostgres(seeded: Seeded, o: RawOptions): Promise<number> {
  if (seeded.target.dialect !== 'pg') throw new Error('rawPostgres needs a Postgres target')
  const sql = postgres(seeded.target.url, { max: 1, onnotice: () => {} })
  try {
    const { dialogs } = seeded
    const seqs = new Map<number, number>()
    const started = performance.now()
    for (let n = 0; n < o.total; n += o.batch) {
      const rows: Record<string, string | number | Date>[] = []
      const now = new Date()
      for (let k = n; k < Math.min(o.total, n + o.batch); k++) {
        const d = dialogs[k % dialogs.length]!
        const seq = (seqs.get(d.id) ?? 0) + 1
        seqs.set(d.id, seq)
        rows.push({ dialog_id: d.id, seq, sender_id: d.sender, client_msg_id: `r${k}`, type: 'text', text: TEXT, created_at: now })
      }
      // One statement is its own transaction: no BEGIN/COMMIT round trips (the writer does the same).
      await sql`insert into messages ${sql(rows)}`
    }
    return o.total / ((performance.now() - started) / 1000)
  } finally {
    await sql.end()
  }
}
