import { t } from 'elysia'
import { Int } from '../shared/schema'

export const USERNAME_PATTERN = '^[A-Za-z0-9_.-]{3,32}$'

/**
 * Usernames are ASCII, and compare case-insensitively by ASCII case only: `toLowerCase` would also fold
 * the Kelvin sign (U+212A) into `k`, letting `\u212Axyz` reach `kxyz`.
 */
export const usernameKey = (username: string) => username.replace(/[A-Z]+/g, (upper) => upper.toLowerCase())

export const UserSchema = t.Object({
  id: Int(),
  username: t.String(),
  created_at: t.String({ format: 'date-time' }),
})
export type UserDto = typeof UserSchema.static

export const UserSearchQuery = t.Object({
  username: t.Optional(t.String({ minLength: 1, maxLength: 64 })),
  q: t.Optional(t.String({ minLength: 1, maxLength: 64 })),
  limit: t.Optional(t.Integer({ minimum: 1, maximum: 50, default: 20 })),
})

export interface UserRecord {
  id: number
  username: string
  createdAt: Date
  lastSeenAt: Date | null
}

export const toUserDto = (u: UserRecord): UserDto => ({
  id: u.id,
  username: u.username,
  created_at: u.createdAt.toISOString(),
})
