import { afterAll, describe, expect, test } from 'bun:test'
import { openDatabase } from '../src/storage/database'
import { freshDatabase, pgAvailable, type FreshDatabase } from './support/databases'

const dropped: FreshDatabase[] = []
afterAll(() => Promise.all(dropped.map((d) => d.drop())))

// The processes of tests/cli.test.ts start staggered by Bun's start-up; here the migrations race for real
// (without the advisory lock this fails: two transactions create the same tables). On SQLite opening is
// synchronous within a process: tests/cli.test.ts races four processes there.
describe.skipIf(!pgAvailable)('migrations serialised across connections (pg)', () => {
  test('eight databases opened at the same moment on an empty database all migrate and answer', async () => {
    const fresh = await freshDatabase('pg')
    dropped.push(fresh)
    const dbs = await Promise.all(Array.from({ length: 8 }, () => openDatabase(fresh.target, { pgPoolMax: 2 })))
    try {
      for (const db of dbs) expect(await db.migrated()).toBe(true)
    } finally {
      await Promise.all(dbs.map((db) => db.close()))
    }
  })
})
