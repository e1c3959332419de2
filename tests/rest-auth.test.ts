import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { SignJWT, UnsecuredJWT } from 'jose'
import { claimsOf, createTestApp, expectContractError, TEST_SECRET, uniqueName, type Session, type TestApp } from './support/app'
import { dialects, freshDatabase } from './support/databases'

const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/
const PASSWORD = 'correct horse battery'

const refresh = (t: TestApp, token: string) => t.call('POST', '/auth/refresh', { body: { refresh_token: token } })
const me = (t: TestApp, token: string) => t.call('GET', '/me', { token })

/** A token signed like the server's, for the same user and session, with claims overridden. */
async function craft(s: Session, overrides: Record<string, unknown>, secret = TEST_SECRET, alg = 'HS256') {
  const claims = { ...claimsOf(s.access_token), jti: crypto.randomUUID(), ...overrides }
  return new SignJWT(claims).setProtectedHeader({ alg, typ: 'JWT' }).sign(new TextEncoder().encode(secret))
}

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

  test('fields the contract does not name are ignored, not rejected', async () => {
    const res = await t.call('POST', '/auth/register', { body: { username: uniqueName('Extra'), password: PASSWORD, email: 'x@example.org' } })
    expect(res.status).toBe(201)
    expect(res.body.user).not.toHaveProperty('email')
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
      // Characters, not UTF-16 units: four emoji are 8 units but 4 characters.
      [{ username: uniqueName(), password: '😀'.repeat(4) }, 'password'],
      [{ username: uniqueName(), password: '😀'.repeat(257) }, 'password'],
      [{ username: uniqueName() }, 'password'],
    ]
    for (const [body, field] of bad) expectContractError(await t.call('POST', '/auth/register', { body }), 422, 'validation_failed', field)
  })

  test('password length counts characters: 256 emoji (512 UTF-16 units) register and log in', async () => {
    const username = uniqueName()
    const password = '😀'.repeat(256)
    expect((await t.call('POST', '/auth/register', { body: { username, password } })).status).toBe(201)
    expect((await t.call('POST', '/auth/login', { body: { username, password } })).status).toBe(200)
    expectContractError(await t.call('POST', '/auth/login', { body: { username, password: '😀'.repeat(255) } }), 401, 'invalid_credentials')
  })

  test('a password with a lone surrogate (JSON can carry one) is refused, and never matches U+FFFD at login', async () => {
    const username = uniqueName()
    const raw = (password: string) => JSON.stringify({ username, password })
    expectContractError(await t.call('POST', '/auth/register', { raw: raw('\ud800-secret-1') }), 422, 'validation_failed', 'password')
    // The hash would see a lone surrogate as U+FFFD: a real U+FFFD password must not open with one.
    await t.register(username, '\ufffd-secret-1')
    for (const password of ['\ud800-secret-1', '\udc00-secret-1'])
      expectContractError(await t.call('POST', '/auth/login', { raw: raw(password) }), 401, 'invalid_credentials')
    expect((await t.call('POST', '/auth/login', { raw: raw('\ufffd-secret-1') })).status).toBe(200)
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

  test('POST /auth/login → 200 with the same body shape; the username is case-insensitive', async () => {
    const username = uniqueName('Log')
    const reg = await t.register(username, PASSWORD)
    for (const variant of [username.toUpperCase(), username.toLowerCase()]) {
      const res = await t.call('POST', '/auth/login', { body: { username: variant, password: PASSWORD } })
      expect(res.status).toBe(200)
      expect(Object.keys(res.body).sort()).toEqual(['access_token', 'expires_in', 'refresh_token', 'token_type', 'user'])
      expect(res.body.user).toEqual(reg.user)
      expect(res.body.token_type).toBe('Bearer')
      expect((await t.call('GET', '/me', { token: res.body.access_token })).body).toEqual(reg.user)
    }
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
    for (const authorization of [
      '',
      'Bearer',
      'Bearer ',
      `Basic ${s.access_token}`,
      'Token abc',
      s.access_token,
      `Bearer ${s.access_token} extra`,
      'Bearer a.b.c',
      'Bearer not-a-jwt',
    ])
      expectContractError(await t.call('GET', '/me', { headers: { authorization } }), 401, 'unauthorized')
  })

  test('refresh → 200 with a new pair (same body as login); the new tokens work', async () => {
    const s = await t.register()
    const next = await refresh(t, s.refresh_token)
    expect(next.status).toBe(200)
    expect(Object.keys(next.body).sort()).toEqual(['access_token', 'expires_in', 'refresh_token', 'token_type', 'user'])
    expect(next.body.user).toEqual(s.user)
    expect(next.body.refresh_token).not.toBe(s.refresh_token)
    expect(next.body.access_token).not.toBe(s.access_token)
    expect((await me(t, next.body.access_token)).body).toEqual(s.user)
    // A chain of rotations keeps working.
    const third = await refresh(t, next.body.refresh_token)
    expect(third.status).toBe(200)
    expect((await refresh(t, third.body.refresh_token)).status).toBe(200)
  })

  test('reusing a rotated refresh token → 401 and revokes the whole session: newest refresh AND its access token', async () => {
    const s = await t.register()
    const otherLogin = await t.call('POST', '/auth/login', { body: { username: s.user.username, password: PASSWORD } })
    const next = await refresh(t, s.refresh_token)
    expect(next.status).toBe(200)
    expect((await me(t, next.body.access_token)).status).toBe(200)

    expectContractError(await refresh(t, s.refresh_token), 401, 'unauthorized')
    expectContractError(await refresh(t, next.body.refresh_token), 401, 'unauthorized')
    expectContractError(await me(t, next.body.access_token), 401, 'unauthorized')
    expectContractError(await me(t, s.access_token), 401, 'unauthorized')
    // Another login of the same user is another session, and lives on.
    expect((await me(t, otherLogin.body.access_token)).status).toBe(200)
    expect((await refresh(t, otherLogin.body.refresh_token)).status).toBe(200)
  })

  test('logout → 204 with no body; its refresh token (and access token) no longer work; other sessions do', async () => {
    const s = await t.register()
    const other = await t.call('POST', '/auth/login', { body: { username: s.user.username, password: PASSWORD } })
    const out = await t.call('POST', '/auth/logout', { body: { refresh_token: s.refresh_token } })
    expect(out.status).toBe(204)
    expect(out.body).toBeUndefined()
    expectContractError(await refresh(t, s.refresh_token), 401, 'unauthorized')
    expectContractError(await me(t, s.access_token), 401, 'unauthorized')
    expect((await me(t, other.body.access_token)).status).toBe(200)
    // Logging out with an access token, or garbage, is refused.
    expectContractError(await t.call('POST', '/auth/logout', { body: { refresh_token: other.body.access_token } }), 401, 'unauthorized')
    expectContractError(await t.call('POST', '/auth/logout', { body: { refresh_token: 'nope' } }), 401, 'unauthorized')
    expect((await me(t, other.body.access_token)).status).toBe(200)
  })

  test('a refresh token is refused as an access token, and an access token as a refresh token', async () => {
    const s = await t.register()
    expectContractError(await me(t, s.refresh_token), 401, 'unauthorized')
    expectContractError(await refresh(t, s.access_token), 401, 'unauthorized')
    // Neither mistake burned the session.
    expect((await me(t, s.access_token)).status).toBe(200)
    expect((await refresh(t, s.refresh_token)).status).toBe(200)
  })

  test('forged tokens → 401: alg none, another secret, another HMAC algorithm, relabelled header, tampered payload', async () => {
    const s = await t.register()
    const claims = claimsOf(s.access_token)
    // Control: a token crafted with the server's secret passes, so only the forgery makes the others fail.
    expect((await me(t, await craft(s, {}))).status).toBe(200)

    const none = new UnsecuredJWT(claims).encode()
    const otherSecret = await craft(s, {}, 'another-secret-that-is-long-enough-for-hs256!!')
    const hs512 = await craft(s, {}, TEST_SECRET, 'HS512')
    const [, payload, signature] = s.access_token.split('.')
    const relabelled = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${payload}.${signature}`
    const tampered = `${s.access_token.split('.')[0]}.${Buffer.from(JSON.stringify({ ...claims, sub: '999' })).toString('base64url')}.${signature}`
    for (const token of [none, `${none}x`, otherSecret, hs512, relabelled, tampered])
      expectContractError(await me(t, token), 401, 'unauthorized')
    for (const token of [none, otherSecret])
      expectContractError(await refresh(t, token), 401, 'unauthorized')
  })

  test('an expired access token → 401; an expired refresh token → 401', async () => {
    const s = await t.register()
    const past = Math.floor(Date.now() / 1000) - 5
    expectContractError(await me(t, await craft(s, { exp: past })), 401, 'unauthorized')
    const refreshClaims = claimsOf(s.refresh_token)
    const expiredRefresh = await new SignJWT({ ...refreshClaims, exp: past })
      .setProtectedHeader({ alg: 'HS256' })
      .sign(new TextEncoder().encode(TEST_SECRET))
    expectContractError(await refresh(t, expiredRefresh), 401, 'unauthorized')
    // A token without an expiry is refused as well.
    const { exp: _, ...noExp } = claimsOf(s.access_token)
    const unbounded = await new SignJWT({ ...noExp, jti: crypto.randomUUID() }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(TEST_SECRET))
    expectContractError(await me(t, unbounded), 401, 'unauthorized')
  })
})

describe.each(dialects)('REST auth rate limit on %s', (dialect) => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp(dialect, { AUTH_RATE_BURST: '3', AUTH_RATE_PER_SEC: '0.01' })
  })
  afterAll(() => t.close())

  test('over AUTH_RATE_BURST attempts, failed ones included → 429 rate_limited with a Retry-After in whole seconds, on every auth route', async () => {
    const first = await t.call('POST', '/auth/register', { body: { username: uniqueName(), password: PASSWORD } })
    expect(first.status).toBe(201)
    const { username } = first.body.user
    expect((await t.call('POST', '/auth/login', { body: { username, password: PASSWORD } })).status).toBe(200)
    // A failed attempt spends the budget like a successful one: guessing passwords is limited too.
    expectContractError(await t.call('POST', '/auth/login', { body: { username, password: 'wrong password' } }), 401, 'invalid_credentials')
    const attempts = [
      t.call('POST', '/auth/login', { body: { username, password: PASSWORD } }),
      t.call('POST', '/auth/login', { body: { username, password: 'wrong password' } }),
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

describe.each(dialects)('REST auth rate limit before validation on %s', (dialect) => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp(dialect, { AUTH_RATE_BURST: '2', AUTH_RATE_PER_SEC: '0.01' })
  })
  afterAll(() => t.close())

  test('malformed attempts spend the budget too: past it, even a malformed one is 429, and so is a good one', async () => {
    for (let i = 0; i < 2; i++) expectContractError(await t.call('POST', '/auth/login', { body: { username: 'x' } }), 422, 'validation_failed')
    expectContractError(await t.call('POST', '/auth/login', { body: { username: 'x' } }), 429, 'rate_limited')
    expectContractError(await t.call('POST', '/auth/register', { body: { username: uniqueName(), password: PASSWORD } }), 429, 'rate_limited')
  })
})

describe.each(dialects)('password hashes and their settings on %s', (dialect) => {
  const hashOf = async (t: TestApp, username: string) => {
    const { rows } = await import('../src/storage/database')
    const { eq } = await import('drizzle-orm')
    const [row] = await t.db.read(function* ({ db, t: tables }) {
      return yield* rows(db.select({ hash: tables.users.passwordHash }).from(tables.users).where(eq(tables.users.usernameLower, username.toLowerCase())))
    })
    return row!.hash
  }

  test('ARGON2_* changed: a login with the right password hashes it again with the new settings; a wrong one changes nothing', async () => {
    const fresh = await freshDatabase(dialect)
    const before = await createTestApp(dialect, {}, fresh)
    const username = uniqueName('old')
    await before.register(username, PASSWORD)
    await before.close()
    const after = await createTestApp(dialect, { ARGON2_MEMORY_KIB: '512', ARGON2_TIME_COST: '2' }, fresh)
    try {
      const old = await hashOf(after, username)
      expect(old).toContain('$m=256,t=1,')
      expectContractError(await after.call('POST', '/auth/login', { body: { username, password: 'wrong password' } }), 401, 'invalid_credentials')
      expect(await hashOf(after, username)).toBe(old)
      expect((await after.call('POST', '/auth/login', { body: { username, password: PASSWORD } })).status).toBe(200)
      const renewed = await hashOf(after, username)
      expect(renewed).toContain('$m=512,t=2,')
      // Still the same password.
      expect((await after.call('POST', '/auth/login', { body: { username, password: PASSWORD } })).status).toBe(200)
      expect(await hashOf(after, username)).toBe(renewed)
    } finally {
      await after.close()
      await fresh.drop()
    }
  })

  test('ARGON2_* changed: logins with the right password at about the same moment all succeed, though the first rehashes', async () => {
    const fresh = await freshDatabase(dialect)
    // Costlier settings before, so that the later logins are still checking the old hash when the first rehashes.
    const before = await createTestApp(dialect, { ARGON2_MEMORY_KIB: '32768', ARGON2_TIME_COST: '3' }, fresh)
    const username = uniqueName('old')
    await before.register(username, PASSWORD)
    await before.close()
    const after = await createTestApp(dialect, {}, fresh)
    try {
      // One user signing in from a few devices at once.
      const logins = []
      for (let i = 0; i < 5; i++) {
        logins.push(after.call('POST', '/auth/login', { body: { username, password: PASSWORD } }))
        await Bun.sleep(15)
      }
      const answers = await Promise.all(logins)
      expect(answers.map((r) => (r.status === 200 ? 200 : `${r.status} ${r.body?.error?.code}`))).toEqual([200, 200, 200, 200, 200])
      for (const r of answers) expect((await me(after, r.body.access_token)).status).toBe(200)
      expect(await hashOf(after, username)).toContain('$m=256,t=1,')
    } finally {
      await after.close()
      await fresh.drop()
    }
  })

  test('a password is one password however its accents are encoded: composed (NFC) or decomposed (NFD, as some devices type)', async () => {
    const t = await createTestApp(dialect)
    const typed = 'pässwörd-Ünïcode-café'
    const nfc = typed.normalize('NFC')
    const nfd = typed.normalize('NFD')
    expect(nfd).not.toBe(nfc)
    const login = (username: string, password: string) => t.call('POST', '/auth/login', { body: { username, password } })
    try {
      const composed = await t.register(uniqueName('nfc'), nfc)
      expect((await login(composed.user.username, nfd)).status).toBe(200)
      const decomposed = await t.register(uniqueName('nfd'), nfd)
      expect((await login(decomposed.user.username, nfc)).status).toBe(200)
      expectContractError(await login(decomposed.user.username, nfc.replace('é', 'e')), 401, 'invalid_credentials')

      // An account from before passwords were composed: its hash is of the text as typed, decomposed. That
      // text logs in, and the login rehashes it composed, so the composed form works from then on.
      const legacy = await t.register(uniqueName('legacy'), PASSWORD)
      const { replacePasswordHash } = await import('../src/users/store')
      const raw = await Bun.password.hash(nfd, { algorithm: 'argon2id', memoryCost: 256, timeCost: 1 })
      const current = await hashOf(t, legacy.user.username)
      await t.db.tx((s) => replacePasswordHash(s, legacy.user.id, current, raw))
      expectContractError(await login(legacy.user.username, nfc), 401, 'invalid_credentials')
      expect((await login(legacy.user.username, nfd)).status).toBe(200)
      expect(await hashOf(t, legacy.user.username)).not.toBe(raw)
      expect((await login(legacy.user.username, nfc)).status).toBe(200)
    } finally {
      await t.close()
    }
  })

  test('a login whose password check was running when `user disable` committed gets no working session', async () => {
    // A slow hash, so that the disable lands while the login verifies the password it read.
    const t = await createTestApp(dialect, { ARGON2_MEMORY_KIB: '65536', ARGON2_TIME_COST: '6' })
    const { userCommand } = await import('../src/cli/users')
    const { Logger } = await import('../src/log/logger')
    const { openDatabase } = await import('../src/storage/database')
    // The operator's CLI: a connection of its own to the same database.
    const cli = await openDatabase(t.core.config.database, { sqliteSynchronous: t.core.config.sqliteSynchronous })
    try {
      const s = await t.register(uniqueName('victim'), PASSWORD)
      const login = t.call('POST', '/auth/login', { body: { username: s.user.username, password: PASSWORD } })
      await Bun.sleep(60)
      expect(await userCommand(t.core.config, cli, new Logger({ level: 'silent', format: 'pretty' }), 'disable', s.user.username)).toContain('disabled')
      const res = await login
      // Whatever the login answered, nothing it handed out works once the user is disabled.
      if (res.status === 200) {
        expectContractError(await me(t, res.body.access_token), 401, 'unauthorized')
        expectContractError(await refresh(t, res.body.refresh_token), 401, 'unauthorized')
      } else expectContractError(res, 401, 'invalid_credentials')
      expectContractError(await t.call('POST', '/auth/login', { body: { username: s.user.username, password: PASSWORD } }), 401, 'invalid_credentials')
    } finally {
      await cli.close()
      await t.close()
    }
  })
})

describe.each(dialects)('token lifetime on %s', (dialect) => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp(dialect, { ACCESS_TOKEN_TTL_SECONDS: '1' })
  })
  afterAll(() => t.close())

  test('ACCESS_TOKEN_TTL_SECONDS=1: expires_in is 1 and the access token dies within ~2 s; refresh still works', async () => {
    const s = await t.register()
    const reg = await t.call('POST', '/auth/login', { body: { username: s.user.username, password: PASSWORD } })
    expect(reg.body.expires_in).toBe(1)
    // Used once while valid (a verified token may be remembered: expiry must still apply).
    expect((await me(t, s.access_token)).status).toBe(200)
    await Bun.sleep(2100)
    expectContractError(await me(t, s.access_token), 401, 'unauthorized')
    const next = await refresh(t, s.refresh_token)
    expect(next.status).toBe(200)
    expect((await me(t, next.body.access_token)).status).toBe(200)
  })
})
