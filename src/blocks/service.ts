import { invalidField, notFound } from '../errors'
import type { RealtimePort } from '../realtime/port'
import type { Db } from '../storage/database'
import { toUserDto, type UserDto } from '../users/model'
import { userById } from '../users/store'
import type { BlockCache } from './cache'
import { blockedUsers, deleteBlock, insertBlock } from './store'

/** Blocking: stored, then every node's cache told (see BlockCache) before the caller is answered. */
export class BlockService {
  constructor(
    private readonly db: Db,
    readonly cache: BlockCache,
    private readonly realtime: RealtimePort,
  ) {}

  async block(userId: number, targetId: number): Promise<void> {
    await this.target(userId, targetId)
    await this.db.tx((s) => insertBlock(s, userId, targetId, new Date()))
    await this.realtime.blocksChanged(userId, targetId)
  }

  async unblock(userId: number, targetId: number): Promise<void> {
    await this.target(userId, targetId)
    await this.db.tx((s) => deleteBlock(s, userId, targetId))
    await this.realtime.blocksChanged(userId, targetId)
  }

  async list(userId: number): Promise<{ users: UserDto[] }> {
    return { users: (await this.db.read((s) => blockedUsers(s, userId))).map(toUserDto) }
  }

  private async target(userId: number, targetId: number): Promise<void> {
    if (targetId === userId) throw invalidField('user_id', 'cannot block yourself')
    if (!(await this.db.read((s) => userById(s, targetId)))) throw notFound('user')
  }
}
