/** Typed events, as callbacks (`on`) or as an async iterator over all of them (`events`). */
export type EventOf<M> = { [K in keyof M]: { type: K } & M[K] }[keyof M]

export class Emitter<M extends { [K in keyof M]: object }> {
  private readonly listeners = new Map<keyof M, Set<(event: never) => void>>()
  private readonly streams = new Set<(event: EventOf<M>) => void>()

  /** Calls `listener` for every event of `type`; returns the function that stops it. */
  on<K extends keyof M>(type: K, listener: (event: { type: K } & M[K]) => void): () => void {
    let set = this.listeners.get(type)
    if (!set) this.listeners.set(type, (set = new Set()))
    set.add(listener as (event: never) => void)
    return () => set.delete(listener as (event: never) => void)
  }

  emit<K extends keyof M>(type: K, payload: M[K]): void {
    const event = { type, ...payload } as { type: K } & M[K]
    for (const listener of this.listeners.get(type) ?? []) {
      // One listener's bug must not stop the others, nor the client's own bookkeeping that follows.
      try {
        ;(listener as (event: { type: K } & M[K]) => void)(event)
      } catch (error) {
        queueMicrotask(() => {
          throw error
        })
      }
    }
    for (const push of this.streams) push(event as EventOf<M>)
  }

  /** Every event from now on, in order; `break` (or `return()`) stops it. */
  events(): AsyncIterableIterator<EventOf<M>> {
    const queue: EventOf<M>[] = []
    let wake: (() => void) | undefined
    let done = false
    const push = (event: EventOf<M>) => {
      queue.push(event)
      wake?.()
    }
    this.streams.add(push)
    const finish = () => {
      done = true
      this.streams.delete(push)
      wake?.()
    }
    const iterator: AsyncIterableIterator<EventOf<M>> = {
      next: async () => {
        while (!queue.length && !done) await new Promise<void>((resolve) => (wake = resolve))
        wake = undefined
        if (queue.length) return { value: queue.shift()!, done: false }
        return { value: undefined, done: true }
      },
      return: async () => {
        finish()
        return { value: undefined, done: true }
      },
      [Symbol.asyncIterator]: () => iterator,
    }
    return iterator
  }
}
