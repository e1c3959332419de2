import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import postgres from 'postgres'
import { createApp, createCore } from '../src/app'
import { openDatabase, type Db } from '../src/storage/database'
import { testConfig, uniqueName } from './support/app'
import { dialects, freshDatabase, type FreshDatabase } from './support/databases'

/**
 * The read path's queries, as the stores really issue them (recorded from drizzle with their parameters
 * while the REST routes answer), are index walks: their plans have no full scan of a table and no sort
 * (SQLite: no `SCAN <table>` or temp B-tree; Postgres, asked with seq scans, bitmap scans and sorts disabled
 * so that a tiny table's cheaper choice does not hide a missing index: no Seq Scan and no Sort), except for
 * the sorts named below; and
 * no walk over a whole dialog's messages: an index search of messages is bounded by seq, version or id,
 * unless it is a page's ordered walk that its LIMIT stops.
 */
const ALLOWED_SORTS: { why: string; sql: RegExp }[] = [
  {
    // dialogs.last_activity_at is not indexed: every batch of sends moves it (see the schema).
    why: "a user's dialogs ordered by their last activity: the user's memberships, walked by index, sorted",
    sql: /from "dialog_members" inner join "dialogs" .* order by "dialogs"\."last_activity_at" desc/,
  },
  { why: "a page's reactions in the order they came: the page's few rows, found by index, sorted", sql: /from "message_reactions" where .* order by/ },
]

type Recorded = { sql: string; params: unknown[] }

/** A page read in index order and cut by its LIMIT: walking the dialog's index from one end is what it should do. */
const PAGE_WALK = /order by "messages"\."(seq|version)" (asc|desc) limit/
/** The bound of an index search of messages, as each planner spells it. */
const BOUNDED = /seq|version|rowid|\bid\b/

describe.each(dialects)('query plans of the read path on %s', (dialect) => {
  let fresh: FreshDatabase
  let db: Db
  let recording = false
  const recorded = new Map<string, Recorded>()
  let call: (method: string, path: string, token?: string, body?: unknown) => Promise<any>
  let me: { access_token: string; user: { id: number } }
  let dialogId = 0
  let messageIds: number[] = []

  beforeAll(async () => {
    fresh = await freshDatabase(dialect)
    db = await openDatabase(fresh.target, { onQuery: (sql, params) => void (recording && recorded.set(sql, { sql, params })) })
    const app = createApp(createCore({ ...testConfig(), database: fresh.target }, db))
    call = async (method, path, token, body) => {
      const res = await app.handle(
        new Request(`http://localhost${path}`, {
          method,
          headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
          body: body === undefined ? undefined : JSON.stringify(body),
        }),
      )
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`)
      return res.status === 204 ? undefined : res.json()
    }
    const register = () => call('POST', '/auth/register', undefined, { username: uniqueName(), password: 'correct horse battery' })
    me = await register()
    for (let i = 0; i < 3; i++) {
      const peer = await register()
      dialogId = (await call('POST', '/dialogs', me.access_token, { peer_user_id: peer.user.id })).id
      messageIds = []
      for (let k = 0; k < 12; k++) {
        const from = k % 2 ? me : peer
        messageIds.push((await call('POST', `/dialogs/${dialogId}/messages`, from.access_token, { client_msg_id: `m${k}`, type: 'text', text: `word ${k}` })).id)
      }
      await call('POST', `/dialogs/${dialogId}/read_up_to`, me.access_token, { last_read_message_id: messageIds[5] })
    }
    await call('PUT', `/dialogs/${dialogId}/messages/${messageIds[3]}/reactions/${encodeURIComponent('👍')}`, me.access_token)

    // What an app does on opening, and each page and catch-up it may ask for; a login's first request reads its session.
    const login = await call('POST', '/auth/login', undefined, { username: (await call('GET', '/me', me.access_token)).username, password: 'correct horse battery' })
    recording = true
    const token = login.access_token
    const at = new Date().toISOString()
    for (const path of [
      '/me',
      '/dialogs',
      `/dialogs?before=${encodeURIComponent(at)}`,
      // The cursor of a page ending inside a tie of activity times: (before, before_id).
      `/dialogs?limit=2&before=${encodeURIComponent(at)}&before_id=${dialogId}`,
      `/dialogs/${dialogId}`,
      `/dialogs/${dialogId}/messages`,
      `/dialogs/${dialogId}/messages?limit=5&before_id=${messageIds[8]}`,
      `/dialogs/${dialogId}/messages?limit=5&after_id=${messageIds[2]}`,
      `/dialogs/${dialogId}/messages?limit=5&before=${encodeURIComponent(at)}`,
      `/dialogs/${dialogId}/messages?changed_after=3`,
    ])
      await call('GET', path, token)
    recording = false
  }, 30_000)
  afterAll(async () => {
    await db.close()
    await fresh.drop()
  })

  /** What is wrong with each statement's plan: a full scan, or a sort not on the list above. */
  async function problems(): Promise<string[]> {
    const found: string[] = []
    const allowedSort = (sql: string) => ALLOWED_SORTS.some((a) => a.sql.test(sql))
    if (fresh.target.dialect === 'sqlite') {
      const client = new Database(fresh.target.path, { readonly: true })
      try {
        for (const { sql, params } of recorded.values()) {
          const plan = client.query<{ detail: string }, never[]>(`EXPLAIN QUERY PLAN ${sql}`).all(...(params as never[]))
          for (const { detail } of plan) {
            if (/^SCAN (?!CONSTANT ROW)/.test(detail)) found.push(`${detail}\n  in ${sql}`)
            const search = /^SEARCH \S+ USING (?:COVERING )?INDEX messages_\w+ \(([^)]*)\)/.exec(detail)
            if (search && !BOUNDED.test(search[1]!) && !PAGE_WALK.test(sql)) found.push(`${detail}: the whole dialog\n  in ${sql}`)
            if (/TEMP B-TREE/.test(detail) && !allowedSort(sql)) found.push(`${detail}\n  in ${sql}`)
          }
        }
      } finally {
        client.close()
      }
      return found
    }
    const client = postgres(fresh.target.url, { max: 1, onnotice: () => {} })
    try {
      for (const { sql, params } of recorded.values()) {
        const [row] = await client.begin(async (tx) => {
          // Each at a prohibitive cost, so that a tiny table's cheaper choice does not hide a missing index.
          await tx`set local enable_seqscan = off`
          await tx`set local enable_bitmapscan = off`
          await tx`set local enable_sort = off`
          return tx.unsafe(`explain (format json) ${sql}`, params as never[])
        })
        const walk = (node: any): void => {
          if (node['Node Type'] === 'Seq Scan') found.push(`Seq Scan on ${node['Relation Name']}\n  in ${sql}`)
          if (/Sort/.test(node['Node Type']) && !allowedSort(sql)) found.push(`${node['Node Type']} by ${node['Sort Key']}\n  in ${sql}`)
          const index: string | undefined = node['Index Name']
          if (index?.startsWith('messages_') && !BOUNDED.test(node['Index Cond'] ?? '') && !PAGE_WALK.test(sql))
            found.push(`${node['Node Type']} using ${index} (${node['Index Cond']}): the whole dialog\n  in ${sql}`)
          for (const child of node.Plans ?? []) walk(child)
        }
        walk((row as any)['QUERY PLAN'][0].Plan)
      }
    } finally {
      await client.end()
    }
    return found
  }

  test('every statement of the dialog list, a dialog, history pages and catch-up walks an index; sorts only where named', async () => {
    const statements = [...recorded.keys()]
    // The queries this is about were recorded: the list, the page, the watermarks, the session.
    expect(statements.some((s) => s.includes('from "dialog_members" inner join "dialogs"'))).toBe(true)
    expect(statements.some((s) => s.includes('from "dialog_members" inner join "dialogs"') && /"dialogs"\."id" </.test(s))).toBe(true)
    expect(statements.some((s) => /from "messages" where .*"seq"/.test(s))).toBe(true)
    expect(statements.some((s) => s.includes('from "sessions"'))).toBe(true)
    expect(statements.some((s) => s.includes('from "message_reactions"'))).toBe(true)
    expect(await problems()).toEqual([])
  })
})
