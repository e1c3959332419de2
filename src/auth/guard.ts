import { Elysia } from 'elysia'
import type { AuthService } from './service'

const bearer = (header: string | undefined) => {
  const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null
  return match?.[1]
}

/** Routes that say `{ auth: true }` get the caller's `principal`, or the request ends in 401. */
export const authGuard = (auth: AuthService) =>
  new Elysia({ name: 'auth-guard', seed: auth }).macro({
    auth: {
      async resolve({ headers }) {
        return { principal: await auth.authenticate(bearer(headers.authorization)) }
      },
    },
  })
