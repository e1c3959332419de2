import { afterEach, expect, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BACKSTOP_PAGES } from '../src/storage/checkpointer'
import { openDatabase } from '../src/storage/database'
import { eventually } from './support/cli'

// SQLite only: Postgres checkpoints on its own server.
let dir: string
afterEach(() => rmSync(dir, { recursive: true, force: true }))

test('what commits leave in the WAL reaches the database file from the checkpointer thread, not from a commit', async () => {
  dir = mkdtempSync(join(tmpdir(), 'chat-ckpt-'))
  const path = join(dir, 'chat.db')
  const db = await openDatabase({ dialect: 'sqlite', path })
  try {
    // Another connection writes, with checkpoints of its own off: only the checkpointer can move the pages.
    const writer = new Database(path)
    writer.exec('PRAGMA wal_autocheckpoint = 0')
    writer.exec('CREATE TABLE filler (blob BLOB)')
    const before = statSync(path).size
    const insert = writer.query('INSERT INTO filler VALUES (randomblob(3000))')
    // About 2 000 pages, past SQLite's default threshold and far below the main connection's backstop.
    for (let i = 0; i < 2000; i++) insert.run()
    expect(2000).toBeLessThan(BACKSTOP_PAGES)
    expect(statSync(`${path}-wal`).size).toBeGreaterThan(6_000_000)
    await eventually(() => statSync(path).size > before + 5_000_000, 'the pages in the database file', 3000)
    writer.close()
  } finally {
    await db.close()
  }
})
