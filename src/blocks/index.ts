import { Elysia, t } from 'elysia'
import { authGuard } from '../auth/guard'
import type { AuthService } from '../auth/service'
import { ParamId } from '../shared/ids'
import { UserSchema } from '../users/model'
import type { BlockService } from './service'

const UserParams = t.Object({ user_id: ParamId('user_id') })

export const blockRoutes = (auth: AuthService, blocks: BlockService) =>
  new Elysia({ tags: ['blocking'] })
    .use(authGuard(auth))
    .get('/users/blocked', ({ principal }) => blocks.list(principal.userId), {
      auth: true,
      response: { 200: t.Object({ users: t.Array(UserSchema) }) },
      detail: { summary: 'The users the caller blocks' },
    })
    .put(
      '/users/:user_id/block',
      async ({ principal, params, set }) => {
        await blocks.block(principal.userId, params.user_id)
        set.status = 204
      },
      {
        auth: true,
        params: UserParams,
        detail: {
          summary: 'Block a user (idempotent)',
          description:
            'While either of two users blocks the other, sends and new dialogs between them answer 403 `blocked`, and typing and presence are not relayed. History stays readable. 422 for yourself, 404 for an unknown user.',
        },
      },
    )
    .delete(
      '/users/:user_id/block',
      async ({ principal, params, set }) => {
        await blocks.unblock(principal.userId, params.user_id)
        set.status = 204
      },
      { auth: true, params: UserParams, detail: { summary: 'Unblock a user (idempotent)' } },
    )
