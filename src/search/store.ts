import { and, desc, eq, inArray, lt, sql } from 'drizzle-orm'
import { messageColumns } from '../messages/history'
import type { MessageRecord } from '../messages/model'
import { rows, type Routine, type Scope } from '../storage/database'
import { indexText } from './fts.sqlite'

/**
 * The text predicate of each dialect, for words from `wordsOf` (letters, digits and marks only), every
 * one quoted and matched as a prefix, all of them required. SQLite: the FTS5 table `messages_fts`
 * (unicode61 with diacritics removed, over each text as indexText spaces it: a CJK character is a word
 * of its own, src/search/fts.sqlite.ts). Postgres: the GIN index on to_tsvector('simple', search_text(text)),
 * where search_text() (drizzle/pg/0010, 0011) folds and splits the text as unicode61 does and spaces CJK
 * characters alike; the expression must be the index's, word for word, and each word of q goes through it too.
 * So on both a word of q holding CJK characters (東京, 東京tower) is the phrase of its parts, in order and
 * adjacent, the last one a prefix (a CJK character is a whole word: only itself begins with it).
 */
export const matchers = {
  sqlite: (words: string[], id: unknown) =>
    sql`${id} in (select rowid from messages_fts where messages_fts match ${words.map((w) => `"${indexText(w)}"*`).join(' AND ')})`,
  // The matching ids as an array computed once (an InitPlan, from the GIN index): as a plain predicate,
  // Postgres may instead walk the id index backwards and compute to_tsvector row by row until the page
  // is full — seconds over a million messages when the words are rare in the caller's dialogs. The query
  // is one InitPlan too: its words are folded once, not again for each row a recheck reads. A word that folds
  // into several (a mark SQLite splits on: s̶t̶) is their phrase, only the last one a prefix, as FTS5 reads it.
  pg: (words: string[], id: unknown, table: unknown) =>
    sql`${id} = any(array(select s.id from ${table} s where to_tsvector('simple', search_text(s.text)) @@ (select to_tsquery('simple', ${sql.join(
      words.map((w) => sql`'''' || regexp_replace(trim(search_text(${w})), ' +', ''' <-> ''', 'g') || ''':*'`),
      sql` || ' & ' || `,
    )}))))`,
}

export interface SearchInput {
  userId: number
  words: string[]
  dialogId?: number
  beforeId?: number
  limit: number
}

/** The caller's messages matching every word, newest first, strictly before `beforeId`; one more than `limit` tells has_more. */
export function* searchMessages({ db, t }: Scope, dialect: 'sqlite' | 'pg', input: SearchInput): Routine<MessageRecord[]> {
  const m = t.messages
  const me = t.dialogMembers
  const filters = [
    dialect === 'sqlite' ? matchers.sqlite(input.words, m.id) : matchers.pg(input.words, m.id, m),
    eq(m.deleted, false),
  ]
  if (input.dialogId !== undefined) filters.push(eq(m.dialogId, input.dialogId))
  if (input.beforeId !== undefined) filters.push(lt(m.id, input.beforeId))
  return yield* rows(
    db
      .select(messageColumns(t))
      .from(m)
      .innerJoin(me, and(eq(me.dialogId, m.dialogId), eq(me.userId, input.userId)))
      .where(and(...filters))
      .orderBy(desc(m.id))
      .limit(input.limit + 1),
  )
}

/** Both members' watermarks of these dialogs, for the messages' status. */
export function* membersOf({ db, t }: Scope, dialogIds: number[]) {
  if (dialogIds.length === 0) return []
  return yield* rows(
    db
      .select({
        dialogId: t.dialogMembers.dialogId,
        userId: t.dialogMembers.userId,
        lastReadMessageId: t.dialogMembers.lastReadMessageId,
        lastDeliveredMessageId: t.dialogMembers.lastDeliveredMessageId,
      })
      .from(t.dialogMembers)
      .where(inArray(t.dialogMembers.dialogId, dialogIds)),
  )
}
