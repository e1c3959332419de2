import type { Db } from '../storage/database'
import { blockRelations } from './store'
import { Lru } from '../shared/lru'

const MAX_CACHED = 100_000

/**
 * Who is in a block with whom, either way, answered from memory: every send and every typing frame asks,
 * so the database is read once per user, not once per send. A block or unblock (here or on another node,
 * told over the cluster channel) forgets both users' entries; a load that was in flight when that
 * happened is not kept, so a stale answer never outlives the change.
 */
export class BlockCache {
  private readonly related = new Lru<number, Set<number>>(MAX_CACHED)
  /** Bumped per user by each change, so a load that started before it is discarded. */
  private readonly generation = new Map<number, number>()
  /** Bumped by forgetAll, for the same reason. */
  private epoch = 0

  constructor(private readonly db: Db) {}

  /** True while either user blocks the other; synchronous when the first user's entry is cached. */
  between(userId: number, otherId: number): boolean | Promise<boolean> {
    const known = this.related.get(userId)
    if (known) return known.has(otherId)
    return this.load(userId).then((loaded) => loaded.has(otherId))
  }

  /** Everyone in a block with the user (either way). */
  of(userId: number): Set<number> | Promise<Set<number>> {
    return this.related.get(userId) ?? this.load(userId)
  }

  /** A block between the two changed: both entries are read again when next needed. */
  forget(a: number, b: number): void {
    for (const id of [a, b]) {
      this.related.delete(id)
      this.generation.set(id, (this.generation.get(id) ?? 0) + 1)
    }
  }

  /**
   * Changes may have gone unheard (this node's subscription to the cluster channel dropped, and what was
   * said meanwhile is lost): everything is read again when next needed.
   */
  forgetAll(): void {
    this.related.clear()
    this.epoch++
  }

  private async load(userId: number): Promise<Set<number>> {
    const before = this.generation.get(userId) ?? 0
    const epoch = this.epoch
    const loaded = new Set(await this.db.read((s) => blockRelations(s, userId)))
    if ((this.generation.get(userId) ?? 0) === before && this.epoch === epoch) {
      this.related.set(userId, loaded)
    }
    return loaded
  }
}
