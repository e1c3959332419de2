import { Elysia } from 'elysia'
import { AppError } from '../errors'
import { addressOf } from '../http/client-address'
import { KeyedRateLimit } from '../limits/token-bucket'
import { Credentials, LoginBody, RefreshBody, TokenPair } from './model'
import type { AuthService } from './service'

export interface AuthRateLimit {
  burst: number
  perSec: number
}

/** Register, login, refresh, logout; attempts are rate-limited per client address. */
export const authRoutes = (auth: AuthService, limit: AuthRateLimit) => {
  const attempts = new KeyedRateLimit<string>(limit.burst, limit.perSec)
  return new Elysia({ prefix: '/auth', tags: ['auth'] })
    // Before validation (transform runs ahead of it): an attempt failing validation is an attempt too, so no
    // flood of them goes unlimited. (A body that is no JSON object is refused 400 earlier, by the edge's parser:
    // it costs a parse, never a password check.)
    .onTransform(({ request }) => {
      const wait = attempts.take(addressOf(request))
      if (wait > 0) throw new AppError('rate_limited', 'too many attempts; retry later', undefined, wait)
    })
    .post(
      '/register',
      async ({ body, set }) => {
        set.status = 201
        return auth.register(body.username, body.password)
      },
      { body: Credentials, response: { 201: TokenPair } },
    )
    .post('/login', ({ body }) => auth.login(body.username, body.password), {
      body: LoginBody,
      response: { 200: TokenPair },
    })
    .post('/refresh', ({ body }) => auth.refresh(body.refresh_token), {
      body: RefreshBody,
      response: { 200: TokenPair },
    })
    .post(
      '/logout',
      async ({ body, set }) => {
        await auth.logout(body.refresh_token)
        set.status = 204
      },
      { body: RefreshBody },
    )
}
