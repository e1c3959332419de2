import { afterEach, beforeEach, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openDatabase, type Db, type Routine } from '../src/storage/database'

// SQLite only: on Postgres a commit is durable when the server answers it.
let dir: string
let db: Db
// The real fdatasync, watched: each call is counted, and waits while `gate` is set (a slow disk).
let syncs = 0
let gate: Promise<void> | undefined
let proto: { datasync(): Promise<void> }
let realDatasync: () => Promise<void>

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'chat-walsync-'))
  const probe = await open(join(dir, 'probe'), 'w')
  proto = Object.getPrototypeOf(probe)
  await probe.close()
  realDatasync = proto.datasync
  syncs = 0
  gate = undefined
  proto.datasync = async function (this: unknown) {
    syncs++
    await gate
    return realDatasync.call(this)
  }
  db = await openDatabase({ dialect: 'sqlite', path: join(dir, 'chat.db') })
})

afterEach(async () => {
  gate = undefined
  await db.close()
  proto.datasync = realDatasync
  rmSync(dir, { recursive: true, force: true })
})

let n = 0
const insert = function* ({ memo }: Parameters<Parameters<Db['tx']>[0]>[0]): Routine<void> {
  const client = memo!('client', (_db, _t, c) => c)
  client.exec('CREATE TABLE IF NOT EXISTS probe (v INTEGER)')
  client.query('INSERT INTO probe VALUES (?)').run(++n)
}
const settledWithin = async (p: Promise<unknown>, ms: number) => Promise.race([p.then(() => true), Bun.sleep(ms).then(() => false)])

test('with SQLITE_SYNCHRONOUS=full the connection commits with NORMAL, and a transaction settles only once the WAL file is synced', async () => {
  const level = await db.read(function* ({ memo }) {
    return memo!('client', (_db, _t, c) => c).query<{ synchronous: number }, []>('PRAGMA synchronous').get()!.synchronous
  })
  expect(level).toBe(1)
  let release!: () => void
  gate = new Promise((resolve) => (release = resolve))
  const committed = db.tx(insert)
  expect(await settledWithin(committed, 100)).toBe(false)
  expect(syncs).toBe(1)
  // Deferred: settles once committed; durable() is what waits for the disk.
  const deferred = db.tx(insert, { deferSync: true })
  expect(await settledWithin(deferred, 50)).toBe(true)
  const durable = db.durable()
  expect(await settledWithin(durable, 50)).toBe(false)
  release()
  await Promise.all([committed, durable])
  expect(syncs).toBe(2)
})

test('commits made while a sync runs share the next one', async () => {
  let release!: () => void
  gate = new Promise((resolve) => (release = resolve))
  const first = db.tx(insert)
  await Bun.sleep(20)
  const more = Array.from({ length: 20 }, () => db.tx(insert))
  await Bun.sleep(20)
  expect(syncs).toBe(1)
  release()
  await Promise.all([first, ...more])
  expect(syncs).toBe(2)
})

test('with SQLITE_SYNCHRONOUS=normal nothing waits for a sync', async () => {
  await db.close()
  db = await openDatabase({ dialect: 'sqlite', path: join(dir, 'normal.db') }, { sqliteSynchronous: 'NORMAL' })
  gate = new Promise(() => {})
  expect(await settledWithin(db.tx(insert), 200)).toBe(true)
  expect(await settledWithin(db.durable(), 50)).toBe(true)
  expect(syncs).toBe(0)
})
