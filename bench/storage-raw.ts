/**
 * The storage ceiling: the same message rows inserted with no framework, no seq or duplicate logic —
 * raw bun:sqlite (same pragmas, same indexes, a cached prepared insert) and raw postgres.js (one
 * multi-row insert per transaction) — in transactions of `batch` rows.
 */
import { Database } from 'bun:sqlite'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'

export interface RawOptions {
  synchronous: 'FULL' | 'NORMAL'
  batch: number
  total: number
  dialogs: number
}

const TEXT = 'x'.repeat(64)
const TABLE = `(id integer primary key autoincrement, dialog_id integer not null, seq integer not null, sender_id integer not null,
  client_msg_id text not null, type text not null, text text not null, created_at integer not null)`

export function rawSqlite(o: RawOptions): number {
  const dir = mkdtempSync(join(tmpdir(), 'bench-raw-'))
  const db = new Database(join(dir, 'raw.db'), { create: true })
  try {
    db.exec('PRAGMA journal_mode = WAL')
    db.exec(`PRAGMA synchronous = ${o.synchronous}`)
    db.exec(`create table messages ${TABLE}`)
    db.exec('create unique index m_seq on messages (dialog_id, seq)')
    db.exec('create unique index m_client on messages (dialog_id, sender_id, client_msg_id)')
    db.exec('create index m_created on messages (dialog_id, created_at)')
    const insert = db.query(
      'insert into messages (dialog_id, seq, sender_id, client_msg_id, type, text, created_at) values (?, ?, ?, ?, ?, ?, ?)',
    )
    const seqs = new Array<number>(o.dialogs).fill(0)
    const commit = db.transaction((from: number, to: number) => {
      const now = Date.now()
      for (let n = from; n < to; n++) {
        const d = n % o.dialogs
        insert.run(d, ++seqs[d]!, d + 1, `c${n}`, 'text', TEXT, now)
      }
    })
    const started = performance.now()
    for (let n = 0; n < o.total; n += o.batch) commit.immediate(n, Math.min(o.total, n + o.batch))
    return o.total / ((performance.now() - started) / 1000)
  } finally {
    db.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

export async function rawPostgres(o: RawOptions, adminUrl = 'postgres://postgres@127.0.0.1:5432/test'): Promise<number> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {} })
  const table = `bench_raw_${process.pid}`
  try {
    await sql.unsafe(`create table ${table} (id integer primary key generated always as identity, dialog_id integer not null,
      seq integer not null, sender_id integer not null, client_msg_id text not null, type text not null, text text not null,
      created_at timestamptz(3) not null)`)
    await sql.unsafe(`create unique index ${table}_seq on ${table} (dialog_id, seq)`)
    await sql.unsafe(`create unique index ${table}_client on ${table} (dialog_id, sender_id, client_msg_id)`)
    await sql.unsafe(`create index ${table}_created on ${table} (dialog_id, created_at)`)
    const seqs = new Array<number>(o.dialogs).fill(0)
    const started = performance.now()
    for (let n = 0; n < o.total; n += o.batch) {
      const rows: Record<string, string | number | Date>[] = []
      const now = new Date()
      for (let k = n; k < Math.min(o.total, n + o.batch); k++) {
        const d = k % o.dialogs
        rows.push({ dialog_id: d, seq: ++seqs[d]!, sender_id: d + 1, client_msg_id: `c${k}`, type: 'text', text: TEXT, created_at: now })
      }
      await sql.begin((tx) => tx`insert into ${tx(table)} ${tx(rows)}`)
    }
    return o.total / ((performance.now() - started) / 1000)
  } finally {
    await sql.unsafe(`drop table if exists ${table}`)
    await sql.end()
  }
}
