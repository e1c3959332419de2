import { describe, expect, test } from 'bun:test'
import { getTableConfig as pgConfig, type PgTable } from 'drizzle-orm/pg-core'
import { getTableConfig as sqliteConfig, type SQLiteTable } from 'drizzle-orm/sqlite-core'
import * as pg from '../src/storage/schema.pg'
import * as sqlite from '../src/storage/schema.sqlite'

/** A dialect-free description of a table: what must match between the two schemas. */
function shape(config: ReturnType<typeof pgConfig> | ReturnType<typeof sqliteConfig>) {
  return {
    name: config.name,
    columns: config.columns
      .map((c) => `${c.name}${c.notNull ? ' not null' : ''}${c.primary ? ' pk' : ''}${c.hasDefault ? ' default' : ''}`)
      .sort(),
    primaryKeys: config.primaryKeys.map((k) => k.columns.map((c) => c.name).join(',')).sort(),
    uniques: config.indexes
      .filter((i) => i.config.unique)
      .map((i) => `${i.config.name}(${i.config.columns.map((c) => ('name' in c ? c.name : '?')).join(',')})`)
      .sort(),
    indexes: config.indexes.map((i) => i.config.name).sort(),
    foreignKeys: config.foreignKeys
      .map((fk) => {
        const ref = fk.reference()
        return `${ref.columns.map((c) => c.name).join(',')}->${ref.foreignColumns.map((c) => c.name).join(',')} ${fk.onDelete}`
      })
      .sort(),
    checks: config.checks.map((c) => c.name).sort(),
  }
}

/**
 * The one difference: on Postgres a message has no foreign key to its dialog or its sender (their per-row
 * checks cost Postgres about a third of its CPU per message); the writer inserts only from one of the dialog's
 * two users, under the dialog's row lock, and a statement trigger deletes a dialog's messages
 * (drizzle/pg/0008), and with them a deleted user's. tests/writer.test.ts checks both on both dialects.
 */
const PG_LACKS: Partial<Record<keyof typeof sqlite, string[]>> = { messages: ['dialog_id->id cascade', 'sender_id->id cascade'] }

describe('schema parity between SQLite and Postgres', () => {
  test('both schemas export the same tables', () => {
    expect(Object.keys(pg).sort()).toEqual(Object.keys(sqlite).sort())
  })

  for (const name of Object.keys(sqlite) as (keyof typeof sqlite)[]) {
    test(`${name}: same columns, keys, uniques, indexes, foreign keys and checks`, () => {
      const a = shape(sqliteConfig(sqlite[name] as SQLiteTable))
      const b = shape(pgConfig(pg[name] as PgTable))
      const pgLacks = PG_LACKS[name] ?? []
      expect(a.foreignKeys).toEqual(expect.arrayContaining(pgLacks))
      expect(b).toEqual({ ...a, foreignKeys: a.foreignKeys.filter((fk) => !pgLacks.includes(fk)) })
      expect(a.columns.length).toBeGreaterThan(0)
    })
  }
})
