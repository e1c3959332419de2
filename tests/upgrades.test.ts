import { afterAll, describe, expect, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import postgres from 'postgres'
import { EMBEDDED } from '../src/storage/embedded-migrations'
import { createTestApp, type Session, type TestApp } from './support/app'
import { dialects, freshDatabase, type Dialect, type FreshDatabase } from './support/databases'

const dropped: FreshDatabase[] = []
afterAll(() => Promise.all(dropped.map((d) => d.drop())))

const statementsOf = (dialect: Dialect, tag: string) =>
  EMBEDDED[dialect].files[tag]!.split('--> statement-breakpoint').filter((s) => s.trim() !== '')
const tagsOf = (dialect: Dialect) => EMBEDDED[dialect].journal.entries.map((e) => e.tag)

const PASSWORD = 'correct horse battery'

// Texts an older release stored as clients sent them: a kana word typed decomposed (が as か + U+3099, the way
// macOS may send it), plain Latin, CJK.
const DECOMPOSED = 'か\u3099っこう に いく'
const PLAIN = 'hello upgrade world'
const CJK = '私は東京に住んでいます'

/**
 * A database as the release before `upTo` (a migration tag) left it, holding two users, their dialog and three
 * messages, indexed for search as that release's writer indexed them.
 */
async function oldDatabase(dialect: Dialect, upTo: string): Promise<FreshDatabase> {
  const fresh = await freshDatabase(dialect)
  dropped.push(fresh)
  const tags = tagsOf(dialect)
  const before = tags.indexOf(upTo)
  expect(before).toBeGreaterThan(0)
  const hash = await Bun.password.hash(PASSWORD, { algorithm: 'argon2id', memoryCost: 256, timeCost: 1 })
  const now = Date.now()
  const texts = [DECOMPOSED, PLAIN, CJK]
  if (fresh.target.dialect === 'sqlite') {
    const client = new Database(fresh.target.path)
    client.exec('PRAGMA journal_mode = WAL')
    client.exec('CREATE TABLE IF NOT EXISTS "__drizzle_migrations" (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at numeric)')
    for (const entry of EMBEDDED.sqlite.journal.entries.slice(0, before)) {
      for (const s of statementsOf('sqlite', entry.tag)) client.exec(s)
      client.query('INSERT INTO "__drizzle_migrations" ("hash", "created_at") VALUES (?, ?)').run('old', entry.when)
    }
    for (const name of ['olda', 'oldb'])
      client.query('insert into users (username, username_lower, password_hash, created_at) values (?, ?, ?, ?)').run(name, name, hash, now)
    client.query('insert into dialogs (user_low, user_high, created_at, last_seq, last_message_id, last_activity_at, version) values (1, 2, ?, 3, 3, ?, 3)').run(now, now)
    client.exec('insert into dialog_members (dialog_id, user_id, peer_id) values (1, 1, 2), (1, 2, 1)')
    texts.forEach((text, i) =>
      client
        .query("insert into messages (dialog_id, seq, sender_id, client_msg_id, type, text, created_at, version) values (1, ?, 1, ?, 'text', ?, ?, ?)")
        .run(i + 1, `old-${i}`, text, now + i, i + 1),
    )
    // As the writer of that release indexed them (drizzle/sqlite/0007): the text as stored.
    client.exec('insert into messages_fts(rowid, text) select id, text from messages')
    client.close()
  } else {
    const client = postgres(fresh.target.url, { max: 1, onnotice: () => {} })
    try {
      await client`create schema if not exists drizzle`
      await client`create table if not exists drizzle.__drizzle_migrations (id serial primary key, hash text not null, created_at bigint)`
      for (const entry of EMBEDDED.pg.journal.entries.slice(0, before)) {
        for (const s of statementsOf('pg', entry.tag)) await client.unsafe(s)
        await client`insert into drizzle.__drizzle_migrations (hash, created_at) values ('old', ${entry.when})`
      }
      for (const name of ['olda', 'oldb'])
        await client`insert into users (username, username_lower, password_hash, created_at) values (${name}, ${name}, ${hash}, now())`
      await client`insert into dialogs (user_low, user_high, created_at, last_seq, last_message_id, last_activity_at, version) values (1, 2, now(), 3, 3, now(), 3)`
      await client`insert into dialog_members (dialog_id, user_id, peer_id) values (1, 1, 2), (1, 2, 1)`
      for (const [i, text] of texts.entries())
        await client`insert into messages (dialog_id, seq, sender_id, client_msg_id, type, text, created_at, version) values (1, ${i + 1}, 1, ${`old-${i}`}, 'text', ${text}, now(), ${i + 1})`
    } finally {
      await client.end()
    }
  }
  return fresh
}

async function login(t: TestApp, username: string): Promise<Session> {
  const res = await t.call<Session>('POST', '/auth/login', { body: { username, password: PASSWORD } })
  expect(res.status).toBe(200)
  return res.body
}

const searchTexts = async (t: TestApp, s: Session, q: string): Promise<string[]> => {
  const res = await t.call('GET', `/search/messages?q=${encodeURIComponent(q)}`, { token: s.access_token })
  expect(res.status).toBe(200)
  return res.body.messages.map((m: { text: string }) => m.text)
}

/*
 * A database an older release left, holding data, migrates to this release with everything working as in a
 * new one. SQLite indexes a text composed since 0011 (a step in JavaScript: SQLite has no normalize());
 * Postgres's index composes each text through search_text() (drizzle/pg/0010).
 */
describe.each(dialects)('upgrades (%s)', (dialect) => {
  // Before attachments and blocks, and before search read CJK (each dialect's migration of it).
  for (const upTo of dialect === 'sqlite' ? ['0005_blocks_uploads', '0009_search_cjk'] : ['0005_blocks_uploads', '0011_search_cjk']) {
    test(`a database from the release before ${upTo}: search finds its messages as it finds new ones`, async () => {
      const fresh = await oldDatabase(dialect, upTo)
      const t = await createTestApp(dialect, {}, fresh)
      try {
        const a = await login(t, 'olda')
        // The same word, sent now, the way the same client sends it (decomposed).
        const sent = await t.call('POST', '/dialogs/1/messages', {
          token: a.access_token,
          body: { client_msg_id: 'new-1', type: 'text', text: 'か\u3099っこう again' },
        })
        expect(sent.status).toBe(201)
        expect(sent.body.seq).toBe(4)
        expect(await searchTexts(t, a, 'upgrade')).toEqual([PLAIN])
        expect(await searchTexts(t, a, '東京')).toEqual([CJK])
        // Typed composed in q: the new message is found (indexText composes it); the old one must be too.
        expect((await searchTexts(t, a, 'がっこう')).sort()).toEqual(['か\u3099っこう again', DECOMPOSED].sort())
      } finally {
        await t.close()
      }
    })
  }
})
