import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { SignJWT, UnsecuredJWT } from 'jose'
import { claimsOf, createTestApp, expectContractError, TEST_SECRET, type Session, type TestApp } from './support/app'
import { dialects } from './support/databases'

const refresh = (t: TestApp, token: string) => t.call('POST', '/auth/refresh', { body: { refresh_token: token } })
const me = (t: TestApp, token: string) => t.call('GET', '/me', { token })

/** A token signed like the server's, for the same user and session, with claims overridden. */
async function craft(s: Session, overrides: Record<string, unknown>, secret = TEST_SECRET, alg = 'HS256') {
  const claims = { ...claimsOf(s.access_token), jti: crypto.randomUUID(), ...overrides }
  return new SignJWT(claims).setProtectedHeader({ alg, typ: 'JWT' }).sign(new TextEncoder().encode(secret))
}

describe.each(dialects)('tokens on %s', (dialect) => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp(dialect)
  })
  afterAll(() => t.close())

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
    const otherLogin = await t.call('POST', '/auth/login', { body: { username: s.user.username, password: 'correct horse battery' } })
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
    const other = await t.call('POST', '/auth/login', { body: { username: s.user.username, password: 'correct horse battery' } })
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

describe.each(dialects)('token lifetime on %s', (dialect) => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp(dialect, { ACCESS_TOKEN_TTL_SECONDS: '1' })
  })
  afterAll(() => t.close())

  test('ACCESS_TOKEN_TTL_SECONDS=1: expires_in is 1 and the access token dies within ~2 s; refresh still works', async () => {
    const s = await t.register()
    const reg = await t.call('POST', '/auth/login', { body: { username: s.user.username, password: 'correct horse battery' } })
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
