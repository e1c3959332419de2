import { Elysia } from 'elysia'
import { authGuard } from '../auth/guard'
import type { AuthService } from '../auth/service'
import { invalidField } from '../errors'
import { jsonResponse } from '../http/json-response'
import { parseInstant, parseUpperBound } from '../shared/time'
import { CreateDialogBody, DialogList, DialogListQuery, DialogParams, DialogSchema } from './model'
import type { DialogService } from './service'
import type { DialogCursor } from './store'

/**
 * `before` alone: strictly older activity (the contract). With `before_id` (beyond the contract): strictly
 * after that dialog in the list's order, (activity, id) descending, so that a page ending inside a tie
 * skips none of it. Times are kept to the millisecond, so a `before` between two milliseconds has no
 * dialog at it: then every dialog up to its millisecond comes after it, whatever `before_id` says.
 */
function cursorOf(query: typeof DialogListQuery.static): DialogCursor | undefined {
  if (query.before === undefined) {
    if (query.before_id !== undefined) throw invalidField('before_id', 'before_id needs before: together they name the last dialog of the previous page')
    return undefined
  }
  const before = parseUpperBound('before', query.before)
  if (query.before_id === undefined || before > parseInstant('before', query.before)) return { before }
  return { before, beforeId: query.before_id }
}

export const dialogRoutes = (auth: AuthService, dialogs: DialogService) =>
  new Elysia({ prefix: '/dialogs', tags: ['dialogs'] })
    .use(authGuard(auth))
    .get(
      '',
      async ({ principal, query }) =>
        jsonResponse(
          JSON.stringify({
            dialogs: await dialogs.list(principal.userId, query.limit ?? 50, cursorOf(query)),
          }),
        ),
      { auth: true, query: DialogListQuery, response: { 200: DialogList } },
    )
    .post(
      '',
      async ({ principal, body, set }) => {
        const { created, dialog } = await dialogs.open(principal.userId, body.peer_user_id)
        set.status = created ? 201 : 200
        return dialog
      },
      { auth: true, body: CreateDialogBody, response: { 200: DialogSchema, 201: DialogSchema } },
    )
    .get('/:dialog_id', ({ principal, params }) => dialogs.get(principal.userId, params.dialog_id), {
      auth: true,
      params: DialogParams,
      response: { 200: DialogSchema },
    })
