import { Database as SqliteDriver } from 'bun:sqlite'
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
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
 * running.ts). The current database is kept beside it as `<db>.before-restore-<time>`, with its `-wal`,
 * `-shm` and `-journal` files (if any) under the same name, so SQLite still pairs them. A current
 * database SQLite cannot read (damaged: the usual reason to restore) is kept aside the same way.
 */
export function restore(config: Config, file: string): Restored {
  const target = config.database
  if (target.dialect === 'pg')
    throw new CliError('restore: DATABASE_URL is Postgres; restore with pg_restore (e.g. pg_restore --clean -d "$DATABASE_URL" chat.dump)')
  if (target.path === ':memory:') throw new CliError('restore: DATABASE_URL is an in-memory database')
  const pids = servingPids(target.path)
  if (pids.length > 0)
    throw new CliError(`restore: a server (pid ${pids.join(', ')}) has ${target.path} open; stop it first`)
  const source = resolve(file)
  checkBackup(source)
  const present = existsSync(target.path)
  if (present && !statSync(target.path).isFile()) throw new CliError(`restore: ${target.path} (DATABASE_URL) is not a file`)
  const unreadable = present ? checkpoint(target.path) : undefined
  const previous = present ? `${target.path}.before-restore-${new Date().toISOString().replace(/[:.]/g, '-')}` : undefined
  // Copied next to the database first, so the final step is a rename on one filesystem (atomic).
  const staging = `${target.path}.restoring`
  const moved: [from: string, to: string][] = []
  try {
    // A new machine: the database's folder may not exist yet.
    mkdirSync(dirname(target.path), { recursive: true })
    rmSync(staging, { force: true })
    // Written by SQLite from the backup as SQLite reads it: a -wal beside the backup (a copy of a live
    // database) holds rows that a copy of the file alone would lose.
    const from = new SqliteDriver(source, { readonly: true })
    try {
      from.query('VACUUM INTO ?').run(staging)
    } finally {
      from.close()
    }
    sync(staging)
    if (previous) {
      // A WAL, shared-memory or journal file beside the path belongs to the old database: it goes with it
      // (never applied to the new one, and nothing of the old one is lost).
      for (const suffix of ['', ...COMPANIONS]) {
        if (!existsSync(target.path + suffix)) continue
        renameSync(target.path + suffix, previous + suffix)
        moved.push([target.path + suffix, previous + suffix])
      }
    } else {
      for (const suffix of COMPANIONS) rmSync(target.path + suffix, { force: true })
    }
    renameSync(staging, target.path)
  } catch (error) {
    rmSync(staging, { force: true })
    // Puts the old database back as it was, so a failed restore leaves the files as it found them.
    for (const [from, to] of moved.reverse()) {
      try {
        renameSync(to, from)
      } catch {
        throw new CliError(`restore: ${target.path} could not be replaced (${(error as Error).message}); the old database is now ${previous}`)
      }
    }
    throw new CliError(`restore: ${target.path} could not be replaced: ${(error as Error).message}`)
  }
  const kept = moved.map(([, to]) => to.slice(previous!.length)).filter((suffix) => suffix !== '')
  return { restored: target.path, previous, kept, unreadable }
}

export interface Restored {
  restored: string
  /** Where the replaced database was kept (none if there was none). */
  previous: string | undefined
  /** The suffixes (`-wal`, `-shm`, `-journal`) kept with it beside `previous`. */
  kept: string[]
  /** Why SQLite could not read the replaced database, if it could not. */
  unreadable: string | undefined
}

/** The command's one line. */
export function restoredLine({ restored, previous, kept, unreadable }: Restored): string {
  if (!previous) return `restored ${restored}`
  const also = kept.length > 0 ? ` (with its ${kept.join(', ')})` : ''
  return unreadable
    ? `restored ${restored}; the database it replaced could not be read (${unreadable}) and is kept as ${previous}${also}`
    : `restored ${restored}; the database it replaced is kept as ${previous}${also}`
}

const COMPANIONS = ['-wal', '-shm', '-journal']

/**
 * Folds a leftover WAL (a server that crashed) into the database before it is set aside. Returns why
 * SQLite could not read it (damaged), or undefined; refuses while another process holds a lock on it.
 */
function checkpoint(path: string): string | undefined {
  // SQLite takes an empty file for a new database and deletes a WAL beside it: not opened, so that WAL is kept.
  if (statSync(path).size === 0) return existsSync(`${path}-wal`) ? 'the file is empty' : undefined
  let db: SqliteDriver | undefined
  try {
    db = new SqliteDriver(path, { create: false })
    db.exec('PRAGMA wal_checkpoint(TRUNCATE)')
    return undefined
  } catch (error) {
    const code = String((error as { code?: unknown }).code ?? '')
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'))
      throw new CliError(`restore: another process holds a lock on ${path} (${(error as Error).message}); stop it first`)
    return (error as Error).message
  } finally {
    db?.close()
  }
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
    throw unusableBackup(path, error)
  }
  try {
    // quick_check reports a problem a line (up to 100 of them): the failure stays one line.
    const problems = db
      .query<{ quick_check: string }, []>('PRAGMA quick_check')
      .all()
      .flatMap((row) => row.quick_check.split('\n'))
      .filter((line) => line !== 'ok' && !line.startsWith('*** in database '))
    if (problems.length > 0)
      throw new CliError(`restore: ${path} is damaged: ${problems[0]}${problems.length > 1 ? ` (and ${problems.length - 1} more problems)` : ''}`)
    const table = db.query("SELECT 1 FROM sqlite_master WHERE name = '__drizzle_migrations'").get()
    if (!table) throw new CliError(`restore: ${path} is not a backup of this server (no migrations table)`)
  } catch (error) {
    if (error instanceof CliError) throw error
    throw unusableBackup(path, error)
  } finally {
    db.close()
  }
}

/** SQLite's own verdict on a backup it could not read, said as such: damaged is not "not a database". */
function unusableBackup(path: string, error: unknown): CliError {
  const code = String((error as { code?: unknown }).code ?? '')
  const message = (error as Error).message
  if (code.startsWith('SQLITE_NOTADB')) return new CliError(`restore: ${path} is not a SQLite database: ${message}`)
  if (code.startsWith('SQLITE_CORRUPT')) return new CliError(`restore: ${path} is damaged: ${message}`)
  return new CliError(`restore: ${path} cannot be read: ${message}`)
}

/** fsync(2) of a file or a folder (a folder's entries: a new link, a rename). */
export function sync(path: string): void {
  const fd = openSync(path, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}
