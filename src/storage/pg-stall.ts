import { connect, type Socket } from 'node:net'

/**
 * A silent partition to Postgres: the connections stay open and nothing comes back, while a new
 * connection would work. postgres.js has no deadline on a statement, and TCP notices nothing for as long
 * as keepalives last (minutes to hours), so every statement on such a connection waits for ever — the
 * writer's batch among them, and with it every later send.
 *
 * The watch owns the driver's sockets. While some database work has waited longer than `timeoutMs`, every
 * socket that has read nothing for as long is destroyed: its statements fail (an outcome the writer knows
 * may have committed, and checks), and the driver connects again. Idle sockets go too; they only cost a
 * reconnect. Work that waits on one of them for longer than the deadline has been given up anyway.
 */
export class StallWatch {
  /** Work in flight, by when it started; a Map iterates in insertion order, so the first is the oldest. */
  private readonly work = new Map<number, number>()
  private nextWork = 0
  private readonly sockets = new Map<Socket, { read: number; since: number }>()
  private readonly timer: ReturnType<typeof setInterval>
  private nextHost = 0

  constructor(
    private readonly timeoutMs: number,
    private readonly onStall: (error: Error, sockets: number) => void,
  ) {
    this.timer = setInterval(() => this.check(), Math.min(1000, Math.max(50, timeoutMs / 4)))
    this.timer.unref()
  }

  /** postgres.js's `socket` option: connects as the driver would, one host after another, and watches it. */
  readonly socket = (options: { host: string[]; port: number[]; path?: string }): Socket => {
    const index = this.nextHost++ % options.host.length
    const host = options.host[index]
    const port = options.port[index] ?? options.port[0] ?? 5432
    const socket = options.path ? connect(options.path) : connect(port, host)
    // The driver names them in its connection errors.
    Object.assign(socket, { host, port })
    this.sockets.set(socket, { read: 0, since: performance.now() })
    socket.once('close', () => this.sockets.delete(socket))
    return socket
  }

  track<T>(work: Promise<T>): Promise<T> {
    const id = this.nextWork++
    this.work.set(id, performance.now())
    return work.finally(() => this.work.delete(id))
  }

  private check(): void {
    const now = performance.now()
    for (const [socket, seen] of this.sockets)
      if (socket.bytesRead !== seen.read) {
        seen.read = socket.bytesRead
        seen.since = now
      }
    const oldest = this.work.values().next()
    if (oldest.done || now - oldest.value < this.timeoutMs) return
    const error = Object.assign(new Error(`no answer from Postgres in ${this.timeoutMs} ms`), { code: 'DB_STALLED' })
    let destroyed = 0
    for (const [socket, seen] of this.sockets) {
      if (now - seen.since < this.timeoutMs) continue
      this.sockets.delete(socket)
      socket.destroy(error)
      destroyed++
    }
    if (destroyed > 0) this.onStall(error, destroyed)
  }

  stop(): void {
    clearInterval(this.timer)
  }
}
