import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openDatabase, type Db, type Routine } from '../src/storage/database'
import { MULTIPART, multipartBody } from './support/multipart'
import { startLive, type LiveServer } from './support/ws'

// SQLite only: on Postgres a commit is durable when the server answers it.
// The real FileHandle datasync (WalSync's, and nobody else's in src/), watched: each call is counted, and
// waits while `gate` is set (a slow disk).
let syncs = 0
let gate: Promise<void> | undefined
let release: () => void = () => {}
let proto: { datasync(): Promise<void> }
let realDatasync: () => Promise<void>
let dir: string

const holdSyncs = () => {
  gate = new Promise((resolve) => (release = resolve))
}

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
})

afterEach(() => {
  release()
  gate = undefined
  proto.datasync = realDatasync
  rmSync(dir, { recursive: true, force: true })
})

type Scope = Parameters<Parameters<Db['tx']>[0]>[0]
/** The connection itself, for statements outside the schema. */
const clientOf = ({ memo }: Scope) => memo!('client', (_db, _t, c) => c)

let n = 0
const insert = function* (s: Scope): Routine<void> {
  const client = clientOf(s)
  client.exec('CREATE TABLE IF NOT EXISTS probe (v INTEGER)')
  client.query('INSERT INTO probe VALUES (?)').run(++n)
}
const synchronous = (db: Db) =>
  db.read(function* (s) {
    return clientOf(s).query<{ synchronous: number }, []>('PRAGMA synchronous').get()!.synchronous
  })
const settledWithin = async (p: Promise<unknown>, ms: number) => Promise.race([p.then(() => true), Bun.sleep(ms).then(() => false)])

describe('a transaction with its WAL sync off the event loop (SQLite, synchronous=FULL)', () => {
  let db: Db
  beforeEach(async () => {
    db = await openDatabase({ dialect: 'sqlite', path: join(dir, 'chat.db') })
  })
  afterEach(async () => {
    release()
    await db.close()
  })

  test('settles only once the WAL file is synced, while timers run; the connection is back to FULL at once', async () => {
    holdSyncs()
    const committed = db.tx(insert, { syncOffLoop: true })
    // The commit itself ran synchronously; its sync is held on the thread pool, and the loop is free.
    expect(await synchronous(db)).toBe(2)
    let ticks = 0
    const timer = setInterval(() => ticks++, 5)
    expect(await settledWithin(committed, 100)).toBe(false)
    clearInterval(timer)
    expect(ticks).toBeGreaterThan(5)
    expect(syncs).toBe(1)
    release()
    await committed
    // Committed for every reader, and the row is there.
    const count = await db.read(function* (s) {
      return clientOf(s).query<{ n: number }, []>('SELECT count(*) AS n FROM probe').get()!.n
    })
    expect(count).toBe(1)
  })

  test('an ordinary transaction syncs inside COMMIT, as FULL does, and never waits on the thread pool', async () => {
    holdSyncs()
    expect(await settledWithin(db.tx(insert), 100)).toBe(true)
    expect(syncs).toBe(0)
  })

  test('a transaction that throws rolls back and leaves the connection at FULL', async () => {
    await db.tx(insert)
    const failing = db.tx(
      function* (s) {
        yield* insert(s)
        throw new Error('no')
      },
      { syncOffLoop: true },
    )
    await expect(failing).rejects.toThrow('no')
    expect(await synchronous(db)).toBe(2)
    expect(syncs).toBe(0)
  })

  test('commits made while a sync runs share the next one', async () => {
    holdSyncs()
    const first = db.tx(insert, { syncOffLoop: true })
    await Bun.sleep(20)
    const more = Array.from({ length: 20 }, () => db.tx(insert, { syncOffLoop: true }))
    await Bun.sleep(20)
    expect(syncs).toBe(1)
    release()
    await Promise.all([first, ...more])
    expect(syncs).toBe(2)
  })
})

test('with SQLITE_SYNCHRONOUS=normal nothing waits for a sync', async () => {
  const db = await openDatabase({ dialect: 'sqlite', path: join(dir, 'normal.db') }, { sqliteSynchronous: 'NORMAL' })
  try {
    gate = new Promise(() => {})
    expect(await settledWithin(db.tx(insert, { syncOffLoop: true }), 200)).toBe(true)
    expect(syncs).toBe(0)
    expect(await synchronous(db)).toBe(1)
  } finally {
    await db.close()
  }
})

describe('an upload on SQLite', () => {
  let live: LiveServer
  afterEach(async () => {
    release()
    await live.close()
  })

  test('is answered 201 only once its row is on disk, and the server answers other requests meanwhile', async () => {
    live = await startLive('sqlite', { DATA_DIR: dir })
    const http = live.base.replace('ws://', 'http://')
    const s = await live.t.register()
    holdSyncs()
    const answered = fetch(`${http}/uploads`, {
      method: 'POST',
      headers: { 'content-type': MULTIPART, authorization: `Bearer ${s.access_token}` },
      body: multipartBody([{ name: 'file', filename: 'a.bin', data: new Uint8Array(1000).fill(7) }]),
    })
    await Bun.sleep(100)
    expect(syncs).toBeGreaterThanOrEqual(1)
    expect(await settledWithin(answered, 100)).toBe(false)
    expect((await fetch(`${http}/health`)).status).toBe(200)
    release()
    const response = await answered
    expect(response.status).toBe(201)
    expect(((await response.json()) as { size: number }).size).toBe(1000)
  })
})
