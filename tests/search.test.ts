import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import { sql } from 'drizzle-orm'
import { drizzle as drizzleSqlite } from 'drizzle-orm/bun-sqlite'
import { drizzle as drizzlePg } from 'drizzle-orm/postgres-js'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import postgres from 'postgres'
import { indexText } from '../src/search/fts.sqlite'
import { matchers } from '../src/search/store'
import type { PgDb } from '../src/storage/database'
import { EMBEDDED } from '../src/storage/embedded-migrations'
import { messages as pgMessages } from '../src/storage/schema.pg'
import { messages as sqliteMessages } from '../src/storage/schema.sqlite'
import { createTestApp, expectContractError, type Session, type TestApp } from './support/app'
import { dialects, freshDatabase } from './support/databases'

/** The migration that made each CJK character a word of its own. */
const CJK_MIGRATION = { sqlite: '0009_search_cjk', pg: '0011_search_cjk' } as const
const statementsOf = (dialect: 'sqlite' | 'pg', tag: string) =>
  (EMBEDDED[dialect].files as Record<string, string>)[tag]!.split('--> statement-breakpoint').filter((s) => s.trim() !== '')
/** The code points indexText spaces apart (beyond ASCII, surrogates left out), to compare each dialect's SQL with. */
const cjkCodePoints = () => {
  const found: number[] = []
  for (let cp = 0x80; cp <= 0x323af; cp++) if ((cp < 0xd800 || cp > 0xdfff) && indexText(String.fromCodePoint(cp)).includes(' ')) found.push(cp)
  return found
}

type PlanNode = { 'Index Name'?: string; Plans?: PlanNode[] }
type Page = { messages: { id: number; text: string; dialog_id: number }[]; has_more: boolean }

describe.each(dialects)('search on %s', (dialect) => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp(dialect)
  })
  afterAll(() => t.close())

  const send = async (s: Session, dialogId: number, text: string) =>
    (await t.call('POST', `/dialogs/${dialogId}/messages`, { token: s.access_token, body: { client_msg_id: crypto.randomUUID(), type: 'text', text } })).body as {
      id: number
    }
  const search = (s: Session, query: Record<string, string | number>) =>
    t.call<Page>('GET', `/search/messages?${new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)]))}`, { token: s.access_token })
  const texts = async (s: Session, q: string, extra: Record<string, string | number> = {}) => {
    const res = await search(s, { q, ...extra })
    expect(res.status).toBe(200)
    return res.body.messages.map((m) => m.text)
  }

  test('words of any script, case-insensitive, each also a prefix, all required; newest first', async () => {
    const { a, b, dialogId } = await t.pair()
    await send(a, dialogId, 'Привет, мир')
    await send(b, dialogId, 'Hello World from Kyiv')
    await send(a, dialogId, 'hello again, ПРИВЕТСТВУЮ')
    await send(b, dialogId, 'nothing here')
    expect(await texts(a, 'прив')).toEqual(['hello again, ПРИВЕТСТВУЮ', 'Привет, мир'])
    expect(await texts(b, 'ПРИВЕТ мир')).toEqual(['Привет, мир'])
    expect(await texts(a, 'HELLO')).toEqual(['hello again, ПРИВЕТСТВУЮ', 'Hello World from Kyiv'])
    expect(await texts(a, 'hel wor')).toEqual(['Hello World from Kyiv'])
    expect(await texts(a, 'hello kyiv again')).toEqual([])
    expect(await texts(a, 'wor', { dialog_id: dialogId })).toEqual(['Hello World from Kyiv'])
  })

  test('operator characters and quotes are words or separators, never syntax: 200, and they find what they say', async () => {
    const { a, dialogId } = await t.pair()
    await send(a, dialogId, 'meet me NEAR the station OR at home')
    await send(a, dialogId, 'it\'s "quoted" text: a&b!')
    for (const q of ['"', '*', ':', '&', '!', "'", '(', ')', '"unclosed', 'a:*', '!x', 'x | y', '-', '^', '\\', '{}', 'NOT', 'AND'])
      expect((await search(a, { q })).status).toBe(200)
    expect(await texts(a, 'NEAR')).toEqual(['meet me NEAR the station OR at home'])
    expect(await texts(a, 'station OR')).toEqual(['meet me NEAR the station OR at home'])
    expect(await texts(a, '"quoted"')).toEqual(['it\'s "quoted" text: a&b!'])
    expect(await texts(a, 'quot* text:')).toEqual(['it\'s "quoted" text: a&b!'])
    expect(await texts(a, 'home & quoted')).toEqual([])
    expect(await texts(a, '"""')).toEqual([])
  })

  test('only the caller\'s dialogs (or the one named, if theirs); paging with before_id and has_more', async () => {
    const { a, b, dialogId } = await t.pair()
    const other = await t.pair()
    const mine = []
    for (let i = 0; i < 5; i++) mine.push(await send(i % 2 ? a : b, dialogId, `zebra number ${i}`))
    await send(other.a, other.dialogId, 'zebra elsewhere')
    const first = await search(a, { q: 'zebra', limit: 2 })
    expect(first.body.messages.map((m) => m.id)).toEqual([mine[4]!.id, mine[3]!.id])
    expect(first.body.has_more).toBe(true)
    const next = await search(a, { q: 'zebra', limit: 2, before_id: mine[3]!.id })
    expect(next.body).toMatchObject({ has_more: true })
    expect(next.body.messages.map((m) => m.id)).toEqual([mine[2]!.id, mine[1]!.id])
    const last = await search(a, { q: 'zebra', limit: 2, before_id: mine[1]!.id })
    expect(last.body).toMatchObject({ has_more: false })
    expect(last.body.messages.map((m) => m.id)).toEqual([mine[0]!.id])
    expect(await texts(other.a, 'zebra')).toEqual(['zebra elsewhere'])
    expectContractError(await search(other.a, { q: 'zebra', dialog_id: dialogId }), 404, 'not_found')
  })

  test('an edit is found by its new text only; a deleted message never', async () => {
    const { a, dialogId } = await t.pair()
    const m = await send(a, dialogId, 'platypus original')
    expect(await texts(a, 'platypus')).toEqual(['platypus original'])
    await t.call('PATCH', `/dialogs/${dialogId}/messages/${m.id}`, { token: a.access_token, body: { text: 'platypus revised' } })
    expect(await texts(a, 'original')).toEqual([])
    expect(await texts(a, 'platypus revi')).toEqual(['platypus revised'])
    await t.call('DELETE', `/dialogs/${dialogId}/messages/${m.id}`, { token: a.access_token })
    expect(await texts(a, 'platypus')).toEqual([])
  })

  // The words of a text are runs of letters, digits and marks on both dialects (SQLite's unicode61): Postgres's
  // own parser would keep an address, a host, a URL, a path or a number as one lexeme, and read 3e7 as a number.
  test('a word inside an address, a URL, a path or a number is found, and a word it does not hold is not', async () => {
    const { a, dialogId } = await t.pair()
    const email = 'write to Bob@Example.com today'
    const url = 'the guide is at https://docs.example.org/guide/start?page=2#top'
    const numbers = 'pi is about 3.14 and the build is v1.2.3'
    const path = 'binaries live in /usr/local/bin, snake_case_name and e-mail'
    const hash = 'fixed in 3e7f0a2, colour #1e3a5f'
    for (const text of [email, url, numbers, path, hash]) await send(a, dialogId, text)
    const found = async (q: string) => (await texts(a, q)).sort()
    expect(await found('example')).toEqual([email, url].sort())
    expect(await found('example.com')).toEqual([email])
    expect(await found('bob@example')).toEqual([email])
    expect(await found('docs guide start')).toEqual([url])
    expect(await found('page')).toEqual([url])
    expect(await found('14')).toEqual([numbers])
    expect(await found('3.14')).toEqual([numbers])
    expect(await found('2')).toEqual([numbers, url].sort())
    expect(await found('v1')).toEqual([numbers])
    expect(await found('local')).toEqual([path])
    expect(await found('usr bin')).toEqual([path])
    expect(await found('case name mail')).toEqual([path])
    expect(await found('3e7f')).toEqual([hash])
    expect(await found('1e3a5f')).toEqual([hash])
    expect(await found('f0a2')).toEqual([])
    expect(await found('a5f')).toEqual([])
    expect(await found('example.net')).toEqual([])
  })

  // SQLite's `unicode61 remove_diacritics 2`: a Latin letter loses its accents, composed (NFC) or decomposed
  // (NFD), in the text and in q alike; a combining accent goes whatever letter it follows; a precomposed
  // letter of another script stays itself (й is not и, ά is not α), and final sigma is sigma.
  test('Latin accents fold both ways, composed or decomposed; other scripts keep their letters', async () => {
    const { a, dialogId } = await t.pair()
    const cafe = 'le café est bon'
    const decomposed = 'decomposed cafe\u0301 here'
    const resume = 'naïve résumé'
    const school = 'ÉCOLE publique, Tiếng Việt, Straße'
    const russian = 'Йогурт и мёд'
    const greek = 'Καλημέρα, ΟΔΟΣ'
    const greekDecomposed = 'καλημε\u0301ρα αγαπη'
    for (const text of [cafe, decomposed, resume, school, russian, greek, greekDecomposed]) await send(a, dialogId, text)
    const found = async (q: string) => (await texts(a, q)).sort()
    for (const q of ['cafe', 'café', 'cafe\u0301', 'CAFÉ', 'CAFE\u0301', 'caf']) expect(await found(q)).toEqual([cafe, decomposed].sort())
    expect(await found('naive resume')).toEqual([resume])
    expect(await found('NAÏVE RÉSUMÉ')).toEqual([resume])
    expect(await found('résu')).toEqual([resume])
    expect(await found('ecole tieng viet')).toEqual([school])
    expect(await found('École')).toEqual([school])
    expect(await found('straße')).toEqual([school])
    expect(await found('strasse')).toEqual([])
    expect(await found('йогурт мёд')).toEqual([russian])
    expect(await found('иогурт')).toEqual([])
    expect(await found('мед')).toEqual([])
    expect(await found('καλημέρα')).toEqual([greek])
    expect(await found('ΚΑΛΗΜΈΡΑ')).toEqual([greek])
    expect(await found('καλημερα')).toEqual([greekDecomposed])
    expect(await found('οδος')).toEqual([greek])
    expect(await found('ΟΔΟΣ')).toEqual([greek])
  })

  // U+0336 (strikethrough) is not an accent: unicode61 splits the word there, and a word of q holding one is the
  // phrase of its parts, only the last a prefix.
  test('a combining mark that is no accent splits words, in the text and in q', async () => {
    const { a, dialogId } = await t.pair()
    const struck = 's\u0336t\u0336r\u0336i\u0336k\u0336e\u0336 out'
    await send(a, dialogId, struck)
    await send(a, dialogId, 'sx tail')
    expect(await texts(a, 't\u0336r\u0336i\u0336k\u0336e\u0336')).toEqual([struck])
    expect(await texts(a, 'r i k')).toEqual([struck])
    expect(await texts(a, 's\u0336t')).toEqual([struck])
    expect(await texts(a, 'strike')).toEqual([])
  })

  test('an edit is found by its new words, accents and addresses included', async () => {
    const { a, dialogId } = await t.pair()
    const m = await send(a, dialogId, 'echidna first draft')
    await t.call('PATCH', `/dialogs/${dialogId}/messages/${m.id}`, { token: a.access_token, body: { text: 'échidné wrote to ann@zoo.example' } })
    expect(await texts(a, 'draft')).toEqual([])
    expect(await texts(a, 'echidne zoo')).toEqual(['échidné wrote to ann@zoo.example'])
    expect(await texts(a, 'ann@zoo')).toEqual(['échidné wrote to ann@zoo.example'])
  })

  test('a word of marks alone holds no letter: the query finds nothing, on either index', async () => {
    const { a, dialogId } = await t.pair()
    await send(a, dialogId, 'wombat e\u0301')
    expect(await texts(a, 'wombat')).toEqual(['wombat e\u0301'])
    expect((await search(a, { q: '\u0301' })).body).toEqual({ messages: [], has_more: false })
    expect(await texts(a, 'wombat \u0301')).toEqual([])
  })

  // Chinese and Japanese are written without spaces: each Han, Hiragana or Katakana character is a word of its own in
  // the index, and a word of q holding some is the phrase of its parts, in order and adjacent.
  test('a Chinese or Japanese word is found inside a sentence; its characters apart or in another order are not', async () => {
    const { a, dialogId } = await t.pair()
    const tokyo = '私は東京に住んでいます'
    const beijing = '我住在北京'
    const apart = '東の空と京の都'
    const reversed = '京東へ行く'
    const ramen = 'きのうラーメンを食べた'
    for (const text of [tokyo, beijing, apart, reversed, ramen]) await send(a, dialogId, text)
    const found = async (q: string) => (await texts(a, q)).sort()
    expect(await found('東京')).toEqual([tokyo])
    expect(await found('北京')).toEqual([beijing])
    expect(await found('住んで')).toEqual([tokyo])
    expect(await found('ラーメン')).toEqual([ramen])
    expect(await found('メンを食')).toEqual([ramen])
    expect(await found('住')).toEqual([beijing, tokyo].sort())
    expect(await found('東')).toEqual([apart, reversed, tokyo].sort())
    expect(await found('京東')).toEqual([reversed])
    expect(await found('東京 住んで')).toEqual([tokyo])
    expect(await found('東京 北京')).toEqual([])
    expect(await found('東京都')).toEqual([])
    expect(await found('北京人')).toEqual([])
  })

  test('canonically equivalent texts are one: kana written decomposed (as macOS may send it), a compatibility ideograph', async () => {
    const { a, dialogId } = await t.pair()
    const decomposed = 'か\u3099っこうへ行く'
    const composed = 'がっこうの前'
    const compatibility = '\uF900の字'
    const unified = '豈の字'
    for (const text of [decomposed, composed, compatibility, unified]) await send(a, dialogId, text)
    const found = async (q: string) => (await texts(a, q)).sort()
    expect(await found('がっこう')).toEqual([composed, decomposed].sort())
    expect(await found('か\u3099っこう')).toEqual([composed, decomposed].sort())
    expect(await found('豈')).toEqual([compatibility, unified].sort())
    expect(await found('\uF900')).toEqual([compatibility, unified].sort())
  })

  test('a CJK word joined to Latin letters is its parts in order, the Latin one also a prefix; Latin words beside CJK as before', async () => {
    const { a, dialogId } = await t.pair()
    const tower = '東京towerに行く'
    const station = 'meet at 北京Station tomorrow'
    for (const text of [tower, station]) await send(a, dialogId, text)
    const found = async (q: string) => (await texts(a, q)).sort()
    expect(await found('東京tower')).toEqual([tower])
    expect(await found('東京tow')).toEqual([tower])
    expect(await found('京TOWER')).toEqual([tower])
    expect(await found('tower')).toEqual([tower])
    expect(await found('towerに')).toEqual([tower])
    expect(await found('東京towel')).toEqual([])
    expect(await found('東tower')).toEqual([])
    expect(await found('北京st')).toEqual([station])
    expect(await found('station')).toEqual([station])
    expect(await found('meet tomorrow 北京')).toEqual([station])
    expect(await found('tow sta')).toEqual([])
  })

  test('an edit is found by its new CJK words only; a deleted message never', async () => {
    const { a, dialogId } = await t.pair()
    const m = await send(a, dialogId, '明天在上海见面')
    expect(await texts(a, '上海')).toEqual(['明天在上海见面'])
    await t.call('PATCH', `/dialogs/${dialogId}/messages/${m.id}`, { token: a.access_token, body: { text: '改在广州见面吧' } })
    expect(await texts(a, '上海')).toEqual([])
    expect(await texts(a, '广州')).toEqual(['改在广州见面吧'])
    expect(await texts(a, '见面')).toEqual(['改在广州见面吧'])
    await t.call('PATCH', `/dialogs/${dialogId}/messages/${m.id}`, { token: a.access_token, body: { text: 'plain again' } })
    expect(await texts(a, '广州')).toEqual([])
    expect(await texts(a, 'again')).toEqual(['plain again'])
    await t.call('PATCH', `/dialogs/${dialogId}/messages/${m.id}`, { token: a.access_token, body: { text: '最后在深圳' } })
    expect(await texts(a, '深圳')).toEqual(['最后在深圳'])
    await t.call('DELETE', `/dialogs/${dialogId}/messages/${m.id}`, { token: a.access_token })
    expect(await texts(a, '深圳')).toEqual([])
  })

  // An existing database's index read a run of CJK characters as one word: the migration indexes every message again.
  test('the migration that spaces CJK characters indexes an existing database again', async () => {
    const fresh = await freshDatabase(dialect)
    const tokyo = '私は東京に住んでいます'
    const apart = '東の空と京の都, café'
    const before = EMBEDDED[dialect].journal.entries.findIndex((e) => e.tag === CJK_MIGRATION[dialect])
    expect(before).toBeGreaterThan(0)
    const tags = EMBEDDED[dialect].journal.entries.map((e) => e.tag)
    try {
      if (fresh.target.dialect === 'sqlite') {
        const client = new Database(fresh.target.path)
        for (const tag of tags.slice(0, before)) for (const s of statementsOf('sqlite', tag)) client.exec(s)
        // Inserted and indexed as the writer did before (drizzle/sqlite/0007).
        const insert = client.query("insert into messages (dialog_id, seq, sender_id, client_msg_id, type, text, created_at) values (1, ?, 1, ?, 'text', ?, 0)")
        insert.run(1, 'a', tokyo)
        insert.run(2, 'b', apart)
        client.exec('insert into messages_fts(rowid, text) select id, text from messages')
        for (const tag of tags.slice(before)) for (const s of statementsOf('sqlite', tag)) client.exec(s)
        const db = drizzleSqlite(client)
        const ids = (words: string[]) => db.select({ id: sqliteMessages.id }).from(sqliteMessages).where(matchers.sqlite(words, sqliteMessages.id)).all().map((r) => r.id)
        expect(ids(['東京'])).toEqual([1])
        expect(ids(['京'])).toEqual([1, 2])
        expect(ids(['cafe', '空'])).toEqual([2])
        client.close()
      } else {
        const client = postgres(fresh.target.url, { max: 1, onnotice: () => {} })
        try {
          for (const tag of tags.slice(0, before)) for (const s of statementsOf('pg', tag)) await client.unsafe(s)
          await client`insert into messages (dialog_id, seq, sender_id, client_msg_id, type, text, created_at) values (1, 1, 1, 'a', 'text', ${tokyo}, now()), (1, 2, 1, 'b', 'text', ${apart}, now())`
          for (const tag of tags.slice(before)) for (const s of statementsOf('pg', tag)) await client.unsafe(s)
          const db = drizzlePg(client)
          const ids = async (words: string[]) =>
            (await db.select({ id: pgMessages.id }).from(pgMessages).where(matchers.pg(words, pgMessages.id, pgMessages)).orderBy(pgMessages.id)).map((r) => r.id)
          expect(await ids(['東京'])).toEqual([1])
          expect(await ids(['京'])).toEqual([1, 2])
          expect(await ids(['cafe', '空'])).toEqual([2])
        } finally {
          await client.end()
        }
      }
    } finally {
      await fresh.drop()
    }
  })

  // indexText (src/search/fts.sqlite.ts), SQLite's migration and Postgres's search_text() each list the CJK ranges.
  test('the characters spaced apart are the same in the code and in the SQL', async () => {
    const expected = cjkCodePoints()
    for (const c of '東京々ひらがなカタカナｶﾀｶﾅ𠀋') expect(expected).toContain(c.codePointAt(0)!)
    expect(expected).not.toContain('한'.codePointAt(0)!)
    if (dialect === 'sqlite') {
      const migration = readFileSync(join(import.meta.dir, '..', 'drizzle', 'sqlite', `${CJK_MIGRATION.sqlite}.sql`), 'utf8')
      const classes = [...migration.matchAll(/GLOB '\*?(\[[^\]]+\])\*'/g)].map((m) => m[1]!)
      expect(classes.length).toBe(3)
      const client = new Database(':memory:')
      for (const glob of classes) {
        const rows = client
          .query<{ cp: number }, [string]>(
            'with recursive c(cp) as (select 128 union all select cp + 1 from c where cp < 205743) select cp from c where (cp < 55296 or cp > 57343) and char(cp) glob ?',
          )
          .all(glob)
        expect(rows.map((r) => r.cp)).toEqual(expected)
      }
      client.close()
    } else {
      // search_text() also folds, and turns other characters into spaces (ASCII punctuation, some marks): only its
      // CJK step leaves 'a X b' of 'aXb'.
      const rows = await (t.db as PgDb).pg.read(async (s) =>
        s.execute<{ cp: number }>(
          sql`select cp from generate_series(128, 205743) cp where (cp < 55296 or cp > 57343) and search_text('a' || chr(cp) || 'b') ~ '^a . b$' order by cp`,
        ),
      )
      expect([...rows].map((r) => Number(r.cp))).toEqual(expected)
    }
  })

  // The words go through the index's own expression, so the planner can take the GIN index (seq scans off,
  // so that a small table's cheaper choice does not hide a missing index).
  if (dialect === 'pg') test('Postgres looks the words up in the GIN index on search_text(text)', async () => {
    const { a, dialogId } = await t.pair()
    await send(a, dialogId, 'indexed café')
    const plan = await (t.db as PgDb).pg.tx(async (s) => {
      await s.execute(sql`set local enable_seqscan = off`)
      const m = s.t.messages
      return s.execute<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(sql`explain (format json) select ${m.id} from ${m} where ${matchers.pg(['cafe', 'ind'], m.id, m)}`)
    })
    const indexes: string[] = []
    const walk = (node: PlanNode): void => {
      if (node['Index Name']) indexes.push(node['Index Name'])
      for (const child of node.Plans ?? []) walk(child)
    }
    walk(plan[0]!['QUERY PLAN'][0].Plan)
    expect(indexes).toContain('messages_text_fts_idx')
  })

  test('validation: q 1–200 characters, limit 1–100, ids canonical', async () => {
    const { a } = await t.pair()
    expectContractError(await t.call('GET', '/search/messages', { token: a.access_token }), 422, 'validation_failed', 'q')
    expectContractError(await search(a, { q: '' }), 422, 'validation_failed', 'q')
    expectContractError(await search(a, { q: 'x'.repeat(201) }), 422, 'validation_failed', 'q')
    // Characters, not UTF-16 units: 200 emoji are a query, 201 are not.
    expect((await search(a, { q: '😀'.repeat(200) })).status).toBe(200)
    expectContractError(await search(a, { q: '😀'.repeat(201) }), 422, 'validation_failed', 'q')
    expectContractError(await search(a, { q: 'x', limit: 0 }), 422, 'validation_failed', 'limit')
    expectContractError(await search(a, { q: 'x', limit: 101 }), 422, 'validation_failed', 'limit')
    expectContractError(await search(a, { q: 'x', before_id: 'abc' }), 422, 'validation_failed', 'before_id')
    expect((await t.call('GET', '/search/messages?q=x')).status).toBe(401)
  })
})
