import type { Database as SqliteDriver } from 'bun:sqlite'
import { createHash } from 'node:crypto'
import type postgres from 'postgres'
import { reindexComposed } from '../search/fts.sqlite'
import { EMBEDDED } from './embedded-migrations'

/**
 * Applies the bundled migrations straight from memory (no files written anywhere, also in the compiled
 * binary), in drizzle's bookkeeping (`__drizzle_migrations`: hash and `when` of each applied file), so a
 * database migrated by drizzle-kit or by an earlier version of this server is recognised.
 *
 * Serialised across processes: any number of nodes may start together on an empty database. On Postgres
 * a transaction-scoped advisory lock is taken before anything is read; on SQLite the whole run is one
 * `BEGIN IMMEDIATE` transaction, which holds the database's write lock.
 */
interface Migration {
  tag: string
  statements: string[]
  when: number
  hash: string
}

/** What a SQLite migration needs that SQL cannot do, run after its statements in the same transaction. */
const SQLITE_STEPS: Record<string, (client: SqliteDriver) => void> = {
  '0011_search_nfc': reindexComposed,
}

function migrationsOf(dialect: 'sqlite' | 'pg'): Migration[] {
  const { journal, files } = EMBEDDED[dialect]
  return journal.entries.map((entry) => {
    const text = files[entry.tag]
    if (text === undefined) throw new Error(`migration ${entry.tag} is in the journal but not bundled`)
    return {
      tag: entry.tag,
      statements: text.split('--> statement-breakpoint').filter((s) => s.trim() !== ''),
      when: entry.when,
      hash: createHash('sha256').update(text).digest('hex'),
    }
  })
}

/** The `when` of the newest bundled migration: a database whose newest applied one is older is not migrated. */
export const newestMigration = (dialect: 'sqlite' | 'pg') => Math.max(...EMBEDDED[dialect].journal.entries.map((e) => e.when))

/** Any number: one constant per application, so the lock is ours alone ("chat" in ASCII). */
const PG_LOCK_KEY = 0x63686174

/** Applies pending migrations; returns how many were applied. */
export async function migratePg(sql: postgres.Sql): Promise<number> {
  const migrations = migrationsOf('pg')
  return sql.begin(async (tx) => {
    // Waiting for another node's migrations, and a migration's own statements, may take longer than the
    // sessions' statement_timeout (PG_STALL_TIMEOUT_MS), which is for the chat's own statements.
    await tx`set local statement_timeout = 0`
    await tx`select pg_advisory_xact_lock(${PG_LOCK_KEY})`
    await tx`create schema if not exists drizzle`
    await tx`create table if not exists drizzle.__drizzle_migrations (id serial primary key, hash text not null, created_at bigint)`
    const [last] = await tx<{ created_at: string }[]>`select created_at from drizzle.__drizzle_migrations order by created_at desc limit 1`
    let applied = 0
    for (const migration of migrations) {
      if (last && Number(last.created_at) >= migration.when) continue
      for (const statement of migration.statements) await tx.unsafe(statement)
      await tx`insert into drizzle.__drizzle_migrations (hash, created_at) values (${migration.hash}, ${migration.when})`
      applied++
    }
    return applied
  })
}

/** How long a node starting waits for another node's migration (a reindex of every message takes a while). */
const MIGRATION_WAIT_MS = 600_000

export function migrateSqlite(client: SqliteDriver): number {
  const migrations = migrationsOf('sqlite')
  const { timeout } = client.query<{ timeout: number }, []>('PRAGMA busy_timeout').get()!
  client.exec(`PRAGMA busy_timeout = ${MIGRATION_WAIT_MS}`)
  try {
    client.exec('BEGIN IMMEDIATE')
  } finally {
    client.exec(`PRAGMA busy_timeout = ${timeout}`)
  }
  try {
    client.exec('CREATE TABLE IF NOT EXISTS "__drizzle_migrations" (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at numeric)')
    const last = client.query<{ created_at: number }, []>('SELECT created_at FROM "__drizzle_migrations" ORDER BY created_at DESC LIMIT 1').get()
    let applied = 0
    for (const migration of migrations) {
      if (last && Number(last.created_at) >= migration.when) continue
      for (const statement of migration.statements) client.exec(statement)
      SQLITE_STEPS[migration.tag]?.(client)
      client.query('INSERT INTO "__drizzle_migrations" ("hash", "created_at") VALUES (?, ?)').run(migration.hash, migration.when)
      applied++
    }
    client.exec('COMMIT')
    return applied
  } catch (error) {
    client.exec('ROLLBACK')
    throw error
  }
}
