interface Entry<K, V> {
  key: K
  value: V
  older: Entry<K, V> | undefined
  newer: Entry<K, V> | undefined
}

/**
 * A Map bounded to `max` entries that drops the least recently used one when full: a hot entry (an active
 * dialog's members, a live token) survives a flood of cold ones, where clearing the whole cache would not.
 *
 * Recency is a linked list beside the Map, not the Map's own insertion order: finding a Map's oldest key
 * (`keys().next()`) after many deletes walks past every deleted slot in JavaScriptCore, and a full cache of
 * 100 000 then took ~20 µs per set (58 % of the server's CPU at half the soak's peak). Here every operation
 * is a Map lookup and a few pointer moves.
 */
export class Lru<K, V> {
  private readonly map = new Map<K, Entry<K, V>>()
  private oldest: Entry<K, V> | undefined
  private newest: Entry<K, V> | undefined

  constructor(private readonly max: number) {}

  get size(): number {
    return this.map.size
  }

  /** The value, now the most recently used. */
  get(key: K): V | undefined {
    const entry = this.map.get(key)
    if (entry === undefined) return undefined
    this.unlink(entry)
    this.append(entry)
    return entry.value
  }

  /** The value, its recency unchanged. */
  peek(key: K): V | undefined {
    return this.map.get(key)?.value
  }

  /** Sets the value, now the most recently used; returns the entry this dropped to stay in bound, if any. */
  set(key: K, value: V): [K, V] | undefined {
    const entry = this.map.get(key)
    if (entry !== undefined) {
      entry.value = value
      this.unlink(entry)
      this.append(entry)
      return undefined
    }
    const added: Entry<K, V> = { key, value, older: undefined, newer: undefined }
    this.map.set(key, added)
    this.append(added)
    if (this.map.size <= this.max) return undefined
    const dropped = this.oldest!
    this.map.delete(dropped.key)
    this.unlink(dropped)
    return [dropped.key, dropped.value]
  }

  delete(key: K): boolean {
    const entry = this.map.get(key)
    if (entry === undefined) return false
    this.map.delete(key)
    this.unlink(entry)
    return true
  }

  clear(): void {
    this.map.clear()
    this.oldest = this.newest = undefined
  }

  private unlink(entry: Entry<K, V>): void {
    if (entry.older) entry.older.newer = entry.newer
    else this.oldest = entry.newer
    if (entry.newer) entry.newer.older = entry.older
    else this.newest = entry.older
    entry.older = entry.newer = undefined
  }

  private append(entry: Entry<K, V>): void {
    entry.older = this.newest
    if (this.newest) this.newest.newer = entry
    else this.oldest = entry
    this.newest = entry
  }
}
