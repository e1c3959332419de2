import { connect, Socket } from 'node:net'

/**
 * A silent partition to Postgres: the connections stay open and nothing comes back, while a new
 * connection would work. postgres.js has no deadline on a statement, and TCP notices nothing for as long
 * as keepalives last (minutes to hours), so every statement on such a connection waits for ever — the
 * writer's batch among them, and with it every later send.
 *
 * Postgres itself ends a statement that runs longer than the timeout (the sessions' `statement_timeout`,
 * set in database.ts): a lock held too long is an error Postgres answers, and the statement does not
 * commit later behind its caller's back. So a connection that has still answered nothing at twice the
 * timeout is taken for lost: while some database work has waited that long, the sockets that have read
 * nothing for as long are handed to `onStall`, which replaces the pool (database.ts). What waited on them
 * fails (an outcome the writer knows may have committed, and checks) and goes on, on new connections.
 */
export class StallWatch {
  /** Work in flight, by when it started; a Map iterates in insertion order, so the first is the oldest. */
  private readonly work = new Map<number, number>()
  private nextWork = 0
  private readonly sockets = new Map<Socket, { read: number; since: number }>()
  private readonly timer: ReturnType<typeof setInterval>
  private readonly lostAfterMs: number
  private nextHost = 0

  constructor(
    timeoutMs: number,
    /** Told the sockets that answered nothing; every socket known so far is the past pool's from then on. */
    private readonly onStall: (error: Error, silent: Socket[]) => void,
  ) {
    this.lostAfterMs = 2 * timeoutMs
    this.timer = setInterval(() => this.check(), Math.min(1000, Math.max(50, timeoutMs / 4)))
    this.timer.unref()
  }

  /**
   * postgres.js's `socket` option: connects as the driver would (one host after another; its
   * `connect_timeout` still applies) and watches the socket. The driver puts its listeners on the socket
   * only after this returns, and a Unix socket's ENOENT comes at once: such a socket connects on the next
   * turn, so its failure is the driver's to see (TCP's come later by themselves).
   */
  readonly socket = (options: { host: string[]; port: number[]; path?: string }): Socket => {
    const index = this.nextHost++ % options.host.length
    const host = options.host[index]
    const port = options.port[index] ?? options.port[0] ?? 5432
    let socket: Socket
    const path = options.path
    if (path) {
      socket = new Socket()
      setImmediate(() => socket.connect(path))
    } else socket = connect(port, host)
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
    if (oldest.done || now - oldest.value < this.lostAfterMs) return
    const silent = [...this.sockets].filter(([, seen]) => now - seen.since >= this.lostAfterMs).map(([socket]) => socket)
    if (silent.length === 0) return
    this.sockets.clear()
    this.onStall(Object.assign(new Error(`no answer from Postgres in ${this.lostAfterMs} ms`), { code: 'DB_STALLED' }), silent)
  }

  stop(): void {
    clearInterval(this.timer)
  }
}
