import { Lru } from '../shared/lru'
import type { CommitWatch } from '../storage/commit-watch'

const MAX_CACHED = 100_000

/**
 * Login sessions known not to be revoked, so that a request with a token already verified reads nothing.
 * Every way a session ends makes it forgotten here before anyone is answered that it ended:
 * - on this node (logout, refresh token reuse) by the auth service, after the revocation commits;
 * - on another node, or by the `user` CLI with `REDIS_URL` set, through the cluster channel (the hub's
 *   `endSession`, which also closes the session's sockets); a node ending a session answers once every
 *   node has acknowledged that, or after Cluster's APPLY_WAIT_MS (the CLI does not wait);
 * - by another process without a word (the `user` CLI on one node): `stale()` says when that may have
 *   happened — on SQLite the database's `data_version` moved (another connection committed), on Postgres
 *   always unless the node is in a cluster whose Redis connections are up — and then everything is forgotten.
 * An entry is also trusted for at most `ttlMs` (the sockets' periodic check, SESSION_CHECK_MS), in case a
 * cluster announcement was lost. A load that was in flight when something was forgotten is not kept.
 */
export class SessionCache {
  private readonly live = new Lru<string, { userId: number; until: number }>(MAX_CACHED)
  /** Bumped by every forget: a load that began before one is not remembered. */
  private generation = 0

  constructor(
    private readonly ttlMs: number,
    /** True when a revocation may have happened unannounced since the last call. */
    private readonly stale: () => boolean,
  ) {}

  /** True when the session is known live for that user (not revoked, as far as anyone has said). */
  has(sessionId: string, userId: number): boolean {
    if (this.stale()) this.forgetAll()
    const entry = this.live.get(sessionId)
    if (!entry) return false
    if (entry.userId === userId && performance.now() < entry.until) return true
    this.live.delete(sessionId)
    return false
  }

  /** The generation to hand back to `remember` once a load that starts now has finished. */
  begin(): number {
    return this.generation
  }

  /** A session read from the database and found live, at generation `since`. */
  remember(sessionId: string, userId: number, since: number): void {
    if (since === this.generation) this.live.set(sessionId, { userId, until: performance.now() + this.ttlMs })
  }

  forget(sessionId: string): void {
    this.generation++
    this.live.delete(sessionId)
  }

  forgetAll(): void {
    this.generation++
    this.live.clear()
  }
}

/**
 * `SessionCache`'s `stale` for a database: on SQLite, true when another connection has committed since the
 * last call (it may have revoked sessions; every call reads `data_version`); on Postgres, true unless
 * `announced()` — the node is in a cluster and its Redis connections are up, so revocations from elsewhere
 * reach it.
 */
export function revokedUnseen(watch: CommitWatch, announced: () => boolean): () => boolean {
  if (!watch.supported) return () => !announced()
  let moved = false
  watch.onCommitElsewhere(() => {
    moved = true
  })
  return () => {
    watch.poll()
    const seen = moved
    moved = false
    return seen
  }
}
