import { afterAll, beforeAll, describe, expect, spyOn, test } from 'bun:test'
import { Database as SqliteDriver } from 'bun:sqlite'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { eq } from 'drizzle-orm'
import postgres from 'postgres'
import type { DatabaseTarget } from '../src/config'
import { logFaultsTo } from '../src/log/fault'
import { Logger } from '../src/log/logger'
import { exec } from '../src/storage/database'
import { expectContractError, type Session } from './support/app'
import { dialects } from './support/databases'
import { BOUNDARY, MULTIPART, multipartBody, sha256, type Part } from './support/multipart'
import { startS3, type LocalS3 } from './support/s3'
import { Client, startLive, type LiveServer } from './support/ws'
import { storedFiles } from './support/uploads-dir'

const MiB = 1024 * 1024
const LIMIT = 1 * MiB

// The smallest headers that make each type, followed by some bytes.
const tail = new Uint8Array(200).map((_, i) => i)
const withHead = (head: number[] | string) =>
  new Uint8Array([...(typeof head === 'string' ? Buffer.from(head, 'latin1') : head), ...tail])
const SAMPLES: Record<string, Uint8Array> = {
  'image/png': withHead([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
  'image/jpeg': withHead([0xff, 0xd8, 0xff, 0xe0]),
  'image/gif': withHead('GIF89a'),
  'image/webp': withHead('RIFF\x24\x00\x00\x00WEBPVP8 '),
  'application/pdf': withHead('%PDF-1.7\n'),
  'application/octet-stream': withHead('just some bytes'),
}

/**
 * A trigger that makes the database itself refuse every upload row named `name` (its insert fails for real,
 * as on a database error); answers how to take it away.
 */
async function refuseUploadsNamed(target: DatabaseTarget, name: string): Promise<() => Promise<void>> {
  if (target.dialect === 'sqlite') {
    const client = new SqliteDriver(target.path, { strict: true })
    client.exec('PRAGMA busy_timeout = 5000')
    client.exec(
      `CREATE TRIGGER refuse_upload BEFORE INSERT ON uploads WHEN NEW.name = '${name}' BEGIN SELECT RAISE(ABORT, 'upload refused by trigger'); END`,
    )
    return async () => {
      client.exec('DROP TRIGGER refuse_upload')
      client.close()
    }
  }
  const sql = postgres(target.url, { max: 1, onnotice: () => {} })
  await sql.unsafe(`
    create function refuse_upload() returns trigger language plpgsql as $$
    begin
      if new.name = '${name}' then raise exception 'upload refused by trigger'; end if;
      return new;
    end $$;
    create trigger refuse_upload before insert on uploads for each row execute function refuse_upload();
  `)
  return async () => {
    await sql.unsafe('drop trigger refuse_upload on uploads; drop function refuse_upload()')
    await sql.end()
  }
}

for (const backend of ['disk', 's3'] as const)
  describe.each(dialects)(`attachments (${backend}) on %s`, (dialect) => {
    let live: LiveServer
    let http: string
    let dataDir: string
    let s3: LocalS3 | undefined
    beforeAll(async () => {
      dataDir = mkdtempSync(join(tmpdir(), 'chat-uploads-'))
      s3 = backend === 's3' ? await startS3() : undefined
      live = await startLive(dialect, { DATA_DIR: dataDir, UPLOAD_MAX_BYTES: String(LIMIT), ...s3?.env })
      http = live.base.replace('ws://', 'http://')
    })
    afterAll(async () => {
      await live.close()
      await s3?.close()
      rmSync(dataDir, { recursive: true, force: true })
    })

    /** What the backend keeps: files on disk, or objects in the bucket. */
    const kept = async () => (s3 ? await s3.keys() : storedFiles(dataDir))

    const upload = async (
      s: Session | undefined,
      parts: Part[] | Uint8Array | ReadableStream<Uint8Array>,
      headers: Record<string, string> = {},
      path = '/uploads',
    ) => {
      const response = await fetch(`${http}${path}`, {
        method: 'POST',
        headers: { 'content-type': MULTIPART, ...(s ? { authorization: `Bearer ${s.access_token}` } : {}), ...headers },
        body: Array.isArray(parts) ? multipartBody(parts) : parts,
      })
      return { status: response.status, headers: response.headers, body: (await response.json().catch(() => undefined)) as any }
    }
    const file = (data: Uint8Array | string, filename = 'f.bin', type = 'application/octet-stream'): Part[] => [
      { name: 'file', filename, type, data },
    ]
    const download = (id: number, s?: Session, headers: Record<string, string> = {}, query = '') =>
      fetch(`${http}/uploads/${id}${query}`, { headers: { ...(s ? { authorization: `Bearer ${s.access_token}` } : {}), ...headers } })
    const sendRest = (s: Session, dialogId: number, body: Record<string, unknown>) =>
      live.t.call('POST', `/dialogs/${dialogId}/messages`, { token: s.access_token, body })
    /** As if uploaded `hours` ago. */
    const backdate = (id: number, hours: number) =>
      live.t.db.tx(function* ({ db, t }) {
        yield* exec(db.update(t.uploads).set({ createdAt: new Date(Date.now() - hours * 3600 * 1000) }).where(eq(t.uploads.id, id)))
      })

    test('POST /uploads → 201 {id, name, content_type, size, sha256, created_at}; content type sniffed from the bytes, for each known type', async () => {
      const s = await live.t.register()
      for (const [type, bytes] of Object.entries(SAMPLES)) {
        // The client claims text/plain every time: never believed.
        const res = await upload(s, file(bytes, `x-${type.replace('/', '-')}`, 'text/plain'))
        expect(res.status).toBe(201)
        expect(res.body).toEqual({
          id: expect.any(Number),
          name: `x-${type.replace('/', '-')}`,
          content_type: type,
          size: bytes.length,
          sha256: sha256(bytes),
          created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
        })
        const got = await download(res.body.id, s)
        expect(got.status).toBe(200)
        expect(got.headers.get('content-type')).toBe(type)
        expect(new Uint8Array(await got.arrayBuffer())).toEqual(new Uint8Array(bytes))
      }
    })

    test('POST /uploads/ (a trailing slash, routed here too) is streamed as an upload, not read as JSON under its 64 KiB limit', async () => {
      const s = await live.t.register()
      const bytes = new Uint8Array(100 * 1024).fill(7)
      const res = await upload(s, file(bytes), {}, '/uploads/')
      expect(res.status).toBe(201)
      expect(res.body.sha256).toBe(sha256(bytes))
    })

    test('a lying client: HTML named .png and typed image/png is application/octet-stream, downloaded as an attachment, refused as an image', async () => {
      const { a, dialogId } = await live.t.pair()
      const html = '<html><script>alert(1)</script></html>'
      const res = await upload(a, file(html, 'cat.png', 'image/png'))
      expect(res.body).toMatchObject({ name: 'cat.png', content_type: 'application/octet-stream', size: html.length })
      const got = await download(res.body.id, a)
      expect(got.headers.get('content-type')).toBe('application/octet-stream')
      expect(got.headers.get('x-content-type-options')).toBe('nosniff')
      expect(got.headers.get('content-disposition')).toStartWith('attachment;')
      expectContractError(await sendRest(a, dialogId, { client_msg_id: 'img', type: 'image', attachment_id: res.body.id }), 422, 'validation_failed', 'attachment_id')
      // As a file it is fine.
      expect((await sendRest(a, dialogId, { client_msg_id: 'f', type: 'file', attachment_id: res.body.id })).status).toBe(201)
    })

    test('file names are sanitised: no path, no control or direction characters; none → "file"', async () => {
      const s = await live.t.register()
      const named = async (filename: string) => (await upload(s, file('x', filename))).body.name
      expect(await named('../../etc/pass\u0001wd')).toBe('passwd')
      expect(await named('C:\\Users\\me\\report.pdf')).toBe('report.pdf')
      expect(await named('evil\u202Egnp.exe')).toBe('evilgnp.exe')
      expect(await named('..')).toBe('file')
      expect(await named('фото 1.jpg')).toBe('фото 1.jpg')
      const raw = await upload(s, new TextEncoder().encode(`--${MULTIPART.split('=')[1]}\r\nContent-Disposition: form-data; name="file"\r\n\r\nx\r\n--${MULTIPART.split('=')[1]}--\r\n`))
      expect(raw.body.name).toBe('file')
    })

    test('over UPLOAD_MAX_BYTES → 413 and nothing kept; exactly at it → 201; other routes keep their own body limit', async () => {
      const s = await live.t.register()
      const before = await kept()
      expectContractError(await upload(s, file(new Uint8Array(LIMIT + 1))), 413, 'payload_too_large')
      // Streamed with no length given: counted as it comes.
      const big = new Blob([multipartBody(file(new Uint8Array(LIMIT + 10)))])
      const chunked = await fetch(`${http}/uploads`, {
        method: 'POST',
        headers: { 'content-type': MULTIPART, authorization: `Bearer ${s.access_token}` },
        body: big.stream(),
      })
      expectContractError({ status: chunked.status, headers: chunked.headers, body: await chunked.json() }, 413, 'payload_too_large')
      expect(await kept()).toEqual(before)
      if (!s3) expect(readdirSync(join(dataDir, 'uploads', 'tmp'))).toEqual([])

      const exact = await upload(s, file(new Uint8Array(LIMIT).fill(7)))
      expect(exact.status).toBe(201)
      expect(exact.body.size).toBe(LIMIT)
      const json = await live.t.call('POST', '/dialogs', { token: s.access_token, raw: JSON.stringify({ peer_user_id: 1, pad: 'x'.repeat(70_000) }) })
      expectContractError(json, 413, 'payload_too_large')
    })

    test('a body with no length given is bounded as a declared one: 413 past UPLOAD_MAX_BYTES + 64 KiB, whatever part of it carries the bytes', async () => {
      const s = await live.t.register()
      const tiny = multipartBody(file('tiny'))
      // 3 MiB of preamble (the limit is 1 MiB), then a 4-byte file.
      const preamble = Buffer.concat([Buffer.from(`${'p'.repeat(3 * MiB)}\r\n`), tiny])
      // 3 MiB of empty form fields (no bytes towards the 64 KiB of other fields), then a 4-byte file.
      const empty = `--${BOUNDARY}\r\nContent-Disposition: form-data; name="x"\r\n\r\n\r\n`
      const manyParts = Buffer.concat([Buffer.from(empty.repeat(Math.ceil((3 * MiB) / empty.length))), tiny])
      // Sent chunked, 64 KiB at a time (a Blob's stream would be sent with its length).
      const chunked = (bytes: Uint8Array, at = 0) =>
        new ReadableStream<Uint8Array>({
          pull: (controller) => (at < bytes.length ? controller.enqueue(bytes.slice(at, (at += 64 * 1024))) : controller.close()),
        })
      for (const body of [preamble, manyParts]) {
        expectContractError(await upload(s, new Uint8Array(body)), 413, 'payload_too_large')
        expectContractError(await upload(s, chunked(body)), 413, 'payload_too_large')
      }
    })

    test('a client that drops its upload half-way is not a server error: no 500 counted for /uploads', async () => {
      const s = await live.t.register()
      const status500 = async () => {
        const text = (await live.t.call('GET', '/metrics')).body as string
        return Number(/^chat_http_requests_total\{route="\/uploads",status="500"\} (\d+)$/m.exec(text)?.[1] ?? 0)
      }
      const before = await status500()
      const socket = await Bun.connect({ hostname: '127.0.0.1', port: live.running.server.port!, socket: { data() {}, close() {}, error() {} } })
      const part = `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n\r\n${'x'.repeat(100_000)}`
      socket.write(
        `POST /uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${s.access_token}\r\nContent-Type: ${MULTIPART}\r\nContent-Length: 500000\r\n\r\n${part}`,
      )
      socket.flush()
      await Bun.sleep(300)
      socket.end()
      await Bun.sleep(1000)
      expect((await status500()) - before).toBe(0)
      if (!s3) expect(readdirSync(join(dataDir, 'uploads', 'tmp'))).toEqual([])
    })

    test('an upload whose row the database refuses: 500, and its bytes do not stay behind, unless an earlier upload of the same bytes keeps them', async () => {
      const s = await live.t.register()
      const before = await kept()
      const logged: string[] = []
      const faults = logFaultsTo(new Logger({ level: 'info', format: 'json' }, (line) => logged.push(line)))
      const allow = await refuseUploadsNamed(live.t.core.config.database, 'refused.bin')
      const bytes = `refused ${Math.random()}`
      const shared = `shared ${Math.random()}`
      let earlier
      try {
        expectContractError(await upload(s, file(bytes, 'refused.bin')), 500, 'internal')
        expect(logged.join('\n')).toContain('upload refused by trigger')
        // No file (or object) with nothing pointing at it.
        expect(await kept()).toEqual(before)
        if (!s3) expect(readdirSync(join(dataDir, 'uploads', 'tmp'))).toEqual([])

        // On disk equal bytes share one file: the refused upload's must not take the earlier one's away.
        earlier = (await upload(s, file(shared, 'kept.bin'))).body
        const withEarlier = await kept()
        expectContractError(await upload(s, file(shared, 'refused.bin')), 500, 'internal')
        expect(await kept()).toEqual(withEarlier)
      } finally {
        await allow()
        logFaultsTo(faults)
      }
      expect(await (await download(earlier.id, s)).text()).toBe(shared)
      // Allowed again, the refused bytes upload as any.
      const retried = await upload(s, file(bytes, 'refused.bin'))
      expect(retried.status).toBe(201)
      expect(await (await download(retried.body.id, s)).text()).toBe(bytes)
    })

    test('bad requests: no token 401, not multipart 400, no part named file 422', async () => {
      const s = await live.t.register()
      expect((await upload(undefined, file('x'))).status).toBe(401)
      expect((await upload(s, file('x'), { 'content-type': 'application/json' })).status).toBe(400)
      const noFile = await upload(s, [{ name: 'other', data: 'x' }])
      expect(noFile.status).toBe(422)
      expect(noFile.body.error).toMatchObject({ code: 'validation_failed', details: { field: 'file' } })
      const truncated = await upload(s, multipartBody(file('abc')).subarray(0, 60))
      expect(truncated.status).toBe(400)
    })

    test('image and file messages over REST and WebSocket carry `attachment`; members download, outsiders 404; attached once, by its uploader', async () => {
      const { a, b, dialogId } = await live.t.pair()
      const outsider = await live.t.register()
      const png = (await upload(a, file(SAMPLES['image/png']!, 'pic.png'))).body
      const pdf = (await upload(a, file(SAMPLES['application/pdf']!, 'doc.pdf'))).body
      const bFile = (await upload(b, file('b bytes', 'b.txt'))).body

      // Before it is sent, only the uploader may fetch it.
      expect((await download(png.id, b)).status).toBe(404)

      const sent = await sendRest(a, dialogId, { client_msg_id: 'p-1', type: 'image', attachment_id: png.id, text: 'look' })
      expect(sent.status).toBe(201)
      expect(sent.body).toMatchObject({ type: 'image', text: 'look', status: 'sent' })
      expect(sent.body.attachment).toEqual({ id: png.id, name: 'pic.png', content_type: 'image/png', size: png.size, url: `/uploads/${png.id}` })
      // A retry of the same send: the same message.
      const again = await sendRest(a, dialogId, { client_msg_id: 'p-1', type: 'image', attachment_id: png.id, text: 'look' })
      expect(again.status).toBe(200)
      expect(again.body.id).toBe(sent.body.id)

      // Attached once; someone else's upload is not yours to send; wrong shapes are 422.
      expectContractError(await sendRest(a, dialogId, { client_msg_id: 'p-2', type: 'image', attachment_id: png.id }), 422, 'validation_failed', 'attachment_id')
      expectContractError(await sendRest(a, dialogId, { client_msg_id: 'p-3', type: 'file', attachment_id: bFile.id }), 422, 'validation_failed', 'attachment_id')
      expectContractError(await sendRest(a, dialogId, { client_msg_id: 'p-4', type: 'file' }), 422, 'validation_failed', 'attachment_id')
      expectContractError(await sendRest(a, dialogId, { client_msg_id: 'p-5', type: 'text', text: 'x', attachment_id: pdf.id }), 422, 'validation_failed', 'attachment_id')
      expectContractError(await sendRest(a, dialogId, { client_msg_id: 'p-6', type: 'text' }), 422, 'validation_failed', 'text')
      expectContractError(
        await sendRest(a, dialogId, { client_msg_id: 'p-7', type: 'file', attachment_id: pdf.id, text: 'x'.repeat(4001) }),
        422,
        'validation_failed',
        'text',
      )

      // Over the WebSocket, with no caption.
      const [a1, b1] = await Promise.all([Client.login(live.base, a), Client.login(live.base, b)])
      a1.send({ type: 'message:send', dialog_id: dialogId, client_msg_id: 'w-1', msg_type: 'file', attachment_id: pdf.id })
      const ack = await a1.next('message:ack')
      expect(ack.message).toMatchObject({ type: 'file', text: '', attachment: { id: pdf.id, name: 'doc.pdf', content_type: 'application/pdf' } })
      expect((await b1.next('message:new')).message).toEqual(ack.message)
      a1.send({ type: 'message:send', dialog_id: dialogId, client_msg_id: 'w-2', msg_type: 'file', attachment_id: pdf.id })
      expect(await a1.next('error')).toMatchObject({ code: 'validation_failed', client_msg_id: 'w-2', details: { field: 'attachment_id' } })
      await Promise.all([a1.close(), b1.close()])

      // History and the dialog list show the attachment; text messages have attachment null.
      const history = await live.t.call('GET', `/dialogs/${dialogId}/messages`, { token: b.access_token })
      expect(history.body.messages.map((m: { attachment: { id: number } | null }) => m.attachment?.id ?? null)).toEqual([png.id, pdf.id])
      expect((await live.t.call('GET', `/dialogs/${dialogId}`, { token: b.access_token })).body.last_message.attachment.id).toBe(pdf.id)
      const text = await sendRest(b, dialogId, { client_msg_id: 't', type: 'text', text: 'nice' })
      expect(text.body.attachment).toBeNull()

      for (const id of [png.id, pdf.id]) {
        expect((await download(id, a)).status).toBe(200)
        expect((await download(id, b)).status).toBe(200)
        const denied = await download(id, outsider)
        expect(denied.status).toBe(404)
        expect(((await denied.json()) as { error: { code: string } }).error.code).toBe('not_found')
      }
      expect((await download(png.id)).status).toBe(401)
      expect((await download(2_000_000_000, a)).status).toBe(404)
    })

    test('GET /uploads/{id}: the contract\'s headers, ?access_token=, Range → 206, past the end → 416', async () => {
      const s = await live.t.register()
      const bytes = new Uint8Array(100_000).map((_, i) => (i * 7) & 0xff)
      const pdfBytes = new Uint8Array([...SAMPLES['application/pdf']!, ...bytes])
      const up = (await upload(s, file(pdfBytes, 'r.pdf'))).body
      const img = (await upload(s, file(SAMPLES['image/gif']!, 'a.gif'))).body

      const whole = await download(up.id, undefined, {}, `?access_token=${s.access_token}`)
      expect(whole.status).toBe(200)
      expect(Object.fromEntries(['content-type', 'x-content-type-options', 'etag', 'cache-control'].map((h) => [h, whole.headers.get(h)]))).toEqual({
        'content-type': 'application/pdf',
        'x-content-type-options': 'nosniff',
        etag: `"${up.sha256}"`,
        'cache-control': 'private',
      })
      expect(whole.headers.get('content-disposition')).toBe(`attachment; filename="r.pdf"; filename*=UTF-8''r.pdf`)
      expect(sha256(new Uint8Array(await whole.arrayBuffer()))).toBe(up.sha256)
      expect((await download(img.id, s)).headers.get('content-disposition')).toStartWith('inline;')

      const part = await download(up.id, s, { range: 'bytes=10-19' })
      expect(part.status).toBe(206)
      expect(part.headers.get('content-range')).toBe(`bytes 10-19/${pdfBytes.length}`)
      expect(new Uint8Array(await part.arrayBuffer())).toEqual(pdfBytes.subarray(10, 20))
      const suffix = await download(up.id, s, { range: 'bytes=-5' })
      expect(suffix.status).toBe(206)
      expect(new Uint8Array(await suffix.arrayBuffer())).toEqual(pdfBytes.subarray(-5))
      const open = await download(up.id, s, { range: `bytes=${pdfBytes.length - 3}-` })
      expect(new Uint8Array(await open.arrayBuffer())).toEqual(pdfBytes.subarray(-3))
      const beyond = await download(up.id, s, { range: `bytes=${pdfBytes.length}-` })
      expect(beyond.status).toBe(416)
      expect(beyond.headers.get('content-range')).toBe(`bytes */${pdfBytes.length}`)
      expect((await download(up.id, s, { 'if-none-match': `"${up.sha256}"` })).status).toBe(304)
      // Compared weakly, in a list, or `*` (a proxy that compresses hands browsers W/"…").
      for (const tag of [`W/"${up.sha256}"`, `"0000", "${up.sha256}"`, '*']) expect((await download(up.id, s, { 'if-none-match': tag })).status).toBe(304)
      expect((await download(up.id, s, { 'if-none-match': '"0000"' })).status).toBe(200)
      // One range only, alike on both backends: several, or another unit, are answered whole.
      for (const range of ['bytes=0-1,5-6', 'xbytes=0-1']) {
        const got = await download(up.id, s, { range })
        expect([got.status, got.headers.get('content-range')]).toEqual([200, null])
        expect(sha256(new Uint8Array(await got.arrayBuffer()))).toBe(up.sha256)
      }
    })

    test('an empty file downloads as 200 with no bytes (a bucket cannot serve a range of an empty object)', async () => {
      const { a, b, dialogId } = await live.t.pair()
      const empty = (await upload(a, file(new Uint8Array(0), 'empty.txt'))).body
      expect(empty.size).toBe(0)
      expect((await sendRest(a, dialogId, { client_msg_id: 'empty-1', type: 'file', attachment_id: empty.id })).status).toBe(201)
      const got = await fetch(`${http}/uploads/${empty.id}`, { headers: { authorization: `Bearer ${b.access_token}` }, signal: AbortSignal.timeout(5_000) })
      expect([got.status, got.headers.get('content-range'), (await got.arrayBuffer()).byteLength]).toEqual([200, null, 0])
    })

    // From S3 the bytes are streamed, and Bun 1.4.5 drops a handler's Content-Length from every streamed
    // body and sends it chunked (oven-sh/bun#10507); only files and bytes in memory get one. Marked failing
    // there, so that the Bun which sends it makes this test fail until the mark goes.
    test.failingIf(backend === 's3')('GET /uploads/{id}: Content-Length is the size, and for a 206 the range\'s length', async () => {
      const s = await live.t.register()
      const bytes = new Uint8Array(200_000).map((_, i) => (i * 13) & 0xff)
      const up = (await upload(s, file(bytes))).body
      const whole = await download(up.id, s)
      expect(whole.status).toBe(200)
      expect(whole.headers.get('content-length')).toBe(String(bytes.length))
      expect(new Uint8Array(await whole.arrayBuffer())).toEqual(bytes)
      const part = await download(up.id, s, { range: 'bytes=1000-50999' })
      expect(part.status).toBe(206)
      expect(part.headers.get('content-length')).toBe('50000')
      expect(new Uint8Array(await part.arrayBuffer())).toEqual(bytes.subarray(1000, 51000))
    })

    test('the sweep removes uploads never attached after 24 h, with their bytes; attached ones stay', async () => {
      // Earlier tests' unsent uploads go first, so that what is left to count is this test's.
      await live.t.core.uploads.sweep(new Date(Date.now() + 25 * 3600 * 1000))
      const { a, dialogId } = await live.t.pair()
      const bytesA = new TextEncoder().encode(`unsent ${Math.random()}`)
      const bytesB = new TextEncoder().encode(`sent ${Math.random()}`)
      const unsent = (await upload(a, file(bytesA))).body
      const sent = (await upload(a, file(bytesB))).body
      expect((await sendRest(a, dialogId, { client_msg_id: 's', type: 'file', attachment_id: sent.id })).status).toBe(201)
      const keptBefore = (await kept()).length

      await live.t.core.uploads.sweep(new Date(Date.now() + 23 * 3600 * 1000))
      expect((await download(unsent.id, a)).status).toBe(200)
      await live.t.core.uploads.sweep(new Date(Date.now() + 25 * 3600 * 1000))
      expect((await download(unsent.id, a)).status).toBe(404)
      expect((await download(sent.id, a)).status).toBe(200)
      expect((await kept()).length).toBe(keptBefore - 1)
      if (!s3) expect(storedFiles(dataDir)).not.toContain(join(unsent.sha256.slice(0, 2), unsent.sha256))
    })

    test('the sweep and a send claiming an upload older than 24 h: the claim first keeps it for the message, the sweep first makes it no such upload', async () => {
      const { a, b, dialogId } = await live.t.pair()
      const uploads = live.t.core.uploads
      // Uploaded a day and more ago, claimed now: the sweep runs on the real clock, as a claim takes it.
      const bytes = new TextEncoder().encode(`racing ${Math.random()}`)
      const raced = (await upload(a, file(bytes))).body
      await backdate(raced.id, 25)

      // The sweep runs between the claim's commit and the message's, as it may on this node or another.
      const claim = uploads.claim
      uploads.claim = async (...args: Parameters<typeof claim>) => {
        const claimed = await claim.apply(uploads, args)
        await uploads.sweep()
        return claimed
      }
      let sent
      try {
        sent = await sendRest(a, dialogId, { client_msg_id: 'race-1', type: 'file', attachment_id: raced.id })
      } finally {
        uploads.claim = claim
      }
      expect(sent.status).toBe(201)
      await uploads.sweep()
      const got = await download(raced.id, b)
      expect(got.status).toBe(200)
      expect(new Uint8Array(await got.arrayBuffer())).toEqual(bytes)

      // The sweep first: the send is refused as for an upload that never was, and nothing carries it.
      const swept = (await upload(a, file(`swept ${Math.random()}`))).body
      await backdate(swept.id, 25)
      await uploads.sweep()
      const refused = await sendRest(a, dialogId, { client_msg_id: 'race-2', type: 'file', attachment_id: swept.id })
      expectContractError(refused, 422, 'validation_failed', 'attachment_id')
      const unknown = await sendRest(a, dialogId, { client_msg_id: 'race-3', type: 'file', attachment_id: 2_000_000_000 })
      expect(refused.body.error.message).toBe(unknown.body.error.message)
      const history = await live.t.call('GET', `/dialogs/${dialogId}/messages`, { token: a.access_token })
      expect(history.body.messages.map((m: { client_msg_id: string }) => m.client_msg_id)).toEqual(['race-1'])
    })

    test('a send that fails gives its upload back: another send attaches it, where before it stayed claimed for good', async () => {
      const { a, b, dialogId } = await live.t.pair()
      const held = (await upload(a, file(`held ${Math.random()}`))).body
      const writer = live.t.core.writer
      const submit = writer.submit
      // The commit fails once (a disk error, a lost database), after the claim.
      writer.submit = () => Promise.reject(new Error('disk I/O error'))
      const logged: string[] = []
      const before = logFaultsTo(new Logger({ level: 'info', format: 'json' }, (line) => logged.push(line)))
      let failed
      try {
        failed = await sendRest(a, dialogId, { client_msg_id: 'fails-1', type: 'file', attachment_id: held.id })
      } finally {
        writer.submit = submit
        logFaultsTo(before)
      }
      expectContractError(failed, 500, 'internal')
      expect(logged.join('\n')).toContain('disk I/O error')
      // Not only a retry of that very send: any send of the uploader's may attach it now.
      const sent = await sendRest(a, dialogId, { client_msg_id: 'another-1', type: 'file', attachment_id: held.id })
      expect(sent.status).toBe(201)
      expect(sent.body.attachment).toMatchObject({ id: held.id })
      expect((await download(held.id, b)).status).toBe(200)
    })

    test('a send that died after claiming its upload (the process killed before the commit): the sweep frees the upload an hour after the claim, not before', async () => {
      const { a, dialogId } = await live.t.pair()
      const uploads = live.t.core.uploads
      const orphan = (await upload(a, file(`orphan ${Math.random()}`))).body
      // What a send leaves behind when its process dies between the claim's commit and the message's.
      await uploads.claim(a.user.id, orphan.id, 'file', { dialogId, clientMsgId: 'died-1' })
      const later = (minutes: number) => new Date(Date.now() + minutes * 60_000)
      await uploads.sweep(later(30))
      expect((await download(orphan.id, a)).status).toBe(200)
      await uploads.sweep(later(61))
      expect((await download(orphan.id, a)).status).toBe(404)
      const refused = await sendRest(a, dialogId, { client_msg_id: 'died-1', type: 'file', attachment_id: orphan.id })
      expectContractError(refused, 422, 'validation_failed', 'attachment_id')
      // A claim whose message committed is never swept, however old.
      const kept = (await upload(a, file(`kept ${Math.random()}`))).body
      expect((await sendRest(a, dialogId, { client_msg_id: 'kept-1', type: 'file', attachment_id: kept.id })).status).toBe(201)
      await uploads.sweep(later(48 * 60))
      expect((await download(kept.id, a)).status).toBe(200)
    })

    test('DELETE of an image/file message: its attachment becomes unreachable at once, its bytes go once nothing refers to them', async () => {
      const { a, b, dialogId } = await live.t.pair()
      const bytes = new TextEncoder().encode(`shared ${Math.random()}`)
      const one = (await upload(a, file(bytes, 'one'))).body
      const two = (await upload(a, file(bytes, 'two'))).body
      const m1 = await sendRest(a, dialogId, { client_msg_id: 'r1', type: 'file', attachment_id: one.id })
      const m2 = await sendRest(a, dialogId, { client_msg_id: 'r2', type: 'file', attachment_id: two.id })
      const keptBefore = (await kept()).length
      const remove = (id: number) => live.t.call('DELETE', `/dialogs/${dialogId}/messages/${id}`, { token: a.access_token })

      expect((await remove(m1.body.id)).status).toBe(204)
      expect((await remove(m1.body.id)).status).toBe(204)
      for (const s of [a, b]) expect((await download(one.id, s)).status).toBe(404)
      // The same bytes are still the other message's.
      expect(new Uint8Array(await (await download(two.id, b)).arrayBuffer())).toEqual(bytes)
      const history = await live.t.call('GET', `/dialogs/${dialogId}/messages`, { token: b.access_token })
      expect(history.body.messages.map((m: { attachment: unknown; deleted: boolean }) => [m.attachment === null, m.deleted])).toEqual([
        [true, true],
        [false, false],
      ])
      // On disk equal files share their bytes; in S3 each upload has its own object.
      expect((await kept()).length).toBe(s3 ? keptBefore - 1 : keptBefore)

      expect((await remove(m2.body.id)).status).toBe(204)
      expect((await download(two.id, a)).status).toBe(404)
      expect((await kept()).length).toBe(s3 ? keptBefore - 2 : keptBefore - 1)
      // A text message has no attachment: its delete releases nothing.
      const text = await sendRest(a, dialogId, { client_msg_id: 'r3', type: 'text', text: 'x' })
      expect((await remove(text.body.id)).status).toBe(204)
    })

    /** While `work` runs, the store refuses every delete (a bucket briefly unavailable, a disk error); answers what was logged. */
    const refusingDeletes = async (work: () => Promise<unknown>) => {
      const logged: string[] = []
      const faults = logFaultsTo(new Logger({ level: 'info', format: 'json' }, (line) => logged.push(line)))
      const refuse = spyOn(live.t.core.uploads.blobs, 'delete').mockRejectedValue(new Error('try again'))
      try {
        await work()
      } finally {
        refuse.mockRestore()
        logFaultsTo(faults)
      }
      return logged.join('\n')
    }

    test('DELETE of a file message while the store refuses deletes: 204 (the delete committed, the failure logged), and its bytes go at the next sweep', async () => {
      const { a, dialogId } = await live.t.pair()
      const u = (await upload(a, file(`a message to delete ${Math.random()}`))).body
      const sent = await sendRest(a, dialogId, { client_msg_id: 'd-1', type: 'file', attachment_id: u.id })
      expect(sent.status).toBe(201)
      const before = await kept()

      let status = 0
      const logged = await refusingDeletes(async () => {
        status = (await live.t.call('DELETE', `/dialogs/${dialogId}/messages/${sent.body.id}`, { token: a.access_token })).status
      })
      expect(status).toBe(204)
      expect(logged).toContain('try again')
      const history = await live.t.call('GET', `/dialogs/${dialogId}/messages`, { token: a.access_token })
      expect(history.body.messages[0]).toMatchObject({ id: sent.body.id, deleted: true, attachment: null })
      // Its row is gone, its bytes not yet: kept in the queue of deletes, not forgotten.
      expect(await kept()).toEqual(before)
      await live.t.core.uploads.sweep()
      expect((await kept()).length).toBe(before.length - 1)
    })

    test('a sweep whose deletes fail keeps going, and does not forget the bytes of the uploads it removed', async () => {
      const s = await live.t.register()
      const earlier = new Set(await kept())
      await upload(s, file(`never sent 1 ${Math.random()}`))
      await upload(s, file(`never sent 2 ${Math.random()}`))
      const mine = async () => (await kept()).filter((k) => !earlier.has(k))
      expect(await mine()).toHaveLength(2)
      const later = new Date(Date.now() + 48 * 3600 * 1000)
      let tried = 0
      await refusingDeletes(async () => {
        const refused = live.t.core.uploads.blobs.delete as unknown as { mock: { calls: unknown[] } }
        await live.t.core.uploads.sweep(later)
        tried = refused.mock.calls.length
      })
      // Both were tried (the first failure did not stop the loop), neither deleted.
      expect(tried).toBeGreaterThanOrEqual(2)
      expect(await mine()).toHaveLength(2)
      // Their rows were deleted by the first sweep: the next one finds their bytes in the queue.
      await live.t.core.uploads.sweep(later)
      expect(await mine()).toEqual([])
    })
  })
