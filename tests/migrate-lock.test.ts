import { afterAll, describe, expect, test } from 'bun:test'
import { Database } from 'bun:sqlite'
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

// A node's migration holds SQLite's write lock for as long as it takes (0009 indexes every message again:
// seconds on a large database); a node starting meanwhile waits for it, as on Postgres, instead of failing
// after the 5 s a busy statement otherwise waits.
describe('a node starting while another migrates (sqlite)', () => {
  test('it waits past 5 s for the write lock, then opens the migrated database', async () => {
    const fresh = await freshDatabase('sqlite')
    dropped.push(fresh)
    const target = fresh.target as { dialect: 'sqlite'; path: string }
    const holder = new Database(target.path)
    holder.exec('PRAGMA journal_mode = WAL')
    holder.exec('BEGIN IMMEDIATE')
    const script = `
      import { openDatabase } from ${JSON.stringify(`${import.meta.dir}/../src/storage/database`)}
      try {
        const db = await openDatabase(${JSON.stringify(target)})
        console.log('migrated:' + (await db.migrated()))
        await db.close()
      } catch (error) {
        console.log('failed:' + (error && error.message))
        process.exit(1)
      }`
    const node = Bun.spawn([process.execPath, '-e', script], { stdout: 'pipe', stderr: 'pipe' })
    await Bun.sleep(6_000)
    holder.exec('COMMIT')
    holder.close()
    expect(`${await node.exited} ${(await new Response(node.stdout).text()).trim()}`).toBe('0 migrated:true')
  }, 30_000)
})
