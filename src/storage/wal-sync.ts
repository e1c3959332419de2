/**
 * A commit's WAL sync off the event loop. With synchronous=FULL SQLite syncs the WAL inside COMMIT, and
 * bun:sqlite commits on the main thread, so a commit that meets a busy disk (an upload's row right behind
 * its 10 MiB file's fdatasync) stops sockets and timers for as long as the disk takes. A transaction that
 * asks for it commits with NORMAL instead (the WAL is written, not synced), and this fdatasyncs the WAL
 * file on Bun's thread pool before its caller goes on: what FULL adds in WAL mode is exactly that sync, so
 * the commit is as durable when its promise settles. One sync covers every commit made before it began,
 * so commits that arrive while one runs share the next.
 *
 * The file is opened once: SQLite removes the WAL only when its last connection closes, and this process
 * holds one (two, with the checkpointer) for as long as this lives. A checkpoint that empties the WAL
 * first syncs the database file, so what it took out of the WAL is durable too.
 */
import { open, type FileHandle } from 'node:fs/promises'

export class WalSync {
  private file: Promise<FileHandle> | undefined
  private running = false
  /** Commits made since the running sync began: the next sync is theirs. */
  private waiting: { resolve: () => void; reject: (error: unknown) => void }[] = []

  constructor(private readonly walPath: string) {}

  /** Resolves once a sync begun after this call has finished: everything committed before it is on disk. */
  after(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject })
      if (!this.running) void this.next()
    })
  }

  async close(): Promise<void> {
    const file = this.file
    this.file = undefined
    await (await file)?.close()
  }

  private async next(): Promise<void> {
    this.running = true
    const covered = this.waiting.splice(0)
    try {
      // A failed open is tried again by the next sync.
      this.file ??= open(this.walPath, 'r').catch((error: unknown) => {
        this.file = undefined
        throw error
      })
      await (await this.file).datasync()
      for (const w of covered) w.resolve()
    } catch (error) {
      for (const w of covered) w.reject(error)
    }
    this.running = false
    if (this.waiting.length > 0) void this.next()
  }
}
