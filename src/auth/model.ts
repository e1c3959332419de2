import { t } from 'elysia'
import { chars, Int } from '../shared/schema'
import { invalidField } from '../errors'
import { charCount } from '../shared/text'
import { USERNAME_PATTERN, UserSchema } from '../users/model'

const PASSWORD_CHARS = { min: 8, max: 256 }
const PASSWORD_RULE = `${PASSWORD_CHARS.min}–${PASSWORD_CHARS.max} characters`

// The schemas bound the raw size (a character is one or two UTF-16 units); `checkPassword` counts characters
// (code points), so 256 emoji are a valid password, and login accepts every password register accepted.
const Username = t.String({ pattern: USERNAME_PATTERN, error: 'username: 3–32 characters of A-Z a-z 0-9 _ . -' })

export const Credentials = t.Object({
  username: Username,
  password: t.String({ minLength: PASSWORD_CHARS.min, ...chars(PASSWORD_CHARS.max), error: `password: ${PASSWORD_RULE}` }),
})

// A username register would refuse names no account: refused alike (422), never looked up.
export const LoginBody = t.Object({
  username: Username,
  password: t.String({ minLength: 1, ...chars(PASSWORD_CHARS.max) }),
})

export function checkPassword(password: string): void {
  // A lone surrogate is hashed as U+FFFD: two different passwords would be one.
  if (!password.isWellFormed()) throw invalidField('password', 'must be Unicode text (no lone surrogates)')
  // Counted as hashed: composed (NFC).
  const chars = charCount(password.normalize('NFC'), PASSWORD_CHARS.max)
  if (chars < PASSWORD_CHARS.min || chars > PASSWORD_CHARS.max) throw invalidField('password', PASSWORD_RULE)
}

export const RefreshBody = t.Object({
  refresh_token: t.String({ minLength: 1, maxLength: 4096 }),
})

export const TokenPair = t.Object({
  user: UserSchema,
  access_token: t.String(),
  refresh_token: t.String(),
  token_type: t.Literal('Bearer'),
  expires_in: Int(),
})
export type TokenPairDto = typeof TokenPair.static

/** What an access token proves. */
export interface Principal {
  userId: number
  sessionId: string
}
