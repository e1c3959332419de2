import type { Metrics } from '../ops/metrics'
import type { Db } from '../storage/database'
import { commitBatch, type MarkInput, type MarkOutcome, type SendInput, type SendOutcome } from './store'

type Pending =
  | { send: SendInput; resolve: (outcome: SendOutcome) => void; reject: (error: unknown) => void }
  | { mark: MarkInput; resolve: (outcome: MarkOutcome) => void; reject: (error: unknown) => void }

export interface WriterOptions {
  /** A batch closes at this many sends and receipts… */
  batchMax: number
  /** …or this long after its first; 0 = what arrives in the same event-loop turn. */
  batchWaitMs: number
}

/**
 * The one writer every message send and every delivered/read receipt goes through (group commit). What
 * arrives close together is committed together; each promise settles only after that commit. One batch
 * is in flight at a time, and what arrives meanwhile forms the next one, so a slow commit makes batches
 * bigger, not queues longer.
 */
export class MessageWriter {
  private queue: Pending[] = []
  private timer: ReturnType<typeof setTimeout> | undefined
  private immediate: ReturnType<typeof setImmediate> | undefined
  private inFlight: Promise<void> | undefined
  private idle: (() => void)[] = []

  constructor(
    private readonly db: Db,
    private readonly options: WriterOptions,
    private readonly metrics?: Metrics,
    /** Runs before each batch commits (the hub sends the replies to the last one, which must come first). */
    private readonly beforeBatch?: () => void,
  ) {}

  submit(send: SendInput): Promise<SendOutcome> {
    return new Promise((resolve, reject) => {
      this.queue.push({ send, resolve, reject })
      this.schedule()
    })
  }

  /** A watermark move (a receipt): rides the next batch instead of a transaction of its own. */
  mark(mark: MarkInput): Promise<MarkOutcome> {
    return new Promise((resolve, reject) => {
      this.queue.push({ mark, resolve, reject })
      this.schedule()
    })
  }

  /** Resolves once everything submitted so far is committed (for shutdown). */
  drain(): Promise<void> {
    if (!this.inFlight && this.queue.length === 0) return Promise.resolve()
    return new Promise((resolve) => this.idle.push(resolve))
  }

  private schedule(): void {
    if (this.inFlight) return
    if (this.queue.length >= this.options.batchMax) {
      this.flush()
      return
    }
    if (this.timer || this.immediate) return
    if (this.options.batchWaitMs > 0) this.timer = setTimeout(() => this.flush(), this.options.batchWaitMs)
    else this.immediate = setImmediate(() => this.flush())
  }

  private flush(): void {
    clearTimeout(this.timer)
    clearImmediate(this.immediate)
    this.timer = this.immediate = undefined
    if (this.inFlight || this.queue.length === 0) return
    const batch = this.queue.splice(0, this.options.batchMax)
    this.beforeBatch?.()
    this.inFlight = this.commit(batch).finally(() => {
      this.inFlight = undefined
      if (this.queue.length > 0) this.schedule()
      else for (const done of this.idle.splice(0)) done()
    })
  }

  private async commit(batch: Pending[]): Promise<void> {
    try {
      this.settle(batch, await this.write(batch))
    } catch {
      // One bad item must not sink its batch-mates: retry each alone, and fail only the ones that fail alone.
      for (const pending of batch) {
        try {
          this.settle([pending], await this.write([pending]))
        } catch (error) {
          pending.reject(error)
        }
      }
    }
  }

  private write(batch: Pending[]) {
    const sends: SendInput[] = []
    const marks: MarkInput[] = []
    for (const p of batch) 'send' in p ? sends.push(p.send) : marks.push(p.mark)
    const started = performance.now()
    return commitBatch(this.db, sends, marks, new Date()).finally(() =>
      this.metrics?.writerCommit.observe((performance.now() - started) / 1000),
    )
  }

  private settle(batch: Pending[], outcomes: { sends: SendOutcome[]; marks: MarkOutcome[] }): void {
    let created = 0
    let send = 0
    let mark = 0
    for (const p of batch) {
      if ('send' in p) {
        const outcome = outcomes.sends[send++]!
        if (outcome.kind === 'created') created++
        p.resolve(outcome)
      } else p.resolve(outcomes.marks[mark++]!)
    }
    this.metrics?.writeBatchSize.observe(batch.length)
    this.metrics?.messagesPersisted.inc({}, created)
  }
}
