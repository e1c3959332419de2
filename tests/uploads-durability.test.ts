import { afterAll, afterEach, beforeAll, describe, expect, spyOn, test } from 'bun:test'
import * as fs from 'node:fs'
import * as fsp from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import type { Session } from './support/app'
import { dialects } from './support/databases'
import { MULTIPART, multipartBody, sha256 } from './support/multipart'
import { startLive, type LiveServer } from './support/ws'

/**
 * The order in which an upload to the disk makes itself durable: the file's data, its rename into place,
 * the directory holding the new name, and only then the row that points at it. No power can be cut here,
 * so the system calls are watched instead (spies that call through: the files are real), and the start of
 * the row's transaction on the real database.
 */
describe.each(dialects)('durability of uploads on disk, on %s', (dialect) => {
  let live: LiveServer
  let http: string
  let dataDir: string
  beforeAll(async () => {
    dataDir = fs.realpathSync(fs.mkdtempSync(join(tmpdir(), 'chat-uploads-sync-')))
    live = await startLive(dialect, { DATA_DIR: dataDir })
    http = live.base.replace('ws://', 'http://')
  })
  afterAll(async () => {
    await live.close()
    fs.rmSync(dataDir, { recursive: true, force: true })
  })

  let restore: (() => void)[] = []
  afterEach(() => {
    for (const undo of restore.splice(0)) undo()
  })

  /** What the server does to the disk and the database, in order, while `work` runs. */
  async function watch(work: () => Promise<void>): Promise<string[]> {
    const events: string[] = []
    // The fd's path as the kernel knows it (Linux), relative to DATA_DIR; a temporary file's name is random.
    const pathOf = (fd: number) => {
      const path = relative(dataDir, fs.readlinkSync(`/proc/self/fd/${fd}`)) || '.'
      return path.replace(/^uploads\/tmp\/.*/, 'uploads/tmp/*')
    }
    const { fsync, fdatasync } = fs
    const { rename } = fsp
    const fsyncSpy = spyOn(fs, 'fsync').mockImplementation(((fd: number, done: (error: Error | null) => void) => {
      const what = `fsync ${pathOf(fd)}${fs.fstatSync(fd).isDirectory() ? '/' : ''}`
      fsync(fd, (error) => {
        events.push(what)
        done(error)
      })
    }) as typeof fs.fsync)
    const fdatasyncSpy = spyOn(fs, 'fdatasync').mockImplementation(((fd: number, done: (error: Error | null) => void) => {
      const what = `fdatasync ${pathOf(fd)}`
      fdatasync(fd, (error) => {
        events.push(what)
        done(error)
      })
    }) as typeof fs.fdatasync)
    const renameSpy = spyOn(fsp, 'rename').mockImplementation(async (from, to) => {
      await rename(from, to)
      events.push(`rename ${relative(dataDir, String(to))}`)
    })
    const db = live.t.db
    const tx = db.tx
    db.tx = ((...args: Parameters<typeof tx>) => {
      events.push('transaction')
      return tx.apply(db, args)
    }) as typeof tx
    restore.push(
      () => fsyncSpy.mockRestore(),
      () => fdatasyncSpy.mockRestore(),
      () => renameSpy.mockRestore(),
      () => (db.tx = tx),
    )
    await work()
    for (const undo of restore.splice(0)) undo()
    // The server's own start may have swept in a transaction before: the upload's events begin with its file.
    return events.slice(events.findIndex((e) => e.startsWith('fdatasync')))
  }

  const upload = async (s: Session, bytes: string) => {
    const response = await fetch(`${http}/uploads`, {
      method: 'POST',
      headers: { 'content-type': MULTIPART, authorization: `Bearer ${s.access_token}` },
      body: multipartBody([{ name: 'file', filename: 'f.bin', data: bytes }]),
    })
    expect(response.status).toBe(201)
    return (await response.json()) as { sha256: string }
  }

  test('file data synced, renamed into place, its directory synced, then the row: a power loss cannot leave the row without its file', async () => {
    const bytes = `durable ${Math.random()}`
    const key = sha256(bytes)
    const shard = `uploads/${key.slice(0, 2)}`
    // Registered before watching, so that the transactions seen are the upload's.
    const s = await live.t.register()
    const first = await watch(async () => {
      expect((await upload(s, bytes)).sha256).toBe(key)
    })
    // The first upload into a new `ab/` directory (and the first of this process) also syncs the entries of
    // the directories made for it.
    expect(first).toEqual([
      'fdatasync uploads/tmp/*',
      'fsync ./',
      'fsync uploads/',
      `rename ${shard}/${key}`,
      `fsync ${shard}/`,
      'transaction',
    ])
    expect(fs.readFileSync(join(dataDir, shard, key), 'utf8')).toBe(bytes)

    // Afterwards: one directory sync per upload, nothing more (the same bytes again, into the same `ab/`).
    const again = await watch(async () => {
      await upload(s, bytes)
    })
    expect(again).toEqual(['fdatasync uploads/tmp/*', `rename ${shard}/${key}`, `fsync ${shard}/`, 'transaction'])
  })

  test('a file system that cannot sync a directory (EINVAL, as some FUSE and network ones): uploads still work; another failure to sync fails the upload', async () => {
    const s = await live.t.register()
    const failing = (code: string) =>
      spyOn(fs, 'fsync').mockImplementation(((fd: number, done: (error: Error | null) => void) => {
        if (fs.fstatSync(fd).isDirectory()) done(Object.assign(new Error(`${code}: cannot sync`), { code }))
        else done(null)
      }) as typeof fs.fsync)
    const einval = failing('EINVAL')
    restore.push(() => einval.mockRestore())
    const bytes = `no dir sync ${Math.random()}`
    expect((await upload(s, bytes)).sha256).toBe(sha256(bytes))
    einval.mockRestore()
    const eio = failing('EIO')
    restore.push(() => eio.mockRestore())
    const response = await fetch(`${http}/uploads`, {
      method: 'POST',
      headers: { 'content-type': MULTIPART, authorization: `Bearer ${s.access_token}` },
      body: multipartBody([{ name: 'file', filename: 'f.bin', data: `io error ${Math.random()}` }]),
    })
    expect(response.status).toBe(500)
  })
})
