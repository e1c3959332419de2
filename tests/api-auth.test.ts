import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { SignJWT, UnsecuredJWT } from 'jose'
import { createTestApp, uniqueName, type TestApp } from './support/app'
import { dialects } from './support/databases'

const expectError = (res: { status: number; body: any }, status: number, code: string) => {
  expect(res.status).toBe(status)
  expect(res.body.error.code).toBe(code)
  expect(typeof res.body.error.message).toBe('string')
}

describe.each(dialects)('auth on %s', (dialect) => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp(dialect)
  })
  afterAll(() => t.close())

  test('register answers 201 with the user and a Bearer token pair', async () => {
    const username = uniqueName('Reg')
    const res = await t.call('POST', '/auth/register', { body: { username, password: 'password-1' } })
    expect(res.status).toBe(201)
    expect(res.body.user).toEqual({ id: expect.any(Number), username, created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/) })
    expect(res.body.token_type).toBe('Bearer')
    expect(res.body.expires_in).toBe(900)
    expect(res.body.access_token).not.toBe(res.body.refresh_token)
    const me = await t.call('GET', '/me', { token: res.body.access_token })
    expect(me.status).toBe(200)
    expect(me.body).toEqual(res.body.user)
  })

  test('fields the contract does not name are ignored, not rejected', async () => {
    const res = await t.call('POST', '/auth/register', { body: { username: uniqueName('Extra'), password: 'password-1', email: 'x@example.org' } })
    expect(res.status).toBe(201)
    expect(res.body.user).not.toHaveProperty('email')
  })

  test('usernames are unique case-insensitively: 409 username_taken', async () => {
    const username = uniqueName('Case')
    await t.register(username)
    expectError(await t.call('POST', '/auth/register', { body: { username: username.toUpperCase(), password: 'password-1' } }), 409, 'username_taken')
  })

  test('register validates username and password, naming the field', async () => {
    for (const [body, field] of [
      [{ username: 'ab', password: 'password-1' }, 'username'],
      [{ username: 'x'.repeat(33), password: 'password-1' }, 'username'],
      [{ username: 'has space', password: 'password-1' }, 'username'],
      [{ username: uniqueName(), password: 'short' }, 'password'],
      [{ username: uniqueName(), password: 'p'.repeat(257) }, 'password'],
      // Characters, not UTF-16 units: four emoji are 8 units but 4 characters.
      [{ username: uniqueName(), password: '😀'.repeat(4) }, 'password'],
      [{ username: uniqueName(), password: '😀'.repeat(257) }, 'password'],
      [{ password: 'password-1' }, 'username'],
    ] as const) {
      const res = await t.call('POST', '/auth/register', { body })
      expectError(res, 422, 'validation_failed')
      expect(res.body.error.details.field).toBe(field)
    }
  })

  test('password length counts characters: 256 emoji (512 UTF-16 units) register and log in', async () => {
    const username = uniqueName()
    const password = '😀'.repeat(256)
    expect((await t.call('POST', '/auth/register', { body: { username, password } })).status).toBe(201)
    expect((await t.call('POST', '/auth/login', { body: { username, password } })).status).toBe(200)
    expectError(await t.call('POST', '/auth/login', { body: { username, password: '😀'.repeat(255) } }), 401, 'invalid_credentials')
  })

  test('passwords are stored as argon2id hashes, never in clear', async () => {
    const username = uniqueName()
    await t.register(username, 'my-secret-password')
    const { rows } = await import('../src/storage/database')
    const { eq } = await import('drizzle-orm')
    const [row] = await t.db.read(function* ({ db, t: tables }) {
      return yield* rows(db.select({ hash: tables.users.passwordHash }).from(tables.users).where(eq(tables.users.usernameLower, username.toLowerCase())))
    })
    expect(row!.hash).toStartWith('$argon2id$')
    expect(row!.hash).not.toContain('my-secret-password')
  })

  test('login: 200 with a pair; unknown user and wrong password get the same 401 invalid_credentials', async () => {
    const username = uniqueName('Login')
    await t.register(username, 'password-1')
    const ok = await t.call('POST', '/auth/login', { body: { username: username.toLowerCase(), password: 'password-1' } })
    expect(ok.status).toBe(200)
    expect(ok.body.user.username).toBe(username)
    const wrong = await t.call('POST', '/auth/login', { body: { username, password: 'password-2' } })
    const unknown = await t.call('POST', '/auth/login', { body: { username: uniqueName('ghost'), password: 'password-1' } })
    expectError(wrong, 401, 'invalid_credentials')
    expect(unknown.body).toEqual(wrong.body)
    expect(unknown.status).toBe(wrong.status)
  })

  test('refresh rotates: the new pair works, the used refresh token is single-use', async () => {
    const s = await t.register()
    const next = await t.call('POST', '/auth/refresh', { body: { refresh_token: s.refresh_token } })
    expect(next.status).toBe(200)
    expect(next.body.refresh_token).not.toBe(s.refresh_token)
    expect((await t.call('GET', '/me', { token: next.body.access_token })).status).toBe(200)
    const again = await t.call('POST', '/auth/refresh', { body: { refresh_token: next.body.refresh_token } })
    expect(again.status).toBe(200)
  })

  test('reusing a rotated refresh token → 401 and revokes every token of that login session', async () => {
    const s = await t.register()
    const other = await t.call('POST', '/auth/login', { body: { username: s.user.username, password: 'correct horse battery' } })
    const next = await t.call('POST', '/auth/refresh', { body: { refresh_token: s.refresh_token } })
    expectError(await t.call('POST', '/auth/refresh', { body: { refresh_token: s.refresh_token } }), 401, 'unauthorized')
    // The thief's (or victim's) newer tokens of that session are dead too…
    expectError(await t.call('POST', '/auth/refresh', { body: { refresh_token: next.body.refresh_token } }), 401, 'unauthorized')
    expectError(await t.call('GET', '/me', { token: next.body.access_token }), 401, 'unauthorized')
    expectError(await t.call('GET', '/me', { token: s.access_token }), 401, 'unauthorized')
    // …but another login of the same user is a different session and keeps working.
    expect((await t.call('GET', '/me', { token: other.body.access_token })).status).toBe(200)
  })

  test('logout → 204; that session refresh token no longer works', async () => {
    const s = await t.register()
    const out = await t.call('POST', '/auth/logout', { body: { refresh_token: s.refresh_token } })
    expect(out.status).toBe(204)
    expectError(await t.call('POST', '/auth/refresh', { body: { refresh_token: s.refresh_token } }), 401, 'unauthorized')
    expectError(await t.call('GET', '/me', { token: s.access_token }), 401, 'unauthorized')
  })

  test('a refresh token is not an access token, and an access token is not a refresh token', async () => {
    const s = await t.register()
    expectError(await t.call('GET', '/me', { token: s.refresh_token }), 401, 'unauthorized')
    expectError(await t.call('POST', '/auth/refresh', { body: { refresh_token: s.access_token } }), 401, 'unauthorized')
  })

  test('missing, malformed, alg:none and foreign-signed tokens → 401 unauthorized', async () => {
    const s = await t.register()
    // The real session id: only the signature can make these fail.
    const { sid } = JSON.parse(Buffer.from(s.access_token.split('.')[1]!, 'base64url').toString())
    const claims = { sub: String(s.user.id), sid, typ: 'access' }
    const none = new UnsecuredJWT(claims).setExpirationTime('1h').encode()
    const forged = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode('another-secret-another-secret-another'))
    // A correctly signed token whose header claims alg none must not pass either.
    const [, payload, signature] = s.access_token.split('.')
    const relabelled = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${payload}.${signature}`
    expectError(await t.call('GET', '/me'), 401, 'unauthorized')
    expectError(await t.call('GET', '/me', { headers: { authorization: 'Token abc' } }), 401, 'unauthorized')
    for (const token of ['not-a-jwt', none, forged, relabelled])
      expectError(await t.call('GET', '/me', { token }), 401, 'unauthorized')
  })
})

describe.each(dialects)('auth rate limit and token lifetime on %s', (dialect) => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp(dialect, { AUTH_RATE_BURST: '3', AUTH_RATE_PER_SEC: '0.01' })
  })
  afterAll(() => t.close())

  test('too many auth attempts → 429 rate_limited with Retry-After', async () => {
    const statuses: number[] = []
    let last
    for (let i = 0; i < 5; i++) {
      last = await t.call('POST', '/auth/login', { body: { username: 'nobody', password: 'password-1' } })
      statuses.push(last.status)
    }
    expect(statuses).toEqual([401, 401, 401, 429, 429])
    expectError(last!, 429, 'rate_limited')
    expect(Number(last!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
  })

  test('access tokens expire after ACCESS_TOKEN_TTL_SECONDS', async () => {
    const fresh = await createTestApp(dialect, { ACCESS_TOKEN_TTL_SECONDS: '1' })
    try {
      const s = await fresh.register()
      expect((await fresh.call('GET', '/me', { token: s.access_token })).status).toBe(200)
      await Bun.sleep(2100)
      expectError(await fresh.call('GET', '/me', { token: s.access_token }), 401, 'unauthorized')
    } finally {
      await fresh.close()
    }
  })
})
