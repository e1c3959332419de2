/**
 * Commits made to the database by other connections (another node on the SQLite file, the CLI), as
 * SQLite's `data_version` shows them; on Postgres there is no such signal (`supported` is false). Caches
 * that must forget what such a commit may have changed listen here, and one poll serves them all.
 */
export class CommitWatch {
  private seen: number | undefined
  private polledAt = performance.now()
  private readonly listeners: (() => void)[] = []

  /** `read`: the database's commit counter for other connections; undefined where there is none. */
  constructor(private readonly read: () => number | undefined) {
    this.seen = read()
  }

  get supported(): boolean {
    return this.seen !== undefined
  }

  onCommitElsewhere(listener: () => void): void {
    this.listeners.push(listener)
  }

  /**
   * Reads the counter and tells the listeners if it moved; with `maxAgeMs`, a reading that recent stands
   * instead (a commit elsewhere is then seen up to that much later, as if the caller had come that much
   * earlier).
   */
  poll(maxAgeMs = 0): void {
    const now = performance.now()
    if (maxAgeMs > 0 && now - this.polledAt <= maxAgeMs) return
    this.polledAt = now
    const version = this.read()
    if (version === this.seen) return
    this.seen = version
    for (const listener of this.listeners) listener()
  }
}
