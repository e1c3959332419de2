import { Elysia } from 'elysia'
import { authGuard } from '../auth/guard'
import type { AuthService } from '../auth/service'
import { DialogParams } from '../dialogs/model'
import { invalidField } from '../errors'
import { jsonResponse } from '../http/json-response'
import type { UserLimits } from '../limits/user-limits'
import { parseInstant, parseUpperBound } from '../shared/time'
import { EditBody, HistoryPage, HistoryQuery, MessageParams, MessageSchema, ReactionParams, ReadState, ReadUpToBody, SendBody } from './model'
import type { MessageService } from './service'
import type { HistoryCursor } from './history'

function cursorOf(query: typeof HistoryQuery.static): HistoryCursor | { changedAfter: number } {
  const given = (['before', 'before_id', 'after_id', 'changed_after'] as const).filter((k) => query[k] !== undefined)
  if (given.length > 1) throw invalidField(given[1]!, 'give at most one of before, before_id, after_id, changed_after')
  if (query.changed_after !== undefined) return { changedAfter: query.changed_after }
  if (query.before !== undefined) return { before: parseUpperBound('before', query.before) }
  if (query.before_id !== undefined) return { beforeId: query.before_id }
  if (query.after_id !== undefined) return { afterId: query.after_id }
  return { newest: true }
}

/**
 * A page's JSON, kept beside the page object: the service hands out the same object again while its dialog
 * is unchanged (MessageService.history), and then its text is not built again.
 */
const serialized = new WeakMap<object, string>()
function pageResponse(page: typeof HistoryPage.static): Response {
  let text = serialized.get(page)
  if (text === undefined) serialized.set(page, (text = JSON.stringify(page)))
  return jsonResponse(text)
}

export const messageRoutes = (auth: AuthService, messages: MessageService, limits: UserLimits) => {
  // Edits, deletions and reactions are writes too: they share the sender's bucket (REST and WebSocket).
  return new Elysia({ prefix: '/dialogs/:dialog_id', tags: ['messages'] })
    .use(authGuard(auth))
    .get(
      '/messages',
      async ({ principal, params, query }) =>
        pageResponse(await messages.history(principal.userId, params.dialog_id, cursorOf(query), query.limit ?? 30)),
      { auth: true, params: DialogParams, query: HistoryQuery, response: { 200: HistoryPage } },
    )
    .post(
      '/messages',
      async ({ principal, params, body, set }) => {
        limits.takeSend(principal.userId)
        const { created, message } = await messages.send(principal.userId, {
          dialogId: params.dialog_id,
          clientMsgId: body.client_msg_id,
          type: body.type,
          text: body.text,
          attachmentId: body.attachment_id,
        })
        set.status = created ? 201 : 200
        return message
      },
      { auth: true, params: DialogParams, body: SendBody, response: { 200: MessageSchema, 201: MessageSchema } },
    )
    .post(
      '/read_up_to',
      ({ principal, params, body }) => {
        // The REST form of message:read, which draws on the same bucket.
        limits.takeSend(principal.userId)
        return messages.readUpTo(
          principal.userId,
          params.dialog_id,
          body.last_read_message_id,
          body.read_at === undefined ? new Date() : parseInstant('read_at', body.read_at),
        )
      },
      { auth: true, params: DialogParams, body: ReadUpToBody, response: { 200: ReadState } },
    )
    .patch(
      '/messages/:message_id',
      ({ principal, params, body }) => {
        limits.takeSend(principal.userId)
        return messages.edit(principal.userId, params.dialog_id, params.message_id, body.text)
      },
      { auth: true, params: MessageParams, body: EditBody, response: { 200: MessageSchema } },
    )
    .delete(
      '/messages/:message_id',
      async ({ principal, params, set }) => {
        limits.takeSend(principal.userId)
        await messages.remove(principal.userId, params.dialog_id, params.message_id)
        set.status = 204
      },
      { auth: true, params: MessageParams },
    )
    .put(
      '/messages/:message_id/reactions/:emoji',
      async ({ principal, params, set }) => {
        limits.takeSend(principal.userId)
        await messages.react(principal.userId, params.dialog_id, params.message_id, params.emoji, true)
        set.status = 204
      },
      { auth: true, params: ReactionParams },
    )
    .delete(
      '/messages/:message_id/reactions/:emoji',
      async ({ principal, params, set }) => {
        limits.takeSend(principal.userId)
        await messages.react(principal.userId, params.dialog_id, params.message_id, params.emoji, false)
        set.status = 204
      },
      { auth: true, params: ReactionParams },
    )
}
