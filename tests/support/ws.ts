import { Cluster } from '../../src/cluster/cluster'
import { serve, type Running } from '../../src/server'
import { createTestApp, type Session, type TestApp } from './app'
import type { Dialect, FreshDatabase } from './databases'

/** A fresh app on a real listening port: REST in-process through `t.call`, WebSockets over TCP. */
export interface LiveServer {
  t: TestApp
  running: Running
  /** ws://127.0.0.1:<port> */
  base: string
  close(): Promise<void>
}

/** With REDIS_URL in `env`, a node of a cluster (then usually on a `shared` database). */
export async function startLive(dialect: Dialect, env: Record<string, string> = {}, shared?: FreshDatabase): Promise<LiveServer> {
  const t = await createTestApp(dialect, env, shared)
  if (t.core.config.cluster) t.core.hub.join(await Cluster.join(t.core.config.cluster, t.core.hub, t.core.metrics))
  const running = serve(t.core, { port: 0, hostname: '127.0.0.1' })
  let closed = false
  return {
    t,
    running,
    base: `ws://127.0.0.1:${running.server.port}`,
    close: async () => {
      if (closed) return
      closed = true
      await running.server.stop(true)
      await t.core.hub.leave()
      await t.close()
    },
  }
}

export type Frame = Record<string, any>

/**
 * A WebSocket client for tests, in the manner of Elysia's own ws tests: promises for open, the next
 * frame and the close. Frames are queued, so none is lost between two awaits.
 */
export class Client {
  readonly frames: Frame[] = []
  readonly opened: Promise<void>
  readonly closed: Promise<{ code: number; reason: string }>
  private waiter: (() => void) | undefined
  private isClosed = false

  constructor(readonly ws: WebSocket) {
    this.opened = new Promise((resolve, reject) => {
      ws.addEventListener('open', () => resolve(), { once: true })
      ws.addEventListener('error', () => reject(new Error('websocket error before open')), { once: true })
    })
    this.closed = new Promise((resolve) =>
      ws.addEventListener('close', (e) => {
        this.isClosed = true
        this.waiter?.()
        resolve({ code: e.code, reason: e.reason })
      }),
    )
    ws.addEventListener('message', (e) => {
      this.frames.push(JSON.parse(String(e.data)))
      this.waiter?.()
    })
  }

  /** Opens a socket (path and query included in `url`) without authenticating. */
  static async open(url: string): Promise<Client> {
    const client = new Client(new WebSocket(url))
    await client.opened
    return client
  }

  /** Opens /ws and authenticates with the first frame; resolves after auth:ok. */
  static async login(base: string, session: Session, path = '/ws'): Promise<Client> {
    const client = await Client.open(`${base}${path}`)
    client.send({ type: 'auth', access_token: session.access_token })
    const ok = await client.next()
    if (ok.type !== 'auth:ok') throw new Error(`expected auth:ok, got ${JSON.stringify(ok)}`)
    return client
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame))
  }

  /** The next frame (of `type`, when given, skipping others); rejects after `ms` or on close. */
  async next(type?: string, ms = 3_000): Promise<Frame> {
    const deadline = Date.now() + ms
    for (;;) {
      const index = type === undefined ? (this.frames.length ? 0 : -1) : this.frames.findIndex((f) => f.type === type)
      if (index >= 0) return this.frames.splice(index, 1)[0]!
      if (this.isClosed) throw new Error(`closed while waiting for ${type ?? 'a frame'}`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`no ${type ?? 'frame'} within ${ms} ms; have ${JSON.stringify(this.frames)}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.waiter = () => {
          clearTimeout(timer)
          resolve()
        }
      })
      this.waiter = undefined
    }
  }

  /**
   * Everything received before a pong to a ping sent now: the server answers in order, so whatever it
   * published before this call is in the result. Proves "received nothing" without sleeping.
   */
  async drain(options: { presence?: boolean } = {}): Promise<Frame[]> {
    this.send({ type: 'ping' })
    await this.next('pong')
    const frames = this.frames.splice(0)
    // Peers coming online is background noise in most tests; those about presence keep it.
    return options.presence ? frames : frames.filter((f) => f.type !== 'presence')
  }

  close(): Promise<{ code: number; reason: string }> {
    this.ws.close()
    return this.closed
  }
}

export const sendFrame = (dialogId: number, clientMsgId: string, text = `text of ${clientMsgId}`) => ({
  type: 'message:send',
  dialog_id: dialogId,
  client_msg_id: clientMsgId,
  msg_type: 'text',
  text,
})
