import { Elysia } from 'elysia'
import { authGuard } from '../auth/guard'
import type { AuthService } from '../auth/service'
import { checkQuery, SearchPage, SearchQuery } from './model'
import type { SearchService } from './service'

export const searchRoutes = (auth: AuthService, search: SearchService) =>
  new Elysia({ prefix: '/search', tags: ['search'] }).use(authGuard(auth)).get(
    '/messages',
    ({ principal, query }) =>
      search.messages(principal.userId, checkQuery(query.q), { dialogId: query.dialog_id, beforeId: query.before_id, limit: query.limit ?? 20 }),
    { auth: true, query: SearchQuery, response: { 200: SearchPage } },
  )
