import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import postgres from 'postgres'
import { SessionCache } from '../src/auth/session-cache'
import { claimsOf, createTestApp, expectContractError, type Session, type TestApp } from './support/app'
import { dialects } from './support/databases'
import { clusterEnv, redisAvailable } from './support/redis'
import { twoNodes } from './support/two-nodes'
import type { DatabaseTarget } from '../src/config'

/**
 * Sessions are checked from memory once known live (src/auth/session-cache.ts): every way a session ends
 * must still end it at once. Each test first uses the access token, so that its session is in the cache.
 */
const me = (t: TestApp, token: string) => t.call('GET', '/me', { token })

/** Revokes a session the way the `user` CLI does: another connection writes it, and nobody is told. */
async function revokeElsewhere(target: DatabaseTarget, sessionId: string) {
  if (target.dialect === 'sqlite') {
    const other = new Database(target.path)
    other.query('UPDATE sessions SET revoked_at = ? WHERE id = ?').run(Date.now(), sessionId)
    other.close()
    return
  }
  const sql = postgres(target.url, { max: 1, onnotice: () => {} })
  await sql`update sessions set revoked_at = now() where id = ${sessionId}`
  await sql.end()
}

const sessionOf = (s: Session) => String(claimsOf(s.access_token).sid)

describe('SessionCache', () => {
  test('remembers, forgets one or all, drops what is stale, and keeps no load that began before a forget', () => {
    let stale = false
    const cache = new SessionCache(60_000, () => stale)
    expect(cache.has('a', 1)).toBe(false)
    cache.remember('a', 1, cache.begin())
    cache.remember('b', 1, cache.begin())
    expect(cache.has('a', 1)).toBe(true)
    expect(cache.has('a', 2)).toBe(false)
    cache.remember('a', 1, cache.begin())
    cache.forget('a')
    expect(cache.has('a', 1)).toBe(false)
    expect(cache.has('b', 1)).toBe(true)
    const since = cache.begin()
    cache.forget('c')
    cache.remember('a', 1, since)
    expect(cache.has('a', 1)).toBe(false)
    stale = true
    expect(cache.has('b', 1)).toBe(false)
    stale = false
    cache.remember('b', 1, cache.begin())
    expect(cache.has('b', 1)).toBe(true)
  })

  test('an entry is trusted for its ttl only', async () => {
    const cache = new SessionCache(30, () => false)
    cache.remember('a', 1, cache.begin())
    expect(cache.has('a', 1)).toBe(true)
    await Bun.sleep(40)
    expect(cache.has('a', 1)).toBe(false)
  })
})

describe.each(dialects)('sessions checked from memory on %s', (dialect) => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp(dialect)
  })
  afterAll(() => t.close())

  test('a session in use ends at once by logout, and by the reuse of a rotated refresh token', async () => {
    const s = await t.register()
    expect((await me(t, s.access_token)).status).toBe(200)
    expect((await t.call('POST', '/auth/logout', { body: { refresh_token: s.refresh_token } })).status).toBe(204)
    expectContractError(await me(t, s.access_token), 401, 'unauthorized')

    const r = await t.register()
    const next = await t.call('POST', '/auth/refresh', { body: { refresh_token: r.refresh_token } })
    expect((await me(t, r.access_token)).status).toBe(200)
    expect((await me(t, next.body.access_token)).status).toBe(200)
    expect((await t.call('POST', '/auth/refresh', { body: { refresh_token: r.refresh_token } })).status).toBe(401)
    expectContractError(await me(t, r.access_token), 401, 'unauthorized')
    expectContractError(await me(t, next.body.access_token), 401, 'unauthorized')
  })

  test('a session in use, revoked in the database by another process unannounced (the user CLI), ends at once', async () => {
    const s = await t.register()
    const other = await t.register()
    expect((await me(t, s.access_token)).status).toBe(200)
    expect((await me(t, other.access_token)).status).toBe(200)
    await revokeElsewhere(t.core.config.database, sessionOf(s))
    expectContractError(await me(t, s.access_token), 401, 'unauthorized')
    expect((await me(t, other.access_token)).status).toBe(200)
  })
})

describe.skipIf(!redisAvailable).each(dialects)('sessions checked from memory, two nodes on %s', (dialect) => {
  const nodes = twoNodes(dialect, 'session-cache')

  test('a session in use on one node, logged out through the other, ends on the first as soon as the cluster says so', async () => {
    const s = await nodes.a.t.register()
    expect((await me(nodes.b.t, s.access_token)).status).toBe(200)
    expect((await nodes.a.t.call('POST', '/auth/logout', { body: { refresh_token: s.refresh_token } })).status).toBe(204)
    const deadline = Date.now() + 2000
    let status = 200
    while (status === 200 && Date.now() < deadline) {
      status = (await me(nodes.b.t, s.access_token)).status
      if (status === 200) await Bun.sleep(5)
    }
    expect(status).toBe(401)
  })
})

describe.skipIf(!redisAvailable)('sessions checked from memory, a node of a Postgres cluster', () => {
  if (!dialects.includes('pg')) return
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp('pg', { ...clusterEnv(`session-cache-ttl:${process.pid}:${Math.random()}`), SESSION_CHECK_MS: '300' })
  })
  afterAll(() => t.close())

  test('a revocation nobody announced (a lost cluster message) is seen within SESSION_CHECK_MS', async () => {
    const s = await t.register()
    expect((await me(t, s.access_token)).status).toBe(200)
    await revokeElsewhere(t.core.config.database, sessionOf(s))
    await Bun.sleep(350)
    expectContractError(await me(t, s.access_token), 401, 'unauthorized')
  })
})
