/**
 * Work waiting for the push worker, bounded: items ready now in arrival order, and retries waiting for
 * their time. Both count toward `max`; at the bound the oldest item (by `at`, when its work began) is
 * dropped, so a dead push service costs a fixed amount of memory and the newest messages still go out.
 */
export class BoundedQueue<T extends { at: number }> {
  private ready: T[] = []
  private head = 0
  private readonly waiting = new Map<T, ReturnType<typeof setTimeout>>()

  constructor(
    private readonly max: number,
    private readonly onDrop: (item: T) => void,
    /** Told the depth after every change. */
    private readonly onChange: (depth: number) => void,
    /** Told when an item becomes ready (pushed, or a retry whose time came). */
    private readonly onReady: () => void,
  ) {}

  get depth(): number {
    return this.ready.length - this.head + this.waiting.size
  }

  push(item: T): void {
    if (this.depth >= this.max) this.dropOldest()
    this.ready.push(item)
    this.onChange(this.depth)
    this.onReady()
  }

  /** Ready again after `ms`. */
  later(item: T, ms: number): void {
    if (this.depth >= this.max) this.dropOldest()
    const timer = setTimeout(() => {
      this.waiting.delete(item)
      this.ready.push(item)
      this.onChange(this.depth)
      this.onReady()
    }, ms)
    timer.unref()
    this.waiting.set(item, timer)
    this.onChange(this.depth)
  }

  /** The next ready item, if it passes `when`; undefined when none is ready or the next does not pass. */
  take(when: (item: T) => boolean = () => true): T | undefined {
    if (this.head === this.ready.length) return undefined
    const item = this.ready[this.head]!
    if (!when(item)) return undefined
    this.ready[this.head++] = undefined as unknown as T
    // Compacted now and then, so taking stays O(1) and the array does not grow without bound.
    if (this.head > 1024 && this.head * 2 > this.ready.length) {
      this.ready = this.ready.slice(this.head)
      this.head = 0
    }
    this.onChange(this.depth)
    return item
  }

  clear(): void {
    for (const timer of this.waiting.values()) clearTimeout(timer)
    this.waiting.clear()
    this.ready = []
    this.head = 0
    this.onChange(0)
  }

  private dropOldest(): void {
    const first = this.head < this.ready.length ? this.ready[this.head] : undefined
    // A Map iterates in insertion order, and retries are re-inserted on each attempt: find the oldest.
    let oldestWaiting: T | undefined
    for (const item of this.waiting.keys()) if (!oldestWaiting || item.at < oldestWaiting.at) oldestWaiting = item
    if (first && (!oldestWaiting || first.at <= oldestWaiting.at)) {
      this.take()
      this.onDrop(first)
    } else if (oldestWaiting) {
      clearTimeout(this.waiting.get(oldestWaiting))
      this.waiting.delete(oldestWaiting)
      this.onDrop(oldestWaiting)
    }
  }
}
