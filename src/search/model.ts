import { t } from 'elysia'
import { MessageSchema } from '../messages/model'
import { ParamId } from '../shared/ids'

export const SearchQuery = t.Object({
  q: t.String({ minLength: 1, maxLength: 200 }),
  dialog_id: t.Optional(ParamId('dialog_id')),
  limit: t.Optional(t.Integer({ minimum: 1, maximum: 100 })),
  before_id: t.Optional(ParamId('before_id')),
})

export const SearchPage = t.Object({ messages: t.Array(MessageSchema), has_more: t.Boolean() })

/** At most this many words of a query are used: each one is an index lookup. */
export const MAX_WORDS = 16

/**
 * The words of a query: runs of letters, digits and combining marks, lower-cased. Everything else —
 * quotes, `*`, `:`, `&`, `!`, parentheses — separates words, so user input never reaches a query
 * language as syntax; `NEAR`, `OR` or `AND` are words like any other (the matchers quote every word).
 */
export function wordsOf(q: string): string[] {
  return [...new Set((q.toLowerCase().match(/[\p{L}\p{N}\p{M}]+/gu) ?? []).slice(0, MAX_WORDS))]
}
