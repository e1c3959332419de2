import type { Socket } from './socket'

/**
 * Replies that settle together (the acks of one writer batch) leave in one write per connection instead
 * of one each: a ws.send outside Bun's handlers is a syscall of its own, and on loopback it also does the
 * receiver's TCP work. Frames wait, in the order queued, for a microtask queued behind the first of them:
 * the replies of one batch settle in the same microtask round, so they all join before it runs. (The next
 * check phase would join as many but delay every ack by a loop turn: a single sender with few messages
 * in flight lost a third of its rate.) `flush()` sends them sooner when something about to be sent must
 * not overtake them.
 */
export class Outbox {
  private waiting = new Map<Socket, string[]>()
  private readonly flushSoon = () => this.flush()

  /** `sent` runs after a connection's frames went out (the hub's slow-consumer check). */
  constructor(private readonly sent: (ws: Socket) => void) {}

  push(ws: Socket, frame: string): void {
    if (this.waiting.size === 0) queueMicrotask(this.flushSoon)
    const frames = this.waiting.get(ws)
    if (frames) frames.push(frame)
    else this.waiting.set(ws, [frame])
  }

  flush(): void {
    if (this.waiting.size === 0) return
    const waiting = this.waiting
    this.waiting = new Map()
    for (const [ws, frames] of waiting) {
      if (ws.data.closing) continue
      if (frames.length === 1) ws.send(frames[0]!)
      else
        ws.cork(() => {
          for (const frame of frames) ws.send(frame)
        })
      this.sent(ws)
    }
  }
}
