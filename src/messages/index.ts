import { Elysia } from 'elysia'
import { authGuard } from '../auth/guard'
import type { AuthService } from '../auth/service'
import { DialogParams } from '../dialogs/model'
import { AppError, invalidField } from '../errors'
import { KeyedRateLimit } from '../limits/token-bucket'
import { parseInstant } from '../shared/time'
import { HistoryPage, HistoryQuery, MessageSchema, ReadState, ReadUpToBody, SendBody } from './model'
import type { MessageService } from './service'
import type { HistoryCursor } from './store'

export interface SendRateLimit {
  burst: number
  perSec: number
}

function cursorOf(query: typeof HistoryQuery.static): HistoryCursor {
  const given = (['before', 'before_id', 'after_id'] as const).filter((k) => query[k] !== undefined)
  if (given.length > 1) throw invalidField(given[1]!, 'give at most one of before, before_id, after_id')
  if (query.before !== undefined) return { before: parseInstant('before', query.before) }
  if (query.before_id !== undefined) return { beforeId: query.before_id }
  if (query.after_id !== undefined) return { afterId: query.after_id }
  return { newest: true }
}

export const messageRoutes = (auth: AuthService, messages: MessageService, limit: SendRateLimit) => {
  const sends = new KeyedRateLimit<number>(limit.burst, limit.perSec)
  return new Elysia({ prefix: '/dialogs/:dialog_id', tags: ['messages'] })
    .use(authGuard(auth))
    .get(
      '/messages',
      ({ principal, params, query }) =>
        messages.history(principal.userId, params.dialog_id, cursorOf(query), query.limit ?? 30),
      { auth: true, params: DialogParams, query: HistoryQuery, response: { 200: HistoryPage } },
    )
    .post(
      '/messages',
      async ({ principal, params, body, set }) => {
        const wait = sends.take(principal.userId)
        if (wait > 0) throw new AppError('rate_limited', 'sending too fast', undefined, wait)
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
      ({ principal, params, body }) =>
        messages.readUpTo(
          principal.userId,
          params.dialog_id,
          body.last_read_message_id,
          body.read_at === undefined ? new Date() : parseInstant('read_at', body.read_at),
        ),
      { auth: true, params: DialogParams, body: ReadUpToBody, response: { 200: ReadState } },
    )
}
