/**
 * SQLite's full-text index takes a batch's new messages in one statement, in the batch's transaction:
 * FTS5 costs far less fed many rows by one statement than one row per trigger call (measured: 22 k
 * against 55 k inserts per second at 170 per transaction, synchronous=FULL). Ids of one batch are
 * consecutive: it inserts under BEGIN IMMEDIATE, so no other writer takes an id in between. An edit is
 * indexed by its transaction (indexEdited); triggers take a message's old words out on an edit or a delete
 * (drizzle/sqlite/0009).
 *
 * What the index holds is a message's text with its CJK characters spaced apart (indexText): a statement
 * passes that text from here, as SQLite has no regular expressions and a trigger cannot call us.
 * Postgres does the same in SQL (search_text(), drizzle/pg/0011); both take the same characters, CJK_CHARS.
 */
import type { Database as SqliteDriver } from 'bun:sqlite'
import type { Scope } from '../storage/database'

/**
 * Han, Hiragana and Katakana (with their iteration marks, the ideographic number zero and the halfwidth
 * forms): written without spaces, so unicode61 (like Postgres's parser) would read a whole run of them as one
 * word, and `東京` would not be found in `私は東京に住んでいます`. Each one is a word of its own in the index,
 * and a word of q holding some is the phrase of its parts (src/search/store.ts). Hangul is written with spaces.
 * The same ranges are in drizzle/sqlite/0009 and drizzle/pg/0011 (tests/search.test.ts compares them).
 */
export const CJK_CHARS =
  '\u3005-\u3007\u3021-\u3029\u3031-\u3035\u3038-\u303c\u3041-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\u{1aff0}-\u{1b16f}\u{20000}-\u{323af}'

const CJK = new RegExp(`[${CJK_CHARS}]`, 'u')
const EACH_CJK = new RegExp(`[${CJK_CHARS}]`, 'gu')

/** Combining marks that unicode61 drops or splits at as written, and search_text() (Postgres) does likewise before composing. */
const COMBINING = /[\u0300-\u036f]/

/**
 * The text as the index reads it: composed (NFC), as Postgres's search_text() composes it, so canonically
 * equivalent texts (が as か + U+3099, the way macOS may send it; a compatibility ideograph) are one, unless
 * it holds marks of the combining block, which both indexes take as written; and every CJK character spaced
 * apart from its neighbours.
 */
export const indexText = (text: string): string => {
  const composed = COMBINING.test(text) ? text : text.normalize('NFC')
  return CJK.test(composed) ? composed.replace(EACH_CJK, ' $& ') : composed
}

/**
 * A batch's new messages, ids ?1 to ?2, into the index. ?3 is null, or a JSON array of the texts that
 * indexText changes (by id − ?1; null where it changes nothing): most batches hold no CJK and nothing
 * decomposed, and then the statement reads every text from the rows, as it did before there was ?3.
 */
export const INDEX_NEW_MESSAGES =
  'insert into messages_fts(rowid, text) select id, coalesce(?3 ->> (id - ?1), text) from messages where id between ?1 and ?2'

/** The third parameter of INDEX_NEW_MESSAGES for a batch whose first new message's id is `firstId`. */
export function changedTexts(firstId: number, created: readonly { id: number; text: string }[]): string | null {
  let changed: (string | null)[] | undefined
  for (const m of created) {
    const indexed = indexText(m.text)
    if (indexed === m.text) continue
    changed ??= []
    while (changed.length < m.id - firstId) changed.push(null)
    changed[m.id - firstId] = indexed
  }
  return changed ? JSON.stringify(changed) : null
}

/**
 * SQLite: an edited message's new text into the index, in the edit's transaction (the update trigger has
 * taken its old words out). Postgres indexes an expression of the row, and there this does nothing.
 */
export function indexEdited(s: Scope, id: number, text: string): void {
  s.memo?.('messages_fts.indexEdited', (_db, _t, client) => client.query<unknown, [number, string]>('insert into messages_fts(rowid, text) values (?1, ?2)')).run(
    id,
    indexText(text),
  )
}

/**
 * Migration 0011 (drizzle/sqlite): a message indexed before indexText composed its text is indexed again
 * composed. Only texts NFC changes (and that indexText composes: no mark of the combining block) differ from
 * what 0009 indexed; a deleted message's text is empty.
 */
export function reindexComposed(client: SqliteDriver): void {
  const texts = client.query<{ id: number; text: string }, [string]>('select id, text from messages where text glob ?').all('*[^\u0001-\u007f]*')
  const remove = client.query<unknown, [number]>('delete from messages_fts where rowid = ?')
  const insert = client.query<unknown, [number, string]>('insert into messages_fts(rowid, text) values (?, ?)')
  for (const { id, text } of texts) {
    if (COMBINING.test(text) || text.normalize('NFC') === text) continue
    remove.run(id)
    insert.run(id, indexText(text))
  }
}
