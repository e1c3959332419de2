/** A token bucket: `burst` tokens, refilled at `perSec`. */
export class TokenBucket {
  private tokens: number
  private updatedAt: number

  constructor(
    private readonly burst: number,
    private readonly perSec: number,
    now = performance.now(),
  ) {
    this.tokens = burst
    this.updatedAt = now
  }

  /** Takes one token; returns 0 when granted, else the seconds until one is available. */
  take(now = performance.now()): number {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.updatedAt) / 1000) * this.perSec)
    this.updatedAt = now
    if (this.tokens >= 1) {
      this.tokens -= 1
      return 0
    }
    return (1 - this.tokens) / this.perSec
  }

  /** True when the bucket is full again, so a keyed map can forget it. */
  isFull(now = performance.now()): boolean {
    return this.tokens + ((now - this.updatedAt) / 1000) * this.perSec >= this.burst
  }
}

/** Token buckets by key (client address, user id), forgetting full ones so the map stays small. */
export class KeyedRateLimit<K> {
  private readonly buckets = new Map<K, TokenBucket>()
  private lastSweep = performance.now()

  constructor(
    private readonly burst: number,
    private readonly perSec: number,
  ) {}

  /** 0 when allowed, else whole seconds to wait (for Retry-After). */
  take(key: K): number {
    const now = performance.now()
    if (now - this.lastSweep > 60_000) this.sweep(now)
    let bucket = this.buckets.get(key)
    if (!bucket) {
      bucket = new TokenBucket(this.burst, this.perSec, now)
      this.buckets.set(key, bucket)
    }
    const wait = bucket.take(now)
    return wait === 0 ? 0 : Math.max(1, Math.ceil(wait))
  }

  private sweep(now: number): void {
    this.lastSweep = now
    for (const [key, bucket] of this.buckets) if (bucket.isFull(now)) this.buckets.delete(key)
  }
}
