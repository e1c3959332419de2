import { dialogIdsOf, peerIdsOf } from '../dialogs/store'
import type { Db } from '../storage/database'
import type { LocalChanges } from '../storage/local-changes'
import { setLastSeen } from './store'

/** The dialogs a user's connections follow, and the peers its presence is told to. */
export interface Links {
  dialogs: number[]
  peers: number[]
}

/**
 * What the realtime hub needs from the database, so that the hub itself only publishes: whom a user's
 * connections follow, and when users were last seen (`last_seen_at`, which only moves forward).
 */
export class PresenceService {
  /** `changes` hears of every last_seen_at stored (dialog lists show it). */
  constructor(
    private readonly db: Db,
    private readonly changes: LocalChanges,
  ) {}

  links(userId: number): Promise<Links> {
    return this.db.read(function* (s) {
      return { dialogs: yield* dialogIdsOf(s, userId), peers: yield* peerIdsOf(s, userId) }
    })
  }

  /** Users seen at `at`: a first connection opening, a last one closing, everyone online at shutdown. */
  async seen(userIds: number[], at: Date): Promise<void> {
    await this.db.tx((s) => setLastSeen(s, userIds, at))
    this.changes.seenChanged(userIds)
  }

  /**
   * Users another node had, seen at a time that node sent (lost with it, or found on it again): each with
   * the peers to tell.
   */
  async seenBy(userIds: number[], at: Date): Promise<[userId: number, peerIds: number[]][]> {
    const peers = await this.db.tx(function* (s) {
      yield* setLastSeen(s, userIds, at)
      const peers: [number, number[]][] = []
      for (const userId of userIds) peers.push([userId, yield* peerIdsOf(s, userId)])
      return peers
    })
    this.changes.seenChanged(userIds)
    return peers
  }
}
