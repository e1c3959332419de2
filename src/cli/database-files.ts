import { Database as SqliteDriver } from 'bun:sqlite'
import { copyFileSync, existsSync, openSync, fsyncSync, closeSync, renameSync, rmSync } from 'node:fs'
import { resolve } from 'node:path'
import type { Config } from '../config'
import { CliError } from './fail'
import { servingPids } from './running'

/**
 * `backup <file>`: a consistent copy of the SQLite database while the server keeps running. VACUUM INTO
 * reads one snapshot (WAL readers do not block the writer, nor it them) and writes a compact database
 * file; what was committed before the snapshot is in it, what commits later is not.
 */
export function backup(config: Config, file: string): string {
  const target = config.database
  if (target.dialect === 'pg')
    throw new CliError('backup: DATABASE_URL is Postgres; back it up with pg_dump (e.g. pg_dump -Fc "$DATABASE_URL" -f chat.dump)')
  if (target.path === ':memory:') throw new CliError('backup: DATABASE_URL is an in-memory database; nothing to back up')
  const out = resolve(file)
  if (existsSync(out)) throw new CliError(`backup: ${out} already exists; choose a new file`)
  const db = openExisting(target.path)
  try {
    db.exec('PRAGMA busy_timeout = 10000')
    db.query('VACUUM INTO ?').run(out)
  } catch (error) {
    throw new CliError(`backup: writing ${out} failed: ${(error as Error).message}`)
  } finally {
    db.close()
  }
  return out
}

/**
 * `restore <file>`: replaces the database with a backup, only while no server has it open (see
 * running.ts). The current database is kept beside it as `<db>.before-restore-<time>`.
 */
export function restore(config: Config, file: string): { restored: string; previous: string | undefined } {
  const target = config.database
  if (target.dialect === 'pg')
    throw new CliError('restore: DATABASE_URL is Postgres; restore with pg_restore (e.g. pg_restore --clean -d "$DATABASE_URL" chat.dump)')
  if (target.path === ':memory:') throw new CliError('restore: DATABASE_URL is an in-memory database')
  const pids = servingPids(target.path)
  if (pids.length > 0)
    throw new CliError(`restore: a server (pid ${pids.join(', ')}) has ${target.path} open; stop it first`)
  const source = resolve(file)
  checkBackup(source)
  // Copied next to the database first, so the final step is a rename on one filesystem (atomic).
  const staging = `${target.path}.restoring`
  copyFileSync(source, staging)
  const fd = openSync(staging, 'r')
  fsyncSync(fd)
  closeSync(fd)
  let previous: string | undefined
  if (existsSync(target.path)) {
    // Folds a leftover WAL (a server that crashed) into the old file before it is set aside.
    const old = openExisting(target.path)
    old.exec('PRAGMA wal_checkpoint(TRUNCATE)')
    old.close()
    previous = `${target.path}.before-restore-${new Date().toISOString().replace(/[:.]/g, '-')}`
    renameSync(target.path, previous)
  }
  // A WAL or shared-memory file left beside the path belongs to the old database: never apply it to the new one.
  rmSync(`${target.path}-wal`, { force: true })
  rmSync(`${target.path}-shm`, { force: true })
  renameSync(staging, target.path)
  return { restored: target.path, previous }
}

function openExisting(path: string): SqliteDriver {
  if (!existsSync(path)) throw new CliError(`DATABASE_URL: no SQLite database at ${path}`)
  try {
    return new SqliteDriver(path, { create: false })
  } catch (error) {
    throw new CliError(`DATABASE_URL: cannot open SQLite database ${path}: ${(error as Error).message}`)
  }
}

function checkBackup(path: string): void {
  if (!existsSync(path)) throw new CliError(`restore: no such file ${path}`)
  let db: SqliteDriver
  try {
    db = new SqliteDriver(path, { readonly: true })
  } catch (error) {
    throw new CliError(`restore: ${path} is not a SQLite database: ${(error as Error).message}`)
  }
  try {
    const check = db.query<{ quick_check: string }, []>('PRAGMA quick_check').get()
    if (check?.quick_check !== 'ok') throw new CliError(`restore: ${path} is damaged: ${check?.quick_check}`)
    const table = db.query("SELECT 1 FROM sqlite_master WHERE name = '__drizzle_migrations'").get()
    if (!table) throw new CliError(`restore: ${path} is not a backup of this server (no migrations table)`)
  } catch (error) {
    if (error instanceof CliError) throw error
    throw new CliError(`restore: ${path} is not a SQLite database: ${(error as Error).message}`)
  } finally {
    db.close()
  }
}
