/*
 * What the docs (docs/API.md, docs/PROTOCOL.md) and the contract promise, checked where a review found the
 * server did otherwise.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createTestApp, type Session, type TestApp } from './support/app'
import { dialects } from './support/databases'

describe.each(dialects)('search on %s', (dialect) => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp(dialect)
  })
  afterAll(() => t.close())

  // The contract: every word of `q` must occur, however many (it used to keep the first 16).
  test('a 17th word of q that occurs in no message still has to occur: nothing is found', async () => {
    const { a, dialogId } = await t.pair()
    const sent = await t.call('POST', `/dialogs/${dialogId}/messages`, {
      token: a.access_token,
      body: { client_msg_id: 'w', type: 'text', text: 'alpha beta gamma' },
    })
    expect(sent.status).toBe(201)
    const sixteen = ['alpha', 'beta', 'gamma', ...Array.from({ length: 13 }, () => 'alpha')]
    const q = [...sixteen, 'zebraword'].join(' ')
    expect(q.length).toBeLessThanOrEqual(200)
    const res = await t.call('GET', `/search/messages?q=${encodeURIComponent(q)}`, { token: a.access_token })
    expect(res.status).toBe(200)
    // "zebraword" occurs nowhere, so no message holds every word of q.
    expect(res.body.messages.map((m: { text: string }) => m.text)).toEqual([])
  })
})

describe.each(dialects)('what the docs promise, on %s', (dialect) => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp(dialect)
  })
  afterAll(() => t.close())

  // A used refresh token, wherever it is presented, ends its session: else a thief who rotated it keeps the
  // session while the owner's logout fails.
  test('logout presenting an already-used refresh token ends the whole session (theft detection)', async () => {
    const s = await t.register()
    const rotated = await t.call('POST', '/auth/refresh', { body: { refresh_token: s.refresh_token } })
    expect(rotated.status).toBe(200)
    const logout = await t.call('POST', '/auth/logout', { body: { refresh_token: s.refresh_token } })
    expect(logout.status).toBe(401)
    expect({
      me: (await t.call('GET', '/me', { token: rotated.body.access_token })).status,
      refresh: (await t.call('POST', '/auth/refresh', { body: { refresh_token: rotated.body.refresh_token } })).status,
    }).toEqual({ me: 401, refresh: 401 })
  })

  // Any ISO 8601 date-time with an offset, not only the extended format with a `.` before the fraction.
  test('read_at in valid ISO 8601 spellings with an offset is accepted: comma decimal sign, basic format', async () => {
    const { a, b, dialogId } = await t.pair()
    const ids: number[] = []
    for (const id of ['t1', 't2'])
      ids.push((await t.call('POST', `/dialogs/${dialogId}/messages`, { token: a.access_token, body: { client_msg_id: id, type: 'text', text: id } })).body.id)
    const read = (messageId: number, read_at: string) =>
      t.call('POST', `/dialogs/${dialogId}/read_up_to`, { token: b.access_token, body: { last_read_message_id: messageId, read_at } })
    const comma = await read(ids[0]!, '2026-11-23T10:15:30,123Z')
    const basic = await read(ids[1]!, '20261123T101531Z')
    expect([comma.status, comma.body.read_at ?? comma.body.error]).toEqual([200, '2026-11-23T10:15:30.123Z'])
    expect([basic.status, basic.body.read_at ?? basic.body.error]).toEqual([200, '2026-11-23T10:15:31.000Z'])
    // The watermark moved: later messages, other spellings of later instants.
    for (const [at, expected] of [
      ['2026-328T10:15Z', '2026-11-24T10:15:00.000Z'],
      ['2026-W48-3T10:15:30.5+01', '2026-11-25T09:15:30.500Z'],
      ['2026-11-26T10.25Z', '2026-11-26T10:15:00.000Z'],
    ] as const) {
      ids.push((await t.call('POST', `/dialogs/${dialogId}/messages`, { token: a.access_token, body: { client_msg_id: at, type: 'text', text: at } })).body.id)
      const res = await read(ids.at(-1)!, at)
      expect([res.status, res.body.read_at ?? res.body.error]).toEqual([200, expected])
    }
    // Still refused: no offset, a week 54, an ordinal day 366 of a common year.
    for (const at of ['2026-11-23T10:15:30', '2026-W54-1T00:00Z', '2026-366T00:00Z'])
      expect([(await read(ids[0]!, at)).status, at]).toEqual([422, at])
  })

  // "Not only whitespace" as Unicode counts it: NEL (U+0085) is white space, though JavaScript's \s lacks it.
  test('a text of only U+0085 (NEL, Unicode White_Space) is blank → 422 text', async () => {
    const { a, dialogId } = await t.pair()
    const res = await t.call('POST', `/dialogs/${dialogId}/messages`, {
      token: a.access_token,
      body: { client_msg_id: 'nel', type: 'text', text: '\u0085\u0085' },
    })
    expect([res.status, res.body?.error?.code, res.body?.error?.details?.field]).toEqual([422, 'validation_failed', 'text'])
    const kept = await t.call('POST', `/dialogs/${dialogId}/messages`, { token: a.access_token, body: { client_msg_id: 'kept', type: 'text', text: 'x' } })
    const edit = await t.call('PATCH', `/dialogs/${dialogId}/messages/${kept.body.id}`, { token: a.access_token, body: { text: ' \u0085 ' } })
    expect([edit.status, edit.body?.error?.details?.field]).toEqual([422, 'text'])
  })
})

describe.each(dialects)('rate limits and CORS, on %s', (dialect) => {
  let t: TestApp
  let a: Session
  let dialogId: number
  let messageId: number
  beforeAll(async () => {
    t = await createTestApp(dialect, { SEND_RATE_BURST: '1', SEND_RATE_PER_SEC: '0.01' })
    const pair = await t.pair()
    a = pair.a
    dialogId = pair.dialogId
    const sent = await t.call('POST', `/dialogs/${dialogId}/messages`, { token: a.access_token, body: { client_msg_id: 'one', type: 'text', text: 'one' } })
    expect(sent.status).toBe(201)
    messageId = sent.body.id
    // The bucket (burst 1) is now empty: the next REST send is refused.
    const second = await t.call('POST', `/dialogs/${dialogId}/messages`, { token: a.access_token, body: { client_msg_id: 'two', type: 'text', text: 'two' } })
    expect(second.status).toBe(429)
  })
  afterAll(() => t.close())

  // read_up_to is the REST form of message:read, which draws on the user's send bucket.
  test('REST read_up_to draws on the send bucket like message:read: refused with 429 once it is empty', async () => {
    const res = await t.call('POST', `/dialogs/${dialogId}/read_up_to`, { token: a.access_token, body: { last_read_message_id: messageId } })
    expect([res.status, res.body?.error?.code]).toEqual([429, 'rate_limited'])
  })

  // Headers the docs tell clients to read must be readable by a browser script on an allowed origin.
  test('a browser at an allowed origin may read Retry-After and X-Request-Id (Access-Control-Expose-Headers)', async () => {
    const res = await t.call('POST', `/dialogs/${dialogId}/messages`, {
      token: a.access_token,
      headers: { origin: 'https://app.example' },
      body: { client_msg_id: 'three', type: 'text', text: 'three' },
    })
    expect(res.status).toBe(429)
    expect(res.headers.get('retry-after')).not.toBeNull()
    expect(res.headers.get('access-control-allow-origin')).toBe('*')
    const exposed = (res.headers.get('access-control-expose-headers') ?? '').toLowerCase().split(/\s*,\s*/)
    expect({ retryAfter: exposed.includes('retry-after'), requestId: exposed.includes('x-request-id') }).toEqual({ retryAfter: true, requestId: true })
  })

  // With CORS_ORIGINS=* the answer does not vary with the origin: no `Vary: *`, which keeps browsers from
  // caching anything (a download's ETag included).
  test('CORS_ORIGINS=*: no Vary: * on answers, with or without an Origin', async () => {
    for (const headers of [{}, { origin: 'https://app.example' }] as Record<string, string>[]) {
      const res = await t.call('GET', '/health', { headers })
      expect([res.status, res.headers.get('access-control-allow-origin'), res.headers.get('vary')]).toEqual([200, '*', null])
    }
  })
})
