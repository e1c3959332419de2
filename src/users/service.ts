import { invalidField, unauthorized } from '../errors'
import type { Db } from '../storage/database'
import { toUserDto, type UserDto } from './model'
import { userById, usersByPrefix, userWithHash } from './store'

export class UserService {
  constructor(private readonly db: Db) {}

  async me(userId: number): Promise<UserDto> {
    const user = await this.db.read((s) => userById(s, userId))
    if (!user) throw unauthorized('user no longer exists')
    return toUserDto(user)
  }

  /** `username`: exact, case-insensitive (0 or 1 result); `q`: prefix search, up to `limit`. */
  async find(query: { username?: string; q?: string; limit?: number }): Promise<{ users: UserDto[] }> {
    if (query.username !== undefined) {
      const user = await this.db.read((s) => userWithHash(s, query.username!))
      return { users: user ? [toUserDto(user)] : [] }
    }
    if (query.q === undefined) throw invalidField('q', 'give username=<exact> or q=<prefix>')
    const prefix = query.q
    const dialect = this.db.dialect
    const found = await this.db.read((s) => usersByPrefix(s, dialect, prefix, query.limit ?? 20))
    return { users: found.map(toUserDto) }
  }
}
