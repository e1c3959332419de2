/**
 * A Map bounded to `max` entries that drops the least recently used one when full: a hot entry (an active
 * dialog's members, a live token) survives a flood of cold ones, where clearing the whole cache would not.
 */
export class Lru<K, V> {
  private readonly map = new Map<K, V>()

  constructor(private readonly max: number) {}

  get size(): number {
    return this.map.size
  }

  /** The value, now the most recently used. */
  get(key: K): V | undefined {
    const value = this.map.get(key)
    if (value !== undefined) {
      // A Map iterates in insertion order: re-inserting moves the key to the young end.
      this.map.delete(key)
      this.map.set(key, value)
    }
    return value
  }

  set(key: K, value: V): void {
    this.map.delete(key)
    this.map.set(key, value)
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value as K)
  }

  delete(key: K): boolean {
    return this.map.delete(key)
  }

  clear(): void {
    this.map.clear()
  }
}
