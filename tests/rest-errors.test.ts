import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { logFaultsTo } from '../src/log/fault'
import { Logger } from '../src/log/logger'
import { createTestApp, expectContractError, type Response, type Session, type TestApp } from './support/app'
import { dialects } from './support/databases'

const LIMIT = 64 * 1024

/** Sends raw bytes as the body, with or without a content-length (a stream has none). */
async function rawCall(t: TestApp, path: string, bytes: Uint8Array, { stream = false, token }: { stream?: boolean; token?: string } = {}): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (token) headers.authorization = `Bearer ${token}`
  const body = stream
    ? new ReadableStream<Uint8Array>({
        start(c) {
          // In chunks, as a client streaming a chunked body would.
          for (let i = 0; i < bytes.length; i += 8192) c.enqueue(bytes.slice(i, i + 8192))
          c.close()
        },
      })
    : bytes
  const res = await t.app.handle(new Request(`http://localhost${path}`, { method: 'POST', headers, body }))
  const text = await res.text()
  let parsed: unknown = text
  try {
    parsed = JSON.parse(text)
  } catch {}
  return { status: res.status, headers: res.headers, body: parsed }
}

describe.each(dialects)('REST errors on %s', (dialect) => {
  let t: TestApp
  let s: Session
  let dialogId: number
  let messageId: number

  beforeAll(async () => {
    t = await createTestApp(dialect)
    const pair = await t.pair()
    s = pair.a
    dialogId = pair.dialogId
    const sent = await t.call('POST', `/dialogs/${dialogId}/messages`, { token: s.access_token, body: { client_msg_id: 'm', type: 'text', text: 'm' } })
    messageId = sent.body.id
  })
  afterAll(() => t.close())

  const postRoutes = () => [
    { path: '/auth/register', token: undefined },
    { path: '/auth/login', token: undefined },
    { path: '/auth/refresh', token: undefined },
    { path: '/auth/logout', token: undefined },
    { path: '/dialogs', token: s.access_token },
    { path: `/dialogs/${dialogId}/messages`, token: s.access_token },
    { path: `/dialogs/${dialogId}/read_up_to`, token: s.access_token },
  ]

  test('400 bad_request on every POST route: not JSON, JSON that is not an object, empty, not UTF-8', async () => {
    const bodies = ['{', 'not json', "{'single': 1}", '{"a":1}}', '[]', '[{"username":"x"}]', '42', '"text"', 'null', 'true', '']
    for (const { path, token } of postRoutes()) {
      for (const raw of bodies) expectContractError(await t.call('POST', path, { token, raw }), 400, 'bad_request')
      const notUtf8 = new Uint8Array([0x7b, 0x22, 0x61, 0xff, 0x22, 0x3a, 0x31, 0x7d]) // {"a\xff":1}
      expectContractError(await rawCall(t, path, notUtf8, { token }), 400, 'bad_request')
    }
    // Also without a JSON content type.
    expectContractError(await t.call('POST', '/auth/login', { raw: 'username=a', headers: { 'content-type': 'text/plain' } }), 400, 'bad_request')
  })

  test('401 unauthorized on every authenticated route: missing, malformed or bogus token', async () => {
    const routes: [string, string][] = [
      ['GET', '/me'],
      ['GET', '/users?q=abc'],
      ['GET', '/dialogs'],
      ['POST', '/dialogs'],
      ['GET', `/dialogs/${dialogId}`],
      ['GET', `/dialogs/${dialogId}/messages`],
      ['POST', `/dialogs/${dialogId}/messages`],
      ['POST', `/dialogs/${dialogId}/read_up_to`],
    ]
    const validBodies: Record<string, unknown> = {
      '/dialogs': { peer_user_id: 1 },
      [`/dialogs/${dialogId}/messages`]: { client_msg_id: 'nope', type: 'text', text: 'nope' },
      [`/dialogs/${dialogId}/read_up_to`]: { last_read_message_id: messageId },
    }
    for (const [method, path] of routes)
      for (const headers of <Record<string, string>[]>[{}, { authorization: 'Bearer' }, { authorization: 'Bearer x.y.z' }, { authorization: `Basic ${s.access_token}` }, { authorization: `Bearer ${s.refresh_token}` }])
        expectContractError(await t.call(method, path, { headers, body: method === 'POST' ? validBodies[path] : undefined }), 401, 'unauthorized')
    // An unauthenticated caller hears 401, not the validation details of a body it may not send,
    // nor whether a dialog exists: an unknown one, with an empty body, is a 401 as well.
    expectContractError(await t.call('POST', '/dialogs', { body: { peer_user_id: 'x' } }), 401, 'unauthorized')
    for (const [method, path] of routes)
      expectContractError(await t.call(method, path.replace(`/dialogs/${dialogId}`, '/dialogs/987654'), { body: method === 'POST' ? {} : undefined }), 401, 'unauthorized')
    // Nothing was sent by those attempts.
    const page = await t.call('GET', `/dialogs/${dialogId}/messages`, { token: s.access_token })
    expect(page.body.messages.map((m: { text: string }) => m.text)).toEqual(['m'])
  })

  test('422 validation_failed for a login no user can have (NUL in the name), as register answers — not a 500', async () => {
    expectContractError(await t.call('POST', '/auth/login', { body: { username: 'a\u0000b', password: 'whatever-1' } }), 422, 'validation_failed', 'username')
  })

  test('404 not_found: unknown routes and methods, unknown dialog', async () => {
    expectContractError(await t.call('GET', '/nope'), 404, 'not_found')
    expectContractError(await t.call('GET', '/'), 404, 'not_found')
    expectContractError(await t.call('PUT', '/dialogs', { token: s.access_token, body: {} }), 404, 'not_found')
    expectContractError(await t.call('DELETE', `/dialogs/${dialogId}`, { token: s.access_token }), 404, 'not_found')
    expectContractError(await t.call('DELETE', '/auth/login'), 404, 'not_found')
    expectContractError(await t.call('GET', '/dialogs/424242', { token: s.access_token }), 404, 'not_found')
    expectContractError(await t.call('GET', '/dialogs/424242/messages', { token: s.access_token }), 404, 'not_found')
  })

  test('413 payload_too_large over 64 KiB, with a content-length and streamed without one; 64 KiB itself is read', async () => {
    const over = new TextEncoder().encode(JSON.stringify({ username: 'someone', password: 'x'.repeat(LIMIT) }))
    for (const { path, token } of postRoutes()) {
      expectContractError(await rawCall(t, path, over, { token }), 413, 'payload_too_large')
      expectContractError(await rawCall(t, path, over, { token, stream: true }), 413, 'payload_too_large')
    }
    // A content-length that announces too much is refused before anything is read.
    expectContractError(await t.call('POST', '/auth/login', { raw: '{}', headers: { 'content-length': String(LIMIT + 1) } }), 413, 'payload_too_large')
    // Exactly at the limit: parsed, then judged on its content (a 422, not a 413).
    const filler = 'x'.repeat(LIMIT - JSON.stringify({ username: 'someone', password: '' }).length)
    const exact = new TextEncoder().encode(JSON.stringify({ username: 'someone', password: filler }))
    expect(exact.byteLength).toBe(LIMIT)
    expectContractError(await rawCall(t, '/auth/register', exact), 422, 'validation_failed', 'password')
    expectContractError(await rawCall(t, '/auth/register', exact, { stream: true }), 422, 'validation_failed', 'password')
  })

  test('422 validation_failed names the field: body, query and path', async () => {
    const cases: [string, string, unknown, string][] = [
      ['POST', '/auth/register', { username: 'ok_name', password: 'short' }, 'password'],
      ['POST', '/auth/refresh', {}, 'refresh_token'],
      ['POST', '/auth/logout', { refresh_token: 5 }, 'refresh_token'],
      ['POST', '/dialogs', { peer_user_id: 'two' }, 'peer_user_id'],
      ['POST', `/dialogs/${dialogId}/messages`, { client_msg_id: 'q', type: 'text', text: '   ' }, 'text'],
      ['POST', `/dialogs/${dialogId}/read_up_to`, { last_read_message_id: -1 }, 'last_read_message_id'],
      ['GET', '/users?q=a&limit=51', undefined, 'limit'],
      ['GET', '/dialogs?limit=0', undefined, 'limit'],
      ['GET', '/dialogs?before=soon', undefined, 'before'],
      ['GET', `/dialogs/${dialogId}/messages?limit=101`, undefined, 'limit'],
      ['GET', `/dialogs/${dialogId}/messages?before=2026-01-01T00:00:00`, undefined, 'before'],
      ['GET', `/dialogs/${dialogId}/messages?after_id=x`, undefined, 'after_id'],
      ['GET', '/dialogs/x', undefined, 'dialog_id'],
      ['GET', '/dialogs/0/messages', undefined, 'dialog_id'],
      ['POST', '/dialogs/-4/read_up_to', { last_read_message_id: 1 }, 'dialog_id'],
    ]
    for (const [method, path, body, field] of cases) {
      const token = path.startsWith('/auth') ? undefined : s.access_token
      const res = await t.call(method, path, { token, body })
      expectContractError(res, 422, 'validation_failed', field)
      expect(res.body.error.message).toContain(field)
    }
  })

  test('ids beyond what the database stores are refused alike on every database (422, never 500)', async () => {
    const big = 2 ** 31
    for (const [method, path, body, field] of [
      ['GET', `/dialogs/${big}`, undefined, 'dialog_id'],
      ['GET', `/dialogs/${big}/messages`, undefined, 'dialog_id'],
      ['GET', `/dialogs/${dialogId}/messages?before_id=${big}`, undefined, 'before_id'],
      ['GET', `/dialogs/${dialogId}/messages?after_id=${big}`, undefined, 'after_id'],
      ['POST', '/dialogs', { peer_user_id: big }, 'peer_user_id'],
      ['POST', `/dialogs/${dialogId}/read_up_to`, { last_read_message_id: big }, 'last_read_message_id'],
      ['POST', `/dialogs/${big}/messages`, { client_msg_id: 'b', type: 'text', text: 'b' }, 'dialog_id'],
    ] as const)
      expectContractError(await t.call(method, path, { token: s.access_token, body }), 422, 'validation_failed', field)
    // The largest storable id is an ordinary miss.
    expectContractError(await t.call('GET', `/dialogs/${2 ** 31 - 1}`, { token: s.access_token }), 404, 'not_found')
  })

  test('/health answers ok, /metrics speaks Prometheus text with the required series', async () => {
    expect((await t.call('GET', '/health')).body).toEqual({ status: 'ok' })
    // Requests are counted once their response has gone out.
    await Bun.sleep(10)
    const metrics = await t.call('GET', '/metrics')
    expect(metrics.headers.get('content-type')).toStartWith('text/plain')
    for (const series of ['chat_ws_connections', 'chat_messages_persisted_total', 'chat_http_requests_total{route="/health",status="200"}', 'chat_write_batch_size_bucket'])
      expect(metrics.body).toContain(series)
  })

  test('/docs serves the OpenAPI description generated from the routes', async () => {
    const spec = await t.call('GET', '/docs/json')
    expect(spec.status).toBe(200)
    for (const path of ['/auth/register', '/dialogs', '/dialogs/{dialog_id}/messages', '/dialogs/{dialog_id}/read_up_to'])
      expect(Object.keys(spec.body.paths)).toContain(path)
  })
})

describe.each(dialects)('REST 500 internal on %s', (dialect) => {
  const SECRET_LOOKING = /sql|select|insert|from "|sqlite|postgres|drizzle|relation|constraint|stack|\bat \/|\.ts\b|closed|Error:/i

  /** Runs `fn` with faults logged into a list (the server's fault lines) instead of stderr. */
  const quietly = async <T>(fn: () => Promise<T>): Promise<{ result: T; logged: string[] }> => {
    const logged: string[] = []
    const before = logFaultsTo(new Logger({ level: 'info', format: 'json' }, (line) => logged.push(line)))
    try {
      return { result: await fn(), logged }
    } finally {
      logFaultsTo(before)
    }
  }

  test('a failing store → 500 {"error": {"code": "internal"}} revealing nothing; the cause is logged', async () => {
    const t = await createTestApp(dialect)
    try {
      const s = await t.register()
      const { a, dialogId } = await t.pair()
      const read = t.db.read
      const tx = t.db.tx
      const leak = new Error('select * from "users" where password_hash = $1 — relation at /work/main/src/users/store.ts:12')
      t.db.read = async () => {
        throw leak
      }
      t.db.tx = async () => {
        throw leak
      }
      const { result, logged } = await quietly(() =>
        Promise.all([
          t.call('GET', '/me', { token: s.access_token }),
          t.call('GET', '/dialogs', { token: a.access_token }),
          t.call('POST', '/auth/login', { body: { username: s.user.username, password: 'correct horse battery' } }),
          t.call('POST', '/auth/register', { body: { username: 'brand_new', password: 'correct horse battery' } }),
          t.call('GET', `/dialogs/${dialogId}/messages`, { token: a.access_token }),
        ]),
      )
      t.db.read = read
      t.db.tx = tx
      for (const res of result) {
        expectContractError(res, 500, 'internal')
        expect(res.body.error.details).toBeUndefined()
        expect(JSON.stringify(res.body)).not.toMatch(SECRET_LOOKING)
        expect(JSON.stringify(res.body)).not.toContain('password_hash')
      }
      expect(logged.length).toBeGreaterThanOrEqual(result.length)
      // Once the store works again, so does the server.
      expect((await t.call('GET', '/me', { token: s.access_token })).status).toBe(200)
    } finally {
      await t.close()
    }
  })

  test('an answer that fails its own route\'s response schema is 500 internal (logged), not a 422 blaming the client', async () => {
    const t = await createTestApp(dialect)
    try {
      const s = await t.register()
      const users = t.core.users as unknown as { me: (id: number) => Promise<Record<string, unknown>> }
      const me = users.me
      // A server-side defect: a record that does not fit the response's schema.
      users.me = async (id) => ({ ...(await me.call(t.core.users, id)), created_at: undefined, id: 'x' })
      const { result, logged } = await quietly(() => t.call('GET', '/me', { token: s.access_token }))
      users.me = me
      expectContractError(result, 500, 'internal')
      expect(result.body.error.details).toBeUndefined()
      expect(logged.length).toBe(1)
    } finally {
      await t.close()
    }
  })

  test('the database closed under the app → 500 internal on a route, 503 on /health; the log holds the cause but no message text', async () => {
    const t = await createTestApp(dialect)
    const { a: s, dialogId } = await t.pair()
    await t.db.close()
    const { result, logged } = await quietly(async () => [
      await t.call('GET', '/me', { token: s.access_token }),
      await t.call('POST', '/auth/login', { body: { username: s.user.username, password: 'correct horse battery' } }),
      await t.call('GET', '/dialogs', { token: s.access_token }),
      await t.call('POST', `/dialogs/${dialogId}/messages`, {
        token: s.access_token,
        body: { client_msg_id: 'secret-1', type: 'text', text: 'the words nobody may read' },
      }),
      await t.call('GET', '/health'),
    ])
    const health = result.pop()!
    for (const res of result) {
      expectContractError(res, 500, 'internal')
      expect(res.body.error.message).toBe('internal server error')
      expect(JSON.stringify(res.body)).not.toMatch(SECRET_LOOKING)
    }
    expect(health.status).toBe(503)
    expect(health.body.status).toBe('unavailable')
    // The cause is logged for the operator, as structured lines, without the query's parameters.
    const faults = logged.map((line) => JSON.parse(line) as Record<string, unknown>).filter((f) => f.msg === 'internal error')
    expect(faults.length).toBeGreaterThan(0)
    for (const fault of faults) expect(fault).toMatchObject({ level: 'error', error: expect.any(String), reason: expect.any(String) })
    expect(logged.join('\n')).not.toContain('the words nobody may read')
    // close() also drops the database; closing the connection twice is harmless.
    await t.close().catch(() => {})
  })
})
