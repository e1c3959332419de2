import { Database as SqliteDriver, type Changes, type SQLQueryBindings } from 'bun:sqlite'
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { drizzle as drizzleSqlite, type BunSQLiteDatabase } from 'drizzle-orm/bun-sqlite'
import { is, Param, Placeholder, type SQL } from 'drizzle-orm'
import { PgDialect, type PgDatabase } from 'drizzle-orm/pg-core'
import { drizzle as drizzlePg, type PostgresJsQueryResultHKT } from 'drizzle-orm/postgres-js'
import type { Socket } from 'node:net'
import postgres from 'postgres'
import type { DatabaseTarget } from '../config'
import { logFault } from '../log/fault'
import { BACKSTOP_PAGES, startCheckpointer } from './checkpointer'
import { WalSync } from './wal-sync'
import { migratePg, migrateSqlite, newestMigration } from './migrate'
import { pgConnection } from './pg-url'
import { StallWatch } from './pg-stall'
import * as pgSchema from './schema.pg'
import * as sqliteSchema from './schema.sqlite'

/**
 * Shared data access is written once against this type. Both schemas export the same tables with the same
 * TypeScript row types, so queries are typed through the SQLite builder and run unchanged on Postgres;
 * `Db.read` / `Db.tx` are the only places that know which driver is underneath.
 */
export type QueryDb = BunSQLiteDatabase<typeof sqliteSchema>
export type Tables = typeof sqliteSchema

/** What a storage routine builds its queries with: the connection (or transaction) and that dialect's tables. */
export interface Scope {
  db: QueryDb
  t: Tables
  /**
   * SQLite only: a statement built once per connection and reused (inside transactions too, since bun:sqlite
   * has one connection). It runs synchronously, so a routine may call it directly instead of yielding it.
   * Statements there cost no round trip, so hot paths use many small prepared ones; on Postgres, where
   * each statement is a round trip, they use few multi-row ones instead. `client` is bun:sqlite's own
   * connection, for a statement drizzle has no builder for (the full-text table's).
   */
  memo?: <T>(key: string, build: (db: QueryDb, t: Tables, client: SqliteDriver) => T) => T
  /**
   * A hot query built once under `key` (with `sql.placeholder`s) and run with `params`, for `rows()`:
   * compiled once on SQLite; on Postgres prepared by name, so it is also planned once per connection.
   * Building and compiling a query costs more than running it on a small result.
   */
  prepared<T>(key: string, build: (db: QueryDb, t: Tables) => Preparable<T>, params: Record<string, unknown>): { all(): T[] }
}

/**
 * A statement built by drizzle (with `sql.placeholder`s) that bun:sqlite runs itself, for one run per
 * message: where each parameter comes from (a placeholder, encoded as its column stores it, or a constant)
 * is worked out once, where drizzle's prepared run works it out again on every call (measured: 4 % of the
 * server's time in the e2e loop). Returns bun:sqlite's changes and last rowid.
 */
export function direct<V extends Record<string, unknown>>(client: SqliteDriver, query: { toSQL(): { sql: string; params: unknown[] } }) {
  const { sql: text, params } = query.toSQL()
  const fills = params.map((p): ((values: V) => SQLQueryBindings) => {
    if (is(p, Placeholder)) return (values) => values[p.name] as SQLQueryBindings
    if (is(p, Param) && is(p.value, Placeholder)) {
      const { encoder, value } = p
      return (values) => encoder.mapToDriverValue(values[value.name]) as SQLQueryBindings
    }
    return () => p as SQLQueryBindings
  })
  const statement = client.query<unknown, SQLQueryBindings[]>(text)
  return (values: V): Changes => statement.run(...fills.map((fill) => fill(values)))
}

/** A drizzle query builder, which can be compiled once and run with placeholder values. */
export interface Preparable<T> {
  prepare(): { all(placeholders?: Record<string, unknown>): T[] }
}

/** A step of a storage routine: the runner executes the query and sends the rows back into the generator. */
type Step = { rows: true; query: { all(): unknown } } | { rows: false; query: { run(): unknown } }
export type Routine<T> = Generator<Step, T, unknown>

/** Rows of a select or of an insert/update … returning. */
export function* rows<T>(query: { all(): T[] }): Routine<T[]> {
  return (yield { rows: true, query }) as T[]
}

/** A statement whose result is not needed. */
export function* exec(query: { run(): unknown }): Routine<void> {
  yield { rows: false, query }
}

/**
 * Postgres as itself, for the code that is Postgres's own (how a batch of sends commits): its builders
 * and tables with their Postgres types, awaited directly.
 */
export type PgTables = typeof pgSchema
export interface PgScope {
  db: PgDatabase<PostgresJsQueryResultHKT, PgTables>
  t: PgTables
  /**
   * A statement drizzle's builders cannot express (an INSERT … SELECT that leaves the identity column
   * out, a CTE). Outside a transaction it is prepared on its connection, so Postgres plans it once per
   * connection rather than on every call (drizzle prepares only named queries).
   */
  execute<T>(query: SQL): Promise<T[]>
}
export interface PgAccess {
  /** Outside a transaction: each statement is its own. */
  read<T>(work: (s: PgScope) => Promise<T>): Promise<T>
  tx<T>(work: (s: PgScope) => Promise<T>): Promise<T>
}

export type Db = SqliteDb | PgDb
export interface SqliteDb extends DbCommon {
  readonly dialect: 'sqlite'
}
export interface PgDb extends DbCommon {
  readonly dialect: 'pg'
  readonly pg: PgAccess
}

interface DbCommon {
  /** Runs a routine outside a transaction. */
  read<T>(routine: (s: Scope) => Routine<T>): Promise<T>
  /**
   * Runs a routine in one transaction: synchronously on bun:sqlite (BEGIN IMMEDIATE), awaited on Postgres;
   * settles once the commit is durable. `syncOffLoop`, on a SQLite file with synchronous=FULL: the commit's
   * WAL sync runs on the thread pool instead of inside COMMIT on the event loop (wal-sync.ts), for a
   * transaction that may meet a busy disk, such as an upload's row right behind its file's fdatasync.
   */
  tx<T>(routine: (s: Scope) => Routine<T>, options?: { syncOffLoop?: boolean }): Promise<T>
  /** A cheap round trip, for /health. */
  ping(): Promise<void>
  /** True when the newest migration this code carries is applied (another node may have gone further). */
  migrated(): Promise<boolean>
  /**
   * SQLite: a number that moves whenever another connection (another process: the `user` CLI, another
   * node on the same file) has committed since the last call — `PRAGMA data_version`, a few µs. Postgres:
   * undefined, its server does not say.
   */
  commitsElsewhere(): number | undefined
  close(): Promise<void>
}

export interface OpenOptions {
  /** Told every statement drizzle runs, with its parameters (tests look at the plans of the real queries). */
  onQuery?: (sql: string, params: unknown[]) => void
  sqliteSynchronous?: 'FULL' | 'NORMAL'
  pgPoolMax?: number
  /** Postgres: seconds to wait for a connection before failing (default 5). */
  connectTimeoutSec?: number
  /** Postgres: how long work may wait on connections that answer nothing before they are dropped (pg-stall.ts). */
  stallTimeoutMs?: number
}

/** Opens the database the target names and applies pending migrations. */
export async function openDatabase(target: DatabaseTarget, options: OpenOptions = {}): Promise<Db> {
  if (target.dialect === 'pg')
    return openPg(target.url, options.pgPoolMax ?? 10, options.connectTimeoutSec ?? 5, options.stallTimeoutMs ?? 15_000, options.onQuery)
  const onFile = target.path !== ':memory:'
  const synchronous = options.sqliteSynchronous ?? 'FULL'
  const walSync = onFile && synchronous === 'FULL' ? new WalSync(`${target.path}-wal`) : undefined
  const db = openSqlite(target.path, synchronous, onFile, walSync, options.onQuery)
  if (!onFile) return db
  const checkpointer = await startCheckpointer(target.path)
  return {
    ...db,
    close: async () => {
      await checkpointer.stop()
      await walSync?.close()
      await db.close()
    },
  }
}

const loggerOf = (onQuery: OpenOptions['onQuery']) => (onQuery ? { logger: { logQuery: onQuery } } : {})

function openSqlite(
  path: string,
  synchronous: 'FULL' | 'NORMAL',
  onFile: boolean,
  walSync: WalSync | undefined,
  onQuery?: OpenOptions['onQuery'],
): SqliteDb {
  if (onFile) mkdirSync(dirname(path), { recursive: true })
  const client = new SqliteDriver(path, { create: true, strict: true })
  // bun:sqlite waits 0 ms for a lock by default; another process (a migration, a backup) must not fail us.
  // First: switching to WAL takes a lock too, and nodes starting together race for it.
  client.exec('PRAGMA busy_timeout = 5000')
  client.exec('PRAGMA journal_mode = WAL')
  client.exec(`PRAGMA synchronous = ${synchronous}`)
  client.exec('PRAGMA foreign_keys = ON')
  // The checkpointer's thread does them (checkpointer.ts); this connection only past a backstop.
  if (onFile) client.exec(`PRAGMA wal_autocheckpoint = ${BACKSTOP_PAGES}`)
  // drizzle compiles every statement with prepare(); query() is bun:sqlite's cached variant, so a statement
  // run again (the writer's, each batch) is compiled once.
  client.prepare = client.query.bind(client) as typeof client.prepare
  const db = drizzleSqlite({ client, schema: sqliteSchema, ...loggerOf(onQuery) })
  migrateSqlite(client)

  const drive = <T>(routine: Routine<T>): T => {
    let next = routine.next()
    while (!next.done) {
      const step = next.value
      let result: unknown
      try {
        result = step.rows ? step.query.all() : step.query.run()
      } catch (error) {
        next = routine.throw(error)
        continue
      }
      next = routine.next(result)
    }
    return next.value
  }
  const statements = new Map<string, unknown>()
  const memo = <T>(key: string, build: (db: QueryDb, t: Tables, client: SqliteDriver) => T): T => {
    if (!statements.has(key)) statements.set(key, build(db, sqliteSchema, client))
    return statements.get(key) as T
  }
  const prepared: Scope['prepared'] = (key, build, params) => {
    const statement = memo(`prepared:${key}`, (d, t) => build(d, t).prepare())
    return { all: () => statement.all(params) }
  }
  const dataVersion = client.query<{ data_version: number }, []>('PRAGMA data_version')
  return {
    dialect: 'sqlite' as const,
    read: async (routine) => drive(routine({ db, t: sqliteSchema, memo, prepared })),
    tx: async (routine, options) => {
      const run = () =>
        db.transaction((tx) => drive(routine({ db: tx as unknown as QueryDb, t: sqliteSchema, memo, prepared })), {
          behavior: 'immediate',
        })
      if (!options?.syncOffLoop || !walSync) return run()
      // What FULL adds to NORMAL in WAL mode is the WAL's sync at commit; walSync does it off the loop.
      client.exec('PRAGMA synchronous = NORMAL')
      const result = (() => {
        try {
          return run()
        } finally {
          client.exec('PRAGMA synchronous = FULL')
        }
      })()
      await walSync.after()
      return result
    },
    ping: async () => {
      client.query('SELECT 1').get()
    },
    migrated: async () =>
      Number(client.query<{ m: number }, []>('SELECT max(created_at) AS m FROM "__drizzle_migrations"').get()?.m ?? 0) >=
      newestMigration('sqlite'),
    commitsElsewhere: () => dataVersion.get()!.data_version,
    close: async () => client.close(),
  }
}

/** A statement prepared by name (pg builders' prepare() takes the name); at run time it is awaited (see drive). */
type PgPrepared = { execute(placeholders: Record<string, unknown>): Promise<unknown> }

async function openPg(
  url: string,
  max: number,
  connectTimeoutSec: number,
  stallTimeoutMs: number,
  onQuery?: OpenOptions['onQuery'],
): Promise<PgDb> {
  const connection = pgConnection(url)
  // PG_STALL_TIMEOUT_MS=0: neither the watch nor the sessions' timeouts (a pooler that refuses settings at connect).
  const watch = stallTimeoutMs > 0 ? new StallWatch(stallTimeoutMs, (error, silent) => replace(error, silent)) : undefined
  const track = <T>(work: Promise<T>): Promise<T> => (watch ? watch.track(work) : work)
  const open = () =>
    postgres(connection.url, {
      ...(watch
        ? {
            // postgres.js's custom-socket option, missing from its types.
            ...({ socket: watch.socket } as object),
            connection: {
              // A statement longer than this is ended by Postgres (a lock held too long), before the watch
              // would take its connection for lost.
              statement_timeout: stallTimeoutMs,
              // A session whose client vanished inside a transaction (a partition, seen from Postgres's side)
              // would keep its row locks until Postgres's keepalives noticed, hours later.
              idle_in_transaction_session_timeout: stallTimeoutMs,
            },
          }
        : {}),
      max,
      onnotice: () => {},
      connect_timeout: connectTimeoutSec,
      // Between attempts to reconnect, at most 2 s (postgres.js's own grows to 20 s): while the database is
      // away every statement waits for the next attempt, and its error should come in seconds.
      backoff: (attempt: number) => Math.min(0.05 * 2 ** attempt, 2),
      ...(connection.path ? { path: connection.path } : {}),
    })
  let client = open()
  try {
    await migratePg(client)
  } catch (error) {
    watch?.stop()
    await client.end({ timeout: 1 })
    throw error
  }
  const drizzleOf = (sql: postgres.Sql) => drizzlePg({ client: sql, schema: pgSchema, ...loggerOf(onQuery) })
  let pg = drizzleOf(client)
  const named = new Map<string, PgPrepared>()
  /**
   * Connections that answer nothing (pg-stall.ts): the whole pool is replaced. Ending the old one fails
   * what waits on it, and the new one starts clean: postgres.js reuses a connection that closed with a
   * write pending, and that write then never goes out on its next socket.
   */
  const replace = (error: Error, silent: Socket[]) => {
    logFault(`Postgres answered nothing on ${silent.length} connection(s): opening new ones`, error)
    const old = client
    client = open()
    pg = drizzleOf(client)
    named.clear()
    void old.end({ timeout: 0 }).finally(() => silent.forEach((socket) => socket.destroy()))
  }

  const drive = async <T>(routine: Routine<T>): Promise<T> => {
    let next = routine.next()
    while (!next.done) {
      let result: unknown
      try {
        result = await (next.value.query as unknown as PromiseLike<unknown>)
      } catch (error) {
        next = routine.throw(error)
        continue
      }
      next = routine.next(result)
    }
    return next.value
  }
  // The pg builders and tables are typed as SQLite ones (see QueryDb); at run time they are awaited, not .all()'d.
  const t = pgSchema as unknown as Tables
  const dialect = new PgDialect()
  // Rows as the driver gives them: the statement's author names their type.
  const preparedSql = async <T>(query: SQL): Promise<T[]> => {
    const { sql, params } = dialect.sqlToQuery(query)
    return (await client.unsafe(sql, params as postgres.ParameterOrJSON<never>[], { prepare: true })) as T[]
  }
  const prepare = (query: Preparable<unknown>, name: string) => (query as unknown as { prepare(name: string): PgPrepared }).prepare(name)
  const run = (statement: PgPrepared, params: Record<string, unknown>) => statement.execute(params) as unknown as { all(): never[] }
  const prepared: Scope['prepared'] = (key, build, params) => {
    let statement = named.get(key)
    if (!statement) named.set(key, (statement = prepare(build(pg as unknown as QueryDb, t), key)))
    return run(statement, params)
  }
  const scope = (db: unknown, prepared: Scope['prepared']): Scope => ({ db: db as QueryDb, t, prepared })
  return {
    dialect: 'pg' as const,
    read: (routine) => track(drive(routine(scope(pg, prepared)))),
    tx: (routine) =>
      track(pg.transaction((tx) =>
        drive(
          routine(
            // Built on the transaction's connection each time: a statement kept from outside would run outside it.
            scope(tx, (key, build, params) => run(prepare(build(tx as unknown as QueryDb, t), key), params)),
          ),
        ),
      )),
    pg: {
      read: (work) => track(work({ db: pg, t: pgSchema, execute: preparedSql })),
      tx: (work) =>
        track(
          pg.transaction((tx) => work({ db: tx, t: pgSchema, execute: async <T>(query: SQL) => (await tx.execute(query)) as T[] })),
        ),
    },
    ping: async () => {
      await track(client`select 1`.execute())
    },
    migrated: async () => {
      const [row] = await track(client<{ m: string | null }[]>`select max(created_at) as m from drizzle.__drizzle_migrations`.execute())
      return Number(row?.m ?? 0) >= newestMigration('pg')
    },
    commitsElsewhere: () => undefined,
    close: async () => {
      watch?.stop()
      await client.end({ timeout: 5 })
    },
  }
}
