import { Elysia } from 'elysia'
import type { Principal } from './model'
import type { AuthService } from './service'

const seeds = new WeakMap<AuthService, number>()
let seeded = 0

export const bearer = (header: string | null) => {
  const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null
  return match?.[1]
}

/**
 * Routes that say `{ auth: true }` get the caller's `principal`, or the request ends in 401.
 * The token is checked in `transform`, before the body is validated, so a caller without a valid
 * token hears 401 rather than the details of a body it may not send; `resolve` hands on that result.
 */
export const authGuard = (auth: AuthService) => {
  const principals = new WeakMap<Request, Principal>()
  // Elysia dedupes a named plugin by its seed, which it serializes: a number per service, not the service.
  let seed = seeds.get(auth)
  if (seed === undefined) seeds.set(auth, (seed = ++seeded))
  return new Elysia({ name: 'auth-guard', seed }).macro({
    auth: {
      // The OpenAPI document marks every such route as needing the bearer token.
      detail: { security: [{ bearer: [] }] },
      async transform({ request }) {
        principals.set(request, await auth.authenticate(bearer(request.headers.get('authorization'))))
      },
      resolve({ request }) {
        const principal = principals.get(request)
        if (!principal) throw new Error('auth transform did not run')
        return { principal }
      },
    },
  })
}
