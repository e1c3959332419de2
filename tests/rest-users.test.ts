import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createTestApp, expectContractError, type Session, type TestApp } from './support/app'
import postgres from 'postgres'
import { dialects, PG_ADMIN_URL, pgAvailable } from './support/databases'

const names = (res: { body: { users: { username: string }[] } }) => res.body.users.map((u) => u.username)

describe.each(dialects)('REST users on %s', (dialect) => {
  let t: TestApp
  let me: Session
  // A stem no other test in this file uses, so prefix searches see only these users.
  const stem = `st${Math.random().toString(36).slice(2, 7)}`
  const registered: Record<string, Session> = {}
  const find = (query: string) => t.call('GET', `/users?${query}`, { token: me.access_token })

  beforeAll(async () => {
    t = await createTestApp(dialect)
    me = await t.register()
    for (const suffix of ['_one', '_two', 'xthree', 'Xfour', 'a.six', 'a-seven'])
      registered[suffix] = await t.register(stem + suffix)
  })
  afterAll(() => t.close())

  test('GET /me → 200 the caller', async () => {
    const res = await t.call('GET', '/me', { token: me.access_token })
    expect(res.status).toBe(200)
    expect(res.body).toEqual(me.user)
  })

  test('?username= is exact and case-insensitive: one user, or none', async () => {
    const bob = registered['Xfour']!
    for (const variant of [`${stem}Xfour`, `${stem}xfour`, `${stem.toUpperCase()}XFOUR`]) {
      const res = await find(`username=${encodeURIComponent(variant)}`)
      expect(res.status).toBe(200)
      expect(res.body).toEqual({ users: [bob.user] })
    }
    // Exact, not a prefix, not a pattern.
    for (const miss of [`${stem}Xfou`, `${stem}Xfourr`, `${stem}_on_`, `${stem}%`])
      expect((await find(`username=${encodeURIComponent(miss)}`)).body).toEqual({ users: [] })
  })

  test('?q= is a case-insensitive prefix search returning User objects', async () => {
    const res = await find(`q=${stem.toUpperCase()}`)
    expect(res.status).toBe(200)
    expect(names(res).sort()).toEqual(Object.keys(registered).map((s) => stem + s).sort())
    for (const user of res.body.users) expect(Object.keys(user).sort()).toEqual(['created_at', 'id', 'username'])
    expect(res.body.users.find((u: { username: string }) => u.username === `${stem}_one`)).toEqual(registered['_one']!.user)
    expect((await find(`q=${stem}zz`)).body).toEqual({ users: [] })
  })

  test('?q= treats _ and % literally (not LIKE wildcards); . and - too', async () => {
    expect(names(await find(`q=${stem}_`)).sort()).toEqual([`${stem}_one`, `${stem}_two`])
    expect(names(await find(`q=${encodeURIComponent(`${stem}%`)}`))).toEqual([])
    expect(names(await find(`q=${stem}a.`))).toEqual([`${stem}a.six`])
    expect(names(await find(`q=${stem}a-`))).toEqual([`${stem}a-seven`])
    // As a wildcard, `_` would match the x of "…xthree".
    expect(names(await find(`q=${stem}_three`))).toEqual([])
  })

  test('?q= honours limit (default 20, at most 50); limit 0, 51 or non-numeric → 422 naming limit', async () => {
    expect(await find(`q=${stem}&limit=2`).then((r) => r.body.users.length)).toBe(2)
    expect(await find(`q=${stem}&limit=50`).then((r) => r.body.users.length)).toBe(6)
    for (const limit of ['0', '51', '-1', 'ten', '2.5', '99999999999999999999'])
      expectContractError(await find(`q=${stem}&limit=${limit}`), 422, 'validation_failed', 'limit')
  })

  test('default limit is 20', async () => {
    const bulk = `bk${Math.random().toString(36).slice(2, 7)}`
    await Promise.all(Array.from({ length: 22 }, (_, i) => t.register(`${bulk}${String(i).padStart(2, '0')}`)))
    expect((await find(`q=${bulk}`)).body.users).toHaveLength(20)
    expect((await find(`q=${bulk}&limit=50`)).body.users).toHaveLength(22)
  })

  test('neither username nor q, or an empty one → 422; no token → 401', async () => {
    expectContractError(await find(''), 422, 'validation_failed')
    expectContractError(await find('username='), 422, 'validation_failed', 'username')
    expectContractError(await find('q='), 422, 'validation_failed', 'q')
    expectContractError(await t.call('GET', `/users?q=${stem}`), 401, 'unauthorized')
  })

  test('search strings no username can hold (NUL, other scripts) find nobody rather than failing', async () => {
    for (const query of ['username=a%00b', 'q=a%00b', `q=${encodeURIComponent('пользователь')}`, `username=${encodeURIComponent('😀😀😀')}`]) {
      const res = await find(query)
      expect({ query, status: res.status, body: res.body }).toEqual({ query, status: 200, body: { users: [] } })
    }
  })
})

// A Postgres whose default collation is a language's (the official image's en_US.utf8, any English initdb)
// orders `_`, `-` and `.` otherwise than bytes: the prefix search must pick the same users as on SQLite.
describe.skipIf(!pgAvailable)('user prefix search on a Postgres with a language collation', () => {
  test('GET /users?q=&limit= picks the same users, in the same order, as on SQLite', async () => {
    const name = `chat_test_icu_${process.pid}_${Math.random().toString(36).slice(2, 8)}`
    const admin = postgres(PG_ADMIN_URL, { max: 1, onnotice: () => {} })
    await admin.unsafe(`create database ${name} template template0 locale_provider icu icu_locale 'en-US' locale 'C.UTF-8'`)
    await admin.end()
    const url = new URL(PG_ADMIN_URL)
    url.pathname = `/${name}`
    const icu = {
      target: { dialect: 'pg' as const, url: url.toString() },
      drop: async () => {
        const sql = postgres(PG_ADMIN_URL, { max: 1, onnotice: () => {} })
        await sql.unsafe(`drop database if exists ${name} with (force)`)
        await sql.end()
      },
    }
    const pg = await createTestApp('pg', {}, icu)
    const lite = await createTestApp('sqlite')
    try {
      const prefix = `p${Math.random().toString(36).slice(2, 6)}`
      const names = [`${prefix}_x`, `${prefix}-x`, `${prefix}.x`, `${prefix}0x`, `${prefix}xx`]
      const found = async (app: TestApp, limit: number) => {
        const viewer = await app.register()
        return (await app.call('GET', `/users?q=${prefix}&limit=${limit}`, { token: viewer.access_token })).body.users.map((u: { username: string }) => u.username)
      }
      for (const app of [pg, lite]) for (const username of names) await app.register(username)
      expect(await found(lite, 5)).toEqual([...names].sort())
      for (const limit of [1, 2, 3, 5]) expect(await found(pg, limit)).toEqual(await found(lite, limit))
    } finally {
      await pg.close()
      await icu.drop()
      await lite.close()
    }
  })
})
