import type { ClientFrame, ServerFrame } from './types'

/** The WebSocket constructor of the platform (browsers, Bun and Node ≥ 22 have one as a global). */
export type WebSocketLike = new (url: string) => WebSocket

export interface Backoff {
  /** First retry after about this long (ms); doubles on each failure up to maxMs. */
  initialMs: number
  maxMs: number
}

export interface SocketHooks {
  /** A fresh access token for the auth frame. */
  token(): Promise<string>
  /** An attempt to connect begins (the first, or a reconnect after the backoff). */
  connecting(): void
  /** After auth:ok. */
  up(userId: number): void
  frame(frame: ServerFrame): void
  /** The connection went down (or never came up); a reconnect is scheduled unless stopped. */
  down(info: { code: number; reason: string; unauthorized: boolean }): void
  /** The token was refused (close 4401): resolve true to reconnect (e.g. after a refresh), false to stop. */
  unauthorized(): Promise<boolean>
}

// A silent connection (a peer that vanished without a close) is noticed by this heartbeat.
const PING_EVERY_MS = 20_000
const PONG_WITHIN_MS = 10_000
const CLOSE_UNAUTHORIZED = 4401

/** Delay before retry `attempt` (0-based): exponential, with jitter so that clients do not return in step. */
export function backoffDelay(attempt: number, backoff: Backoff, random = Math.random): number {
  const ceiling = Math.min(backoff.maxMs, backoff.initialMs * 2 ** attempt)
  return Math.round(ceiling / 2 + random() * (ceiling / 2))
}

/** One authenticated WebSocket, reopened with backoff for as long as it is wanted. */
export class ReconnectingSocket {
  private ws: WebSocket | undefined
  private authed = false
  private wanted = false
  private attempt = 0
  private retryTimer: ReturnType<typeof setTimeout> | undefined
  private pingTimer: ReturnType<typeof setInterval> | undefined
  private lastHeard = 0
  /** Bumped by every open() and stop(): an open() that awaited its token after a newer one gives up. */
  private opening = 0

  constructor(
    private readonly url: string,
    private readonly hooks: SocketHooks,
    private readonly backoff: Backoff,
    private readonly WebSocketCtor: WebSocketLike,
  ) {}

  get authenticated(): boolean {
    return this.authed
  }

  start(): void {
    if (this.wanted) return
    this.wanted = true
    this.attempt = 0
    void this.open()
  }

  stop(): void {
    this.wanted = false
    this.opening++
    clearTimeout(this.retryTimer)
    this.teardown(1000, 'client closed', false)
  }

  /** Reopen now (the network came back, say) instead of waiting out the backoff. */
  reconnectNow(): void {
    if (!this.wanted || this.ws) return
    clearTimeout(this.retryTimer)
    this.attempt = 0
    void this.open()
  }

  /** The connection proved useful (caught up): the next failure starts the backoff from the beginning. */
  healthy(): void {
    this.attempt = 0
  }

  /** Drops the connection and reconnects after the backoff (the session is fine, the connection is not). */
  drop(reason: string): void {
    this.teardown(4000, reason, true)
  }

  /** Sends a frame if authenticated; false otherwise (the caller keeps it for later). */
  send(frame: ClientFrame): boolean {
    if (!this.authed || !this.ws || this.ws.readyState !== 1) return false
    this.ws.send(JSON.stringify(frame))
    return true
  }

  private async open(): Promise<void> {
    const attempt = ++this.opening
    this.hooks.connecting()
    let token: string
    try {
      token = await this.hooks.token()
    } catch {
      // Signed out meanwhile (the refresh was refused), or superseded: nothing more to do.
      if (!this.wanted || attempt !== this.opening) return
      // No token now (offline, or the server down while refreshing): try again later.
      this.hooks.down({ code: 0, reason: 'no access token', unauthorized: false })
      return this.schedule()
    }
    if (!this.wanted || attempt !== this.opening) return
    const ws = new this.WebSocketCtor(this.url)
    this.ws = ws
    this.authed = false
    ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', access_token: token }))
    ws.onmessage = (event) => {
      if (this.ws !== ws) return
      this.lastHeard = Date.now()
      let frame: ServerFrame
      try {
        frame = JSON.parse(String(event.data)) as ServerFrame
      } catch {
        return
      }
      if (frame.type === 'auth:ok') {
        this.authed = true
        this.heartbeat(ws)
        this.hooks.up(frame.user_id)
      } else if (frame.type !== 'pong') this.hooks.frame(frame)
    }
    ws.onclose = (event) => {
      if (this.ws !== ws) return
      this.teardown(event.code, event.reason, true)
    }
    // An error is always followed by close; nothing to add here, but an unhandled error event would be logged.
    ws.onerror = () => {}
  }

  private heartbeat(ws: WebSocket): void {
    clearInterval(this.pingTimer)
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastHeard > PING_EVERY_MS + PONG_WITHIN_MS) return this.teardown(4000, 'heartbeat timeout', true)
      if (ws.readyState === 1) ws.send('{"type":"ping"}')
    }, PING_EVERY_MS / 2)
  }

  private teardown(code: number, reason: string, reconnect: boolean): void {
    clearInterval(this.pingTimer)
    const ws = this.ws
    const wasOpen = ws !== undefined
    this.ws = undefined
    this.authed = false
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null
      if (ws.readyState === 0 || ws.readyState === 1) ws.close(code === 4000 ? 1000 : code, reason)
    }
    if (!wasOpen || !reconnect) return
    const unauthorized = code === CLOSE_UNAUTHORIZED
    this.hooks.down({ code, reason, unauthorized })
    if (!unauthorized) return this.schedule()
    void this.hooks.unauthorized().then((again) => (again ? this.schedule() : this.stop()), () => this.schedule())
  }

  private schedule(): void {
    if (!this.wanted) return
    clearTimeout(this.retryTimer)
    this.retryTimer = setTimeout(() => void this.open(), backoffDelay(this.attempt++, this.backoff))
  }
}
