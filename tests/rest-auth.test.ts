import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createTestApp, expectContractError, uniqueName, type TestApp } from './support/app'
import { dialects } from './support/databases'

const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/
const PASSWORD = 'correct horse battery'

describe.each(dialects)('REST auth on %s', (dialect) => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp(dialect)
  })
  afterAll(() => t.close())

  test('POST /auth/register → 201 with exactly user, tokens, token_type and expires_in', async () => {
    const username = uniqueName('New.User-')
    const res = await t.call('POST', '/auth/register', { body: { username, password: PASSWORD } })
    expect(res.status).toBe(201)
    expect(Object.keys(res.body).sort()).toEqual(['access_token', 'expires_in', 'refresh_token', 'token_type', 'user'])
    expect(res.body.user).toEqual({ id: expect.any(Number), username, created_at: expect.stringMatching(ISO_MS) })
    expect(res.body.user.id).toBeGreaterThan(0)
    expect(res.body.token_type).toBe('Bearer')
    expect(res.body.expires_in).toBe(15 * 60)
    expect(res.body.access_token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/)
    expect(res.body.refresh_token).not.toBe(res.body.access_token)
    const me = await t.call('GET', '/me', { token: res.body.access_token })
    expect(me.status).toBe(200)
    expect(me.body).toEqual(res.body.user)
  })

  test('usernames keep their case but are unique case-insensitively → 409 username_taken', async () => {
    const username = uniqueName('MiXeD')
    await t.register(username)
    for (const variant of [username, username.toLowerCase(), username.toUpperCase()])
      expectContractError(await t.call('POST', '/auth/register', { body: { username: variant, password: PASSWORD } }), 409, 'username_taken')
    // The first registration is untouched: it still logs in with its own password.
    expect((await t.call('POST', '/auth/login', { body: { username, password: PASSWORD } })).status).toBe(200)
  })

  test('username 3–32 of [A-Za-z0-9_.-] and password 8–256: boundaries accepted, outside → 422 naming the field', async () => {
    const ok = [
      { username: `a${Math.random().toString(36).slice(2, 4)}`, password: '12345678' },
      { username: uniqueName('x').padEnd(32, 'z').slice(0, 32), password: 'p'.repeat(256) },
      { username: `_.-${Math.random().toString(36).slice(2, 8)}`, password: PASSWORD },
    ]
    for (const body of ok) expect((await t.call('POST', '/auth/register', { body })).status).toBe(201)
    const bad: [Record<string, unknown>, string][] = [
      [{ username: 'ab', password: PASSWORD }, 'username'],
      [{ username: 'a'.repeat(33), password: PASSWORD }, 'username'],
      [{ username: 'with space', password: PASSWORD }, 'username'],
      [{ username: 'ünïcode', password: PASSWORD }, 'username'],
      [{ username: 'semi;colon', password: PASSWORD }, 'username'],
      [{ username: 42, password: PASSWORD }, 'username'],
      [{ password: PASSWORD }, 'username'],
      [{ username: uniqueName(), password: '1234567' }, 'password'],
      [{ username: uniqueName(), password: 'p'.repeat(257) }, 'password'],
      [{ username: uniqueName() }, 'password'],
    ]
    for (const [body, field] of bad) expectContractError(await t.call('POST', '/auth/register', { body }), 422, 'validation_failed', field)
  })

  test('POST /auth/login → 200 with the same body shape; the username is case-insensitive', async () => {
    const username = uniqueName('Log')
    const reg = await t.register(username, PASSWORD)
    const res = await t.call('POST', '/auth/login', { body: { username: username.toUpperCase(), password: PASSWORD } })
    expect(res.status).toBe(200)
    expect(Object.keys(res.body).sort()).toEqual(['access_token', 'expires_in', 'refresh_token', 'token_type', 'user'])
    expect(res.body.user).toEqual(reg.user)
    expect(res.body.token_type).toBe('Bearer')
    expect((await t.call('GET', '/me', { token: res.body.access_token })).body).toEqual(reg.user)
  })

  test('login: unknown user and wrong password give the very same 401 invalid_credentials', async () => {
    const username = uniqueName()
    await t.register(username, PASSWORD)
    const wrong = await t.call('POST', '/auth/login', { body: { username, password: 'wrong password' } })
    const unknown = await t.call('POST', '/auth/login', { body: { username: uniqueName('nobody'), password: PASSWORD } })
    const caseOfPassword = await t.call('POST', '/auth/login', { body: { username, password: PASSWORD.toUpperCase() } })
    expectContractError(wrong, 401, 'invalid_credentials')
    expectContractError(unknown, 401, 'invalid_credentials')
    expectContractError(caseOfPassword, 401, 'invalid_credentials')
    expect(unknown.body).toEqual(wrong.body)
    expect([...unknown.headers.keys()].sort()).toEqual([...wrong.headers.keys()].sort())
  })

  test('GET /me needs a valid bearer token; the scheme is case-insensitive', async () => {
    const s = await t.register()
    expect((await t.call('GET', '/me', { headers: { authorization: `bearer ${s.access_token}` } })).body).toEqual(s.user)
    expectContractError(await t.call('GET', '/me'), 401, 'unauthorized')
    for (const authorization of ['', 'Bearer', 'Bearer ', `Basic ${s.access_token}`, s.access_token, `Bearer ${s.access_token} extra`, 'Bearer a.b.c'])
      expectContractError(await t.call('GET', '/me', { headers: { authorization } }), 401, 'unauthorized')
  })
})

describe.each(dialects)('REST auth rate limit on %s', (dialect) => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp(dialect, { AUTH_RATE_BURST: '2', AUTH_RATE_PER_SEC: '0.01' })
  })
  afterAll(() => t.close())

  test('over AUTH_RATE_BURST attempts → 429 rate_limited with a Retry-After in whole seconds, on every auth route', async () => {
    const first = await t.call('POST', '/auth/register', { body: { username: uniqueName(), password: PASSWORD } })
    expect(first.status).toBe(201)
    expect((await t.call('POST', '/auth/login', { body: { username: first.body.user.username, password: PASSWORD } })).status).toBe(200)
    const attempts = [
      t.call('POST', '/auth/login', { body: { username: first.body.user.username, password: PASSWORD } }),
      t.call('POST', '/auth/register', { body: { username: uniqueName(), password: PASSWORD } }),
      t.call('POST', '/auth/refresh', { body: { refresh_token: first.body.refresh_token } }),
    ]
    for (const res of await Promise.all(attempts)) {
      expectContractError(res, 429, 'rate_limited')
      const retryAfter = res.headers.get('retry-after')
      expect(retryAfter).toMatch(/^\d+$/)
      expect(Number(retryAfter)).toBeGreaterThanOrEqual(1)
    }
    // Other routes are not limited by it.
    expect((await t.call('GET', '/me', { token: first.body.access_token })).status).toBe(200)
  })
})
