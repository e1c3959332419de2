import { Elysia, t } from 'elysia'
import type { AuthService } from '../auth/service'
import { authGuard } from '../auth/guard'
import { UserSchema, UserSearchQuery } from './model'
import type { UserService } from './service'

export const userRoutes = (auth: AuthService, users: UserService) =>
  new Elysia({ tags: ['users'] })
    .use(authGuard(auth))
    .get('/me', ({ principal }) => users.me(principal.userId), { auth: true, response: { 200: UserSchema } })
    .get('/users', ({ query }) => users.find(query), {
      auth: true,
      query: UserSearchQuery,
      response: { 200: t.Object({ users: t.Array(UserSchema) }) },
    })
