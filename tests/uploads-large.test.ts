import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { dialects, freshDatabase, type FreshDatabase } from './support/databases'
import { MULTIPART, streamedFile } from './support/multipart'
import { startS3, type LocalS3 } from './support/s3'
import { http as call, startServer, type ServerProcess } from './support/server-process'
import { startLive, type LiveServer } from './support/ws'
import { storedFiles } from './support/uploads-dir'

const MiB = 1024 * 1024

/** The server process's resident memory, from /proc (Linux). */
const rssOf = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024


const postStream = (base: string, token: string, body: ReadableStream<Uint8Array>) =>
  fetch(`${base}/uploads`, { method: 'POST', headers: { 'content-type': MULTIPART, authorization: `Bearer ${token}` }, body })

/** The real server in its own process, so its memory is its own to measure, and it can be killed. */
describe.each(dialects)('large uploads to a server process on %s', (dialect) => {
  let database: FreshDatabase
  let dataDir: string
  let server: ServerProcess
  let base: string
  let token: string
  beforeAll(async () => {
    database = await freshDatabase(dialect)
    dataDir = mkdtempSync(join(tmpdir(), 'chat-big-'))
    server = await startServer(database.target, { DATA_DIR: dataDir, UPLOAD_MAX_BYTES: String(200 * MiB) })
    base = `http://${server.base}`
    const registered = await call(server.base, 'POST', '/auth/register', { username: `big_${process.pid}`, password: 'correct horse battery' })
    token = registered.body.access_token
  })
  afterAll(async () => {
    server.proc.kill('SIGKILL')
    await server.exited
    await database.drop()
    rmSync(dataDir, { recursive: true, force: true })
  })

  test('a 100 MiB upload and its download stream through: the server\'s RSS stays under idle + 100 MiB', async () => {
    // Warm up (first requests compile code paths), then take the idle size.
    const warm = streamedFile(MiB)
    expect((await postStream(base, token, warm.stream)).status).toBe(201)
    Bun.gc(true)
    await Bun.sleep(200)
    const idle = rssOf(server.proc.pid)
    let peak = idle
    const sampler = setInterval(() => (peak = Math.max(peak, rssOf(server.proc.pid))), 25)
    try {
      const big = streamedFile(100 * MiB)
      const res = await postStream(base, token, big.stream)
      const body = (await res.json()) as { id: number; size: number; sha256: string }
      expect(res.status).toBe(201)
      expect(body.size).toBe(100 * MiB)
      expect(body.sha256).toBe(big.result.hash)

      const download = await fetch(`${base}/uploads/${body.id}`, { headers: { authorization: `Bearer ${token}` } })
      expect(download.headers.get('content-length')).toBe(String(100 * MiB))
      const hasher = new Bun.CryptoHasher('sha256')
      for await (const chunk of download.body!) hasher.update(chunk)
      expect(hasher.digest('hex')).toBe(big.result.hash)
    } finally {
      clearInterval(sampler)
    }
    console.log(`server RSS: idle ${(idle / MiB).toFixed(1)} MiB, peak ${(peak / MiB).toFixed(1)} MiB during a 100 MiB upload and download`)
    expect(peak - idle).toBeLessThan(100 * MiB)
  }, 120_000)

  test('kill -9 in the middle of an upload leaves no file under a real name', async () => {
    const before = storedFiles(dataDir)
    const upload = streamedFile(20 * MiB, 'cut.bin', { pause: 8 * MiB })
    const sending = postStream(base, token, upload.stream).catch((error: unknown) => error)
    // Wait until the server is writing the file (its temporary copy has grown), then kill it.
    const tmp = join(dataDir, 'uploads', 'tmp')
    const deadline = Date.now() + 20_000
    const writing = () =>
      existsSync(tmp) && readdirSync(tmp).some((name) => (statSync(join(tmp, name), { throwIfNoEntry: false })?.size ?? 0) > 4 * MiB)
    while (!writing() && Date.now() < deadline) await Bun.sleep(20)
    expect(writing()).toBe(true)
    server.proc.kill('SIGKILL')
    await server.exited
    upload.result.resume()
    await sending
    expect(storedFiles(dataDir)).toEqual(before)
  }, 60_000)
})

/** S3 with files big enough for multipart uploads (parts of 5 MiB): completed, read back by range, aborted when refused. */
describe.each(dialects)('large uploads to S3 on %s', (dialect) => {
  let s3: LocalS3
  let live: LiveServer
  let database: FreshDatabase
  let http: string
  beforeAll(async () => {
    s3 = await startS3()
    database = await freshDatabase(dialect)
    live = await startLive(dialect, { UPLOAD_MAX_BYTES: String(16 * MiB), ...s3.env }, database)
    http = live.base.replace('ws://', 'http://')
  })
  afterAll(async () => {
    await live.close()
    await database.drop()
    await s3.close()
  }, 20_000)

  test('12 MiB goes up in parts and comes back whole and by range; 20 MiB is refused (413) and leaves no object', async () => {
    const s = await live.t.register()
    const file = streamedFile(12 * MiB)
    const res = await postStream(http, s.access_token, file.stream)
    expect(res.status).toBe(201)
    const up = (await res.json()) as { id: number; sha256: string }
    expect(up.sha256).toBe(file.result.hash)
    expect(await s3.keys()).toHaveLength(1)

    const get = (headers: Record<string, string> = {}) =>
      fetch(`${http}/uploads/${up.id}`, { headers: { authorization: `Bearer ${s.access_token}`, ...headers } })
    expect(new Bun.CryptoHasher('sha256').update(await (await get()).arrayBuffer()).digest('hex')).toBe(file.result.hash)
    const whole = new Uint8Array(await (await get()).arrayBuffer())
    const part = await get({ range: `bytes=${6 * MiB - 10}-${6 * MiB + 9}` })
    expect(part.status).toBe(206)
    expect(new Uint8Array(await part.arrayBuffer())).toEqual(whole.subarray(6 * MiB - 10, 6 * MiB + 10))

    const tooBig = await postStream(http, s.access_token, streamedFile(20 * MiB).stream)
    expect(tooBig.status).toBe(413)
    expect(await s3.keys()).toHaveLength(1)
  }, 120_000)
})
