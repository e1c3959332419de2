import { invalidField, notFound } from '../errors'
import type { RealtimePort } from '../realtime/port'
import type { Db } from '../storage/database'
import { toUserDto, type UserDto } from '../users/model'
import { userById } from '../users/store'
import { dialogOfPair } from '../dialogs/store'
import type { BlockCache } from './cache'
import { blockedUsers, deleteBlock, insertBlock } from './store'

/** How long a block waits for the sends, edits and reactions between the two already under way. */
const QUIET_WAIT_MS = 5_000

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
    // What passed the check before the block (a send still in the writer's queue) lands before the answer.
    await this.cache.quiet(userId, targetId, QUIET_WAIT_MS)
    await this.showPresence(userId, targetId)
  }

  async unblock(userId: number, targetId: number): Promise<void> {
    await this.target(userId, targetId)
    await this.db.tx((s) => deleteBlock(s, userId, targetId))
    await this.realtime.blocksChanged(userId, targetId)
    await this.showPresence(userId, targetId)
  }

  async list(userId: number): Promise<{ users: UserDto[] }> {
    return { users: (await this.db.read((s) => blockedUsers(s, userId))).map(toUserDto) }
  }

  /**
   * Presence is not relayed between two users in a block, so what each last heard of the other would stay on
   * their screens: at a block each is told the other as REST now shows them (offline, never seen), at an
   * unblock that leaves no block between them, the other's presence as it is. Only between dialog peers, the
   * only users told each other's presence.
   */
  private async showPresence(a: number, b: number): Promise<void> {
    const peers = await this.db.read(function* (s) {
      if ((yield* dialogOfPair(s, a, b)) === undefined) return undefined
      return [yield* userById(s, a), yield* userById(s, b)] as const
    })
    if (!peers?.[0] || !peers[1]) return
    if (await this.cache.between(a, b)) {
      this.realtime.presenceTo(a, b, false, null)
      this.realtime.presenceTo(b, a, false, null)
      return
    }
    this.realtime.presenceTo(a, b, this.realtime.isOnline(b), peers[1].lastSeenAt)
    this.realtime.presenceTo(b, a, this.realtime.isOnline(a), peers[0].lastSeenAt)
  }

  private async target(userId: number, targetId: number): Promise<void> {
    if (targetId === userId) throw invalidField('user_id', 'cannot block yourself')
    if (!(await this.db.read((s) => userById(s, targetId)))) throw notFound('user')
  }
}
