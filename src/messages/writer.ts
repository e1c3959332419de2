import { AppError } from '../errors'
import { logFault } from '../log/fault'
import { unreachable } from '../storage/driver-error'
import type { Metrics } from '../ops/metrics'
import type { Db } from '../storage/database'
import { commitBatch, type BatchOutcome, type Settled } from './batch'
import type { MarkInput, MarkOutcome } from './receipts'
import type { SendInput, SendOutcome } from './sends'

type PendingSend = { send: SendInput; resolve: (outcome: SendOutcome) => void; reject: (error: unknown) => void }
type PendingMark = { mark: MarkInput; resolve: (outcome: MarkOutcome) => void; reject: (error: unknown) => void }
type Pending = PendingSend | PendingMark

const dialogOf = (p: Pending) => ('send' in p ? p.send.dialogId : p.mark.dialogId)

export interface WriterOptions {
  /** A batch closes at this many sends and receipts… */
  batchMax: number
  /** …or this long after its first; 0 = what arrives in the same event-loop turn. */
  batchWaitMs: number
  /**
   * Batches committing at once (default 1). On Postgres a commit is a round trip that leaves the server
   * and the database idle in turns, and two overlap (measured: 12–13 k → 16–17 k messages/s in the e2e
   * loop; three no better). Batches in flight never share a dialog, so each dialog's sends and receipts
   * still commit in the order they came.
   */
  batchesInFlight?: number
  /**
   * Sends and receipts waiting for a batch, at most; past it they are refused with `rate_limited` at once
   * (default unbounded). While the database stalls the queue only grows, and each waiting item holds its
   * text and its caller's promise.
   */
  queueMax?: number
}

/**
 * The one writer every message send and every delivered/read receipt goes through (group commit). What
 * arrives close together is committed together; each promise settles only after that commit. At most
 * `batchesInFlight` batches (one, unless told) are in flight at a time, on disjoint dialogs, and what
 * arrives meanwhile forms the next one, so a slow commit makes batches bigger, not queues longer.
 */
export class MessageWriter {
  private queue: Pending[] = []
  private timer: ReturnType<typeof setTimeout> | undefined
  private immediate: ReturnType<typeof setImmediate> | undefined
  private running = 0
  /** Dialogs with a batch in flight, and how many: their next items wait for the next batch. */
  private readonly busy = new Map<number, number>()
  private readonly maxInFlight: number
  private idle: (() => void)[] = []

  constructor(
    private readonly db: Db,
    private readonly options: WriterOptions,
    private readonly metrics?: Metrics,
    /** Runs before each batch commits (the hub sends the replies to the last one, which must come first). */
    private readonly beforeBatch?: () => void,
  ) {
    this.maxInFlight = options.batchesInFlight ?? 1
  }

  submit(send: SendInput): Promise<SendOutcome> {
    return new Promise((resolve, reject) => this.enqueue({ send, resolve, reject }))
  }

  /** A watermark move (a receipt): rides the next batch instead of a transaction of its own. */
  mark(mark: MarkInput): Promise<MarkOutcome> {
    return new Promise((resolve, reject) => this.enqueue({ mark, resolve, reject }))
  }

  private enqueue(item: Pending): void {
    if (this.queue.length >= (this.options.queueMax ?? Infinity)) {
      this.metrics?.writerRefused.inc()
      item.reject(new AppError('rate_limited', 'the server is behind with its writes; retry shortly', undefined, 1))
      return
    }
    this.queue.push(item)
    this.schedule()
  }

  /** Resolves once everything submitted so far is committed (for shutdown). */
  drain(): Promise<void> {
    if (this.running === 0 && this.queue.length === 0) return Promise.resolve()
    return new Promise((resolve) => this.idle.push(resolve))
  }

  /**
   * `afterCommit`: called as a batch settles. A full queue then waits for the next turn instead of
   * committing at once: on SQLite a commit is synchronous, and committing a backlog batch after batch in
   * one chain of promises kept sockets unread, timers and /metrics unanswered for as long as it lasted.
   */
  private schedule(afterCommit = false): void {
    if (this.running >= this.maxInFlight) return
    const full = this.queue.length >= this.options.batchMax
    if (full && !afterCommit) {
      this.flush()
      return
    }
    if (this.timer || this.immediate) return
    if (this.options.batchWaitMs > 0 && !full) this.timer = setTimeout(() => this.flush(), this.options.batchWaitMs)
    else this.immediate = setImmediate(() => this.flush())
  }

  private flush(): void {
    clearTimeout(this.timer)
    clearImmediate(this.immediate)
    this.timer = this.immediate = undefined
    if (this.running >= this.maxInFlight || this.queue.length === 0) return
    const batch = this.take()
    if (batch.length === 0) return
    const dialogs = new Set(batch.map(dialogOf))
    for (const d of dialogs) this.busy.set(d, (this.busy.get(d) ?? 0) + 1)
    this.beforeBatch?.()
    this.running++
    void this.commit(batch).finally(() => {
      this.running--
      for (const d of dialogs) {
        const left = this.busy.get(d)! - 1
        if (left === 0) this.busy.delete(d)
        else this.busy.set(d, left)
      }
      if (this.queue.length > 0) this.schedule(true)
      else if (this.running === 0) for (const done of this.idle.splice(0)) done()
    })
  }

  /** The next batch: up to batchMax items, in order, of dialogs no batch in flight holds (the rest stay queued, in order). */
  private take(): Pending[] {
    if (this.busy.size === 0) return this.queue.splice(0, this.options.batchMax)
    const batch: Pending[] = []
    const rest: Pending[] = []
    for (const p of this.queue) {
      if (batch.length < this.options.batchMax && !this.busy.has(dialogOf(p))) batch.push(p)
      else rest.push(p)
    }
    this.queue = rest
    return batch
  }

  private async commit(batch: Pending[]): Promise<void> {
    const sends = batch.filter((p): p is PendingSend => 'send' in p)
    const marks = batch.filter((p): p is PendingMark => 'mark' in p)
    const outcome = this.write(sends, marks)
    this.metrics?.writeBatchSize.observe(batch.length)
    // Each part is answered as soon as it is committed (see BatchOutcome).
    await Promise.all([outcome.sends.then((o) => this.settleSends(sends, o)), outcome.marks.then((o) => this.settleMarks(marks, o))])
  }

  private write(sends: PendingSend[], marks: PendingMark[]): BatchOutcome {
    const started = performance.now()
    const outcome = commitBatch(
      this.db,
      sends.map((p) => p.send),
      marks.map((p) => p.mark),
      new Date(),
    )
    void Promise.all([outcome.sends, outcome.marks]).then(() => this.metrics?.writerCommit.observe((performance.now() - started) / 1000))
    return outcome
  }

  // A part of a batch (its sends, its receipts) that failed is retried item by item: one bad item fails
  // alone, and the rest commit — unless the database could not be reached at all, which fails them all at
  // once rather than one slow failure after another. The sends' part never waits on, nor fails with, the receipts'. The
  // failure is logged: the retries hide it from the clients, not from whoever runs the server.

  private async settleSends(sends: PendingSend[], outcome: Settled<SendOutcome[]>): Promise<void> {
    if (outcome.ok) {
      let created = 0
      sends.forEach((p, i) => {
        const o = outcome.value[i]!
        if (o.kind === 'created') created++
        p.resolve(o)
      })
      this.metrics?.messagesPersisted.inc({}, created)
    } else if (sends.length === 1 || unreachable(outcome.error)) for (const p of sends) p.reject(outcome.error)
    else if (sends.length > 1) {
      logFault(`a batch of ${sends.length} sends failed; committing them one by one`, outcome.error)
      for (const p of sends) await this.settleSends([p], await this.write([p], []).sends)
    }
  }

  private async settleMarks(marks: PendingMark[], outcome: Settled<MarkOutcome[]>): Promise<void> {
    if (outcome.ok) marks.forEach((p, i) => p.resolve(outcome.value[i]!))
    else if (marks.length === 1 || unreachable(outcome.error)) for (const p of marks) p.reject(outcome.error)
    else if (marks.length > 1) {
      logFault(`a batch of ${marks.length} receipts failed; committing them one by one`, outcome.error)
      for (const p of marks) await this.settleMarks([p], await this.write([], [p]).marks)
    }
  }
}
