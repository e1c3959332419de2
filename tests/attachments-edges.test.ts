/**
 * Attachments at the edges: a retried file send after its message was deleted, download headers as the
 * RFCs spell them (Content-Disposition's filename*, ranges of an empty file, If-Range).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Session } from './support/app'
import { dialects } from './support/databases'
import { MULTIPART, multipartBody } from './support/multipart'
import { Client, startLive, type LiveServer } from './support/ws'

describe.each(dialects)('attachments at the edges on %s', (dialect) => {
  let live: LiveServer
  let http: string
  let dataDir: string
  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'chat-attachments-'))
    live = await startLive(dialect, { DATA_DIR: dataDir })
    http = live.base.replace('ws://', 'http://')
  })
  afterAll(async () => {
    await live.close()
    rmSync(dataDir, { recursive: true, force: true })
  })

  const call = <T = any>(method: string, path: string, s: Session, body?: unknown) => live.t.call<T>(method, path, { token: s.access_token, body })
  const upload = async (s: Session, data: Uint8Array | string, filename = 'f.bin') => {
    const r = await fetch(`${http}/uploads`, {
      method: 'POST',
      headers: { 'content-type': MULTIPART, authorization: `Bearer ${s.access_token}` },
      body: multipartBody([{ name: 'file', filename, type: 'application/octet-stream', data }]),
    })
    expect(r.status).toBe(201)
    return (await r.json()) as { id: number; name: string; sha256: string }
  }

  test('a retried file send (same client_msg_id, same upload) after its message was deleted answers 200 with the original, over REST and WebSocket', async () => {
    const { a, dialogId } = await live.t.pair()
    const u = await upload(a, 'some bytes of a file')
    const body = { client_msg_id: 'file-1', type: 'file', attachment_id: u.id, text: 'caption' }
    const first = await call('POST', `/dialogs/${dialogId}/messages`, a, body)
    expect(first.status).toBe(201)
    expect((await call('DELETE', `/dialogs/${dialogId}/messages/${first.body.id}`, a)).status).toBe(204)
    // A text message's retry after a delete answers the original (deleted: true); a file message's must too.
    const retry = await call('POST', `/dialogs/${dialogId}/messages`, a, body)
    expect({ status: retry.status, id: retry.body?.id, deleted: retry.body?.deleted }).toEqual({ status: 200, id: first.body.id, deleted: true })
    const ws = await Client.login(live.base, a)
    try {
      ws.send({ type: 'message:send', dialog_id: dialogId, client_msg_id: 'file-1', msg_type: 'file', attachment_id: u.id, text: 'caption' })
      const answer = await ws.next()
      expect({ type: answer.type, id: answer.message?.id }).toEqual({ type: 'message:ack', id: first.body.id })
    } finally {
      await ws.close()
    }
  })

  test('a caption is edited within what a send accepts: "" removes it (REST and WebSocket); a text message still needs text', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const u = await upload(a, 'quarterly numbers')
    const sent = await call('POST', `/dialogs/${dialogId}/messages`, a, { client_msg_id: 'cap-1', type: 'file', attachment_id: u.id, text: 'draft, do not share' })
    expect(sent.status).toBe(201)
    const removed = await call('PATCH', `/dialogs/${dialogId}/messages/${sent.body.id}`, a, { text: '' })
    expect({ status: removed.status, text: removed.body?.text, edited: typeof removed.body?.edited_at }).toEqual({ status: 200, text: '', edited: 'string' })
    const page = await call('GET', `/dialogs/${dialogId}/messages`, b)
    expect(page.body.messages[0]).toMatchObject({ id: sent.body.id, text: '', deleted: false, attachment: { id: u.id } })
    expect((await call('GET', `/search/messages?q=draft`, b)).body.messages).toEqual([])
    const ws = await Client.login(live.base, a)
    try {
      ws.send({ type: 'message:edit', message_id: sent.body.id, text: ' ' })
      expect((await ws.next('message:edited')).message).toMatchObject({ id: sent.body.id, text: ' ' })
      const text = await call('POST', `/dialogs/${dialogId}/messages`, a, { client_msg_id: 'cap-2', type: 'text', text: 'words' })
      expect((await call('PATCH', `/dialogs/${dialogId}/messages/${text.body.id}`, a, { text: '' })).body.error).toMatchObject({ code: 'validation_failed', details: { field: 'text' } })
      ws.send({ type: 'message:edit', message_id: text.body.id, text: '' })
      expect(await ws.next('error')).toMatchObject({ code: 'validation_failed', frame_type: 'message:edit' })
    } finally {
      await ws.close()
    }
  })

  test('Content-Disposition of a download carries filename* as a valid RFC 8187 ext-value (no raw \' ( ) *)', async () => {
    const { a, b, dialogId } = await live.t.pair()
    const u = await upload(a, 'report bytes', "it's (final) *v2*.txt")
    expect(u.name).toBe("it's (final) *v2*.txt")
    expect((await call('POST', `/dialogs/${dialogId}/messages`, a, { client_msg_id: 'cd-1', type: 'file', attachment_id: u.id })).status).toBe(201)
    const res = await fetch(`${http}/uploads/${u.id}`, { headers: { authorization: `Bearer ${b.access_token}` } })
    expect(res.status).toBe(200)
    const cd = res.headers.get('content-disposition') ?? ''
    const ext = /filename\*=UTF-8''([^;]*)/.exec(cd)?.[1]
    expect(ext).toBeDefined()
    // RFC 8187 value-chars: attr-char / pct-encoded; attr-char excludes ' ( ) * (and the rest of tspecials).
    expect(ext!).toMatch(/^(?:[A-Za-z0-9!#$&+\-.^_`|~]|%[0-9A-F]{2})*$/)
    expect(decodeURIComponent(ext!)).toBe("it's (final) *v2*.txt")
  })

  test('Range on an empty upload is past the end: 416 with Content-Range bytes */0', async () => {
    const a = await live.t.register()
    const u = await upload(a, '', 'empty.bin')
    const res = await fetch(`${http}/uploads/${u.id}`, { headers: { authorization: `Bearer ${a.access_token}`, range: 'bytes=0-0' } })
    expect({ status: res.status, range: res.headers.get('content-range') }).toEqual({ status: 416, range: 'bytes */0' })
  })
  test('If-Range with a validator that does not match makes the Range ignored: 200 with the whole file (RFC 9110 13.1.5)', async () => {
    const a = await live.t.register()
    const bytes = '0123456789abcdefghij'
    const u = await upload(a, bytes, 'r.bin')
    const res = await fetch(`${http}/uploads/${u.id}`, {
      headers: { authorization: `Bearer ${a.access_token}`, range: 'bytes=0-4', 'if-range': '"not-the-etag"' },
    })
    expect({ status: res.status, body: await res.text() }).toEqual({ status: 200, body: bytes })
    // The matching validator still gets the range.
    const ranged = await fetch(`${http}/uploads/${u.id}`, { headers: { authorization: `Bearer ${a.access_token}`, range: 'bytes=0-4', 'if-range': `"${u.sha256}"` } })
    expect(ranged.status).toBe(206)
  })
})
