import { t } from 'elysia'
import { USERNAME_PATTERN, UserSchema } from '../users/model'

export const Credentials = t.Object({
  username: t.String({ pattern: USERNAME_PATTERN, error: 'username: 3–32 characters of A-Z a-z 0-9 _ . -' }),
  password: t.String({ minLength: 8, maxLength: 256, error: 'password: 8–256 characters' }),
})

export const RefreshBody = t.Object({
  refresh_token: t.String({ minLength: 1, maxLength: 4096 }),
})

export const TokenPair = t.Object({
  user: UserSchema,
  access_token: t.String(),
  refresh_token: t.String(),
  token_type: t.Literal('Bearer'),
  expires_in: t.Integer(),
})
export type TokenPairDto = typeof TokenPair.static

/** What an access token proves. */
export interface Principal {
  userId: number
  sessionId: string
}
