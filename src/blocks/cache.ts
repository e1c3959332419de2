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
  /** Actions between two users (by pair) begun before their block check and not yet published; see `acting`. */
  private readonly active = new Map<string, { count: number; quiet: (() => void)[] }>()

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
   * Marks a send, edit or reaction between two users as running, from before its block check until it is
   * committed and published (call the answer then). A block waits for these (`quiet`) before it answers,
   * so nothing that passed the check before the block reaches the blocker after the block's 204.
   */
  acting(a: number, b: number): () => void {
    const key = pairKey(a, b)
    const entry = this.active.get(key) ?? { count: 0, quiet: [] }
    this.active.set(key, entry)
    entry.count++
    let done = false
    return () => {
      if (done) return
      done = true
      if (--entry.count > 0) return
      this.active.delete(key)
      for (const resolve of entry.quiet) resolve()
    }
  }

  /** Resolves once no action between the two is running (see `acting`), or after `waitMs` at most. */
  quiet(a: number, b: number, waitMs: number): Promise<void> {
    const entry = this.active.get(pairKey(a, b))
    if (!entry) return Promise.resolve()
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, waitMs)
      entry.quiet.push(() => {
        clearTimeout(timer)
        resolve()
      })
    })
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

const pairKey = (a: number, b: number) => (a < b ? `${a}:${b}` : `${b}:${a}`)
