import type { Membership } from '../dialogs/membership'
import { reactionsOfMany } from '../messages/changes'
import { statusFor, toMessageDto, type MessageDto } from '../messages/model'
import type { Db } from '../storage/database'
import { wordsOf } from './model'
import { membersOf, searchMessages } from './store'

export class SearchService {
  constructor(
    private readonly db: Db,
    private readonly membership: Membership,
  ) {}

  /** The caller's messages (or one dialog's) holding every word of `q`, each also as a prefix; newest first. */
  async messages(
    userId: number,
    q: string,
    page: { dialogId?: number; beforeId?: number; limit: number },
  ): Promise<{ messages: MessageDto[]; has_more: boolean }> {
    if (page.dialogId !== undefined) await this.membership.require(page.dialogId, userId)
    const words = wordsOf(q)
    // A word of marks alone holds nothing either index keeps (SQLite drops or splits on them), so it is in no message.
    if (words.length === 0 || words.some((w) => !/[\p{L}\p{N}]/u.test(w))) return { messages: [], has_more: false }
    const dialect = this.db.dialect
    const { found, marks, reactions } = await this.db.read(function* (s) {
      const found = yield* searchMessages(s, dialect, { userId, words, ...page })
      const shown = found.slice(0, page.limit)
      return {
        found,
        marks: yield* membersOf(s, [...new Set(shown.map((m) => m.dialogId))]),
        reactions: yield* reactionsOfMany(
          s,
          shown.map((m) => m.id),
        ),
      }
    })
    const shown = found.slice(0, page.limit)
    return {
      messages: shown.map((m) =>
        toMessageDto(
          m,
          statusFor(
            m.id,
            marks.find((w) => w.dialogId === m.dialogId && w.userId !== m.senderId),
          ),
          reactions.get(m.id),
        ),
      ),
      has_more: found.length > page.limit,
    }
  }
}
