import { Lru } from '../shared/lru'
import type { CommitWatch } from './commit-watch'

/** Keys remembered at most; the oldest is forgotten first, and what was read before it counts as stale. */
const MAX_KEYS = 200_000
/** However quiet, a kept answer is checked against the database at least this often (a missed report). */
const TRUST_MS = 2_000
/** A data_version reading this recent is used again rather than read a second time for one request. */
const POLL_REUSE_MS = 1

/** When a kept answer was last known current: a point on the change clock, and the time. */
export interface Checked {
  clock: number
  at: number
}

/**
 * What this process has changed of what kept history pages and dialog lists show, so that a kept answer
 * can be used again without reading anything. Only where this process is the database's one writer as
 * far as it can tell: SQLite, where a commit by any other connection (another node on the file, the CLI)
 * moves `data_version` (CommitWatch) and makes everything read before it stale. Elsewhere (Postgres,
 * where other nodes write without a word here) nothing is trusted and callers check the database's
 * stamps as before.
 *
 * Services report each change after it commits (`dialogChanged`, `dialogOpened`, `seenChanged`); an
 * answer is fresh while none of its keys changed since the point taken before it was read. A report that
 * comes after a read that already saw the change only costs a check; a change never reported is caught by
 * TRUST_MS, after which the caller checks its database stamp again.
 */
export class LocalChanges {
  private clock = 0
  /** Points before this are stale: a key was forgotten, or another connection committed. */
  private floor = 0
  /** Each key's last change, in the order of the changes (peeked, never promoted by a read). */
  private readonly last: Lru<number, number>

  /** `elsewhere`: commits by other connections (never trusted where it cannot tell: Postgres). */
  constructor(
    private readonly elsewhere: CommitWatch,
    private readonly limits = { maxKeys: MAX_KEYS, trustMs: TRUST_MS },
  ) {
    this.last = new Lru(limits.maxKeys)
    elsewhere.onCommitElsewhere(() => {
      this.floor = ++this.clock
    })
  }

  /** The point to keep with an answer about to be read; undefined where nothing is trusted. */
  mark(): Checked | undefined {
    if (!this.trusted()) return undefined
    return { clock: this.clock, at: performance.now() }
  }

  /** A dialog's messages or watermarks changed: its pages, and both members' lists. */
  dialogChanged(dialogId: number, members: readonly number[]): void {
    this.changed(dialogKey(dialogId), ...members.map(listKey))
  }

  /** A dialog was opened: its members' lists. */
  dialogOpened(members: readonly number[]): void {
    this.changed(...members.map(listKey))
  }

  /** Users' last_seen_at moved: the lists that show them as a peer. */
  seenChanged(userIds: readonly number[]): void {
    this.changed(...userIds.map(seenKey))
  }

  /** A kept page of a dialog's history. */
  pageFresh(checked: Checked | undefined, dialogId: number): boolean {
    return this.fresh(checked, [dialogKey(dialogId)])
  }

  /** A kept dialog list of a user, showing these peers. */
  listFresh(checked: Checked | undefined, userId: number, peerIds: readonly number[]): boolean {
    return this.fresh(checked, [listKey(userId), ...peerIds.map(seenKey)])
  }

  private fresh(checked: Checked | undefined, keys: number[]): boolean {
    if (!checked || !this.trusted() || checked.clock < this.floor || performance.now() - checked.at > this.limits.trustMs) return false
    for (const key of keys) if ((this.last.peek(key) ?? 0) > checked.clock) return false
    return true
  }

  private changed(...keys: number[]): void {
    const clock = ++this.clock
    for (const key of keys) {
      const forgotten = this.last.set(key, clock)
      if (forgotten) this.floor = Math.max(this.floor, forgotten[1])
    }
  }

  private trusted(): boolean {
    if (!this.elsewhere.supported) return false
    // Every request has just polled it for its session (SessionCache): that reading serves here too.
    this.elsewhere.poll(POLL_REUSE_MS)
    return true
  }
}

// Numbers, not strings such as `d${id}`: a fresh string is built and hashed at every lookup (measured: 107
// against 11 ns a set alone; these sets were 4 % of the server's CPU in a profiled 50 % soak). Ids are far
// below 2^53 / 3.
const dialogKey = (dialogId: number) => dialogId * 3
const listKey = (userId: number) => userId * 3 + 1
const seenKey = (userId: number) => userId * 3 + 2
