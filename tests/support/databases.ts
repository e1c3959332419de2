import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import type { DatabaseTarget } from '../../src/config'

export type Dialect = 'sqlite' | 'pg'

/** The server every Postgres test creates its own database in. */
export const PG_ADMIN_URL = process.env.TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const inCI = process.env.CI === 'true' || process.env.CI === '1'

async function probePostgres(): Promise<boolean> {
  const sql = postgres(PG_ADMIN_URL, { max: 1, connect_timeout: 3, onnotice: () => {} })
  try {
    await sql`select 1`
    return true
  } catch (error) {
    if (inCI) throw new Error(`CI=true but Postgres at ${PG_ADMIN_URL} is unreachable: ${error}`)
    console.warn(
      `\n!!!!!!!!\n!!! Postgres at ${PG_ADMIN_URL} is unreachable: SKIPPING every Postgres test.\n!!! (${error})\n!!!!!!!!\n`,
    )
    return false
  } finally {
    await sql.end({ timeout: 1 })
  }
}

export const pgAvailable = await probePostgres()

/** The dialects this run tests: both, or SQLite alone (loudly) when Postgres is absent outside CI. */
export const dialects: Dialect[] = pgAvailable ? ['sqlite', 'pg'] : ['sqlite']

export interface FreshDatabase {
  target: DatabaseTarget
  /** Removes the database (file or Postgres database). */
  drop(): Promise<void>
}

/** A new, empty database of that dialect, for one test file. */
export async function freshDatabase(dialect: Dialect): Promise<FreshDatabase> {
  if (dialect === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'chat-test-'))
    return {
      target: { dialect: 'sqlite', path: join(dir, 'chat.db') },
      drop: async () => rmSync(dir, { recursive: true, force: true }),
    }
  }
  const name = `chat_test_${process.pid}_${Math.random().toString(36).slice(2, 10)}`
  const admin = postgres(PG_ADMIN_URL, { max: 1, onnotice: () => {} })
  await admin.unsafe(`create database ${name}`)
  await admin.end()
  const url = new URL(PG_ADMIN_URL)
  url.pathname = `/${name}`
  return {
    target: { dialect: 'pg', url: url.toString() },
    drop: async () => {
      const sql = postgres(PG_ADMIN_URL, { max: 1, onnotice: () => {} })
      await sql.unsafe(`drop database if exists ${name} with (force)`)
      await sql.end()
    },
  }
}
