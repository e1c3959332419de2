import { t } from 'elysia'
import { MessageSchema } from '../messages/model'
import { invalidField } from '../errors'
import { ParamId } from '../shared/ids'
import { chars } from '../shared/schema'
import { charCount } from '../shared/text'

/** `q` is 1–200 characters (code points, as the contract counts them; checkQuery), so up to 400 UTF-16 units. */
export const MAX_QUERY_CHARS = 200

export const SearchQuery = t.Object({
  q: t.String({ minLength: 1, ...chars(MAX_QUERY_CHARS) }),
  dialog_id: t.Optional(ParamId('dialog_id')),
  limit: t.Optional(t.Integer({ minimum: 1, maximum: 100 })),
  before_id: t.Optional(ParamId('before_id')),
})

export function checkQuery(q: string): string {
  if (charCount(q, MAX_QUERY_CHARS) > MAX_QUERY_CHARS) throw invalidField('q', `at most ${MAX_QUERY_CHARS} characters`)
  return q
}

export const SearchPage = t.Object({ messages: t.Array(MessageSchema), has_more: t.Boolean() })

/**
 * The words of a query: runs of letters, digits and combining marks, lower-cased. Everything else —
 * quotes, `*`, `:`, `&`, `!`, parentheses — separates words, so user input never reaches a query
 * language as syntax; `NEAR`, `OR` or `AND` are words like any other (the matchers quote every word).
 */
export function wordsOf(q: string): string[] {
  // Every word counts (the contract's rule); `q`'s 200 characters bound how many there are.
  return [...new Set(q.toLowerCase().match(/[\p{L}\p{N}\p{M}]+/gu) ?? [])]
}
