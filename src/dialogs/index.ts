import { Elysia } from 'elysia'
import { authGuard } from '../auth/guard'
import type { AuthService } from '../auth/service'
import { jsonResponse } from '../http/json-response'
import { parseUpperBound } from '../shared/time'
import { CreateDialogBody, DialogList, DialogListQuery, DialogParams, DialogSchema } from './model'
import type { DialogService } from './service'

export const dialogRoutes = (auth: AuthService, dialogs: DialogService) =>
  new Elysia({ prefix: '/dialogs', tags: ['dialogs'] })
    .use(authGuard(auth))
    .get(
      '',
      async ({ principal, query }) =>
        jsonResponse(
          JSON.stringify({
            dialogs: await dialogs.list(
              principal.userId,
              query.limit ?? 50,
              query.before === undefined ? undefined : parseUpperBound('before', query.before),
            ),
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
