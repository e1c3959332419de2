import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { logFaultsTo } from '../src/log/fault'
import { Logger } from '../src/log/logger'
import { createTestApp, type TestApp } from './support/app'
import { dialects } from './support/databases'

/** Every error, whatever the route, is the contract's JSON shape: never HTML, never a stack. */
function expectContractError(res: { status: number; headers: Headers; body: any }, status: number, code: string) {
  expect(res.status).toBe(status)
  expect(res.headers.get('content-type')).toContain('application/json')
  expect(Object.keys(res.body)).toEqual(['error'])
  expect(res.body.error.code).toBe(code)
  expect(typeof res.body.error.message).toBe('string')
  for (const key of Object.keys(res.body.error)) expect(['code', 'message', 'details']).toContain(key)
}

describe.each(dialects)('error responses on %s', (dialect) => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp(dialect)
  })
  afterAll(() => t.close())

  test('400 bad_request: a body that is not JSON, or not an object', async () => {
    for (const raw of ['{"username":', 'hello', '[1,2]', '42', 'null', '"text"', ''])
      expectContractError(await t.call('POST', '/auth/register', { raw }), 400, 'bad_request')
    // Also without a JSON content type.
    expectContractError(await t.call('POST', '/auth/login', { raw: 'username=a', headers: { 'content-type': 'text/plain' } }), 400, 'bad_request')
  })

  test('413 payload_too_large: over 64 KiB, with or without a content-length', async () => {
    const big = JSON.stringify({ username: 'someone', password: 'x'.repeat(70_000) })
    expectContractError(await t.call('POST', '/auth/register', { raw: big }), 413, 'payload_too_large')
    const streamed = await t.app.handle(
      new Request('http://localhost/auth/register', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: new ReadableStream({
          start(c) {
            c.enqueue(new TextEncoder().encode(big))
            c.close()
          },
        }),
      }),
    )
    expect(streamed.status).toBe(413)
    expect(((await streamed.json()) as { error: { code: string } }).error.code).toBe('payload_too_large')
    // Just under the limit is parsed (and then validated).
    const fits = JSON.stringify({ username: 'someone', password: 'x'.repeat(60_000) })
    expectContractError(await t.call('POST', '/auth/register', { raw: fits }), 422, 'validation_failed')
  })

  test('404 not_found for unknown routes and methods', async () => {
    expectContractError(await t.call('GET', '/nope'), 404, 'not_found')
    expectContractError(await t.call('DELETE', '/auth/login'), 404, 'not_found')
  })

  test('401 on every authenticated route without a token', async () => {
    for (const [method, path] of [
      ['GET', '/me'],
      ['GET', '/users?q=a'],
      ['GET', '/dialogs'],
      ['POST', '/dialogs'],
      ['GET', '/dialogs/1'],
      ['GET', '/dialogs/1/messages'],
      ['POST', '/dialogs/1/messages'],
      ['POST', '/dialogs/1/read_up_to'],
    ] as const)
      expectContractError(await t.call(method, path, { body: method === 'POST' ? {} : undefined }), 401, 'unauthorized')
  })

  test('422 validation_failed names the field: body, query and path', async () => {
    const s = await t.register()
    const body = await t.call('POST', '/dialogs', { token: s.access_token, body: {} })
    expectContractError(body, 422, 'validation_failed')
    expect(body.body.error.details.field).toBe('peer_user_id')
    const query = await t.call('GET', '/dialogs?limit=0', { token: s.access_token })
    expectContractError(query, 422, 'validation_failed')
    expect(query.body.error.details.field).toBe('limit')
    const path = await t.call('GET', '/dialogs/0', { token: s.access_token })
    expectContractError(path, 422, 'validation_failed')
    expect(path.body.error.details.field).toBe('dialog_id')
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

describe.each(dialects)('internal errors on %s', (dialect) => {
  test('500 internal when the database fails, revealing nothing; /health answers 503; the log line holds no message text', async () => {
    const t = await createTestApp(dialect)
    const s = await t.register()
    const peer = await t.register()
    const dialog = await t.call('POST', '/dialogs', { token: s.access_token, body: { peer_user_id: peer.user.id } })
    await t.db.close()
    const lines: string[] = []
    const before = logFaultsTo(new Logger({ level: 'info', format: 'json' }, (line) => lines.push(line)))
    try {
      const res = await t.call('GET', '/dialogs', { token: s.access_token })
      expectContractError(res, 500, 'internal')
      expect(res.body.error.message).toBe('internal server error')
      expect(JSON.stringify(res.body)).not.toMatch(/sql|select|stack|\.ts|closed/i)
      const send = await t.call('POST', `/dialogs/${dialog.body.id}/messages`, {
        token: s.access_token,
        body: { client_msg_id: 'secret-1', msg_type: 'text', text: 'the words nobody may read' },
      })
      expectContractError(send, 500, 'internal')
      const ready = await t.call('GET', '/health')
      expect(ready.status).toBe(503)
      expect(ready.body.status).toBe('unavailable')
    } finally {
      logFaultsTo(before)
    }
    // The cause is logged for the operator, as structured lines, without the query's parameters.
    const faults = lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((f) => f.msg === 'internal error')
    expect(faults.length).toBeGreaterThan(0)
    for (const fault of faults) expect(fault).toMatchObject({ level: 'error', error: expect.any(String), reason: expect.any(String) })
    expect(lines.join('\n')).not.toContain('the words nobody may read')
  })
})
