import { randomBytes } from 'node:crypto'
import { AppError, errorBody, unauthorized } from '../../errors'
import type { Frames } from '../connection'
import type { Hub } from '../hub'
import type { RawFrame } from '../protocol'
import { CLOSE_POLICY_VIOLATION } from '../../limits/invalid-frames'
import { CLOSE_TOO_MANY_CONNECTIONS } from '../../limits/user-limits'
import { CLOSE_UNAUTHORIZED, type BunSocket, type BunSocketHandler, type ConnectionData, type Socket } from '../socket'
import {
  BINARY_ACK,
  BINARY_EVENT,
  CONNECT,
  connectErrorPacket,
  connectPacket,
  DISCONNECT,
  DISCONNECT_PACKET,
  EVENT,
  expectsAck,
  frameOf,
  parsePacket,
  socketIoWire,
} from './packets'

export const PING_INTERVAL_MS = 25_000
export const PING_TIMEOUT_MS = 20_000
/** How long a closed long-polling session keeps its last packets (DISCONNECT, close) for the client's next GET. */
const CLOSED_POLL_GRACE_MS = 5_000

/** What a session needs from its server. */
export interface EngineContext {
  hub: Hub
  frames: Frames
  /** Publishes to a topic (long-polling sessions have no Bun socket to publish from). */
  publish(topic: string, text: string): void
  forget(session: Session): void
}

export const newId = () => randomBytes(15).toString('base64url')

/** What `receive` says of a packet that is no Engine.IO packet (it has ended the session). */
const NOT_ENGINE_IO = Symbol('not an Engine.IO packet')

/** Close codes after which the client must not simply reconnect (see `Session.close`). */
const SERVER_DISCONNECTS = new Set([CLOSE_UNAUTHORIZED, CLOSE_TOO_MANY_CONNECTIONS, CLOSE_POLICY_VIOLATION])

/**
 * One Engine.IO session carrying one Socket.IO connection to namespace "/": to the hub, a `Socket` like
 * any WebSocket. Its transport is a WebSocket (from the start, or after the `probe` upgrade) or HTTP
 * long-polling (packets queue until the client's GET takes them). Client packets become our frames and go
 * to the same frame handling as the JSON wire's.
 */
export class Session implements Socket, BunSocketHandler {
  readonly sid = newId()
  readonly data: ConnectionData
  readyState = 1
  /** The WebSocket transport, once there is one. */
  private ws: BunSocket | undefined
  /** A WebSocket opened to upgrade this session, until the client's `upgrade` packet. */
  private probe: BunSocket | undefined
  private upgrading = false
  private queue: string[] = []
  private queuedBytes = 0
  /** The client's pending GET (long-polling). */
  private poll: ((body: string) => void) | undefined
  /** Topics subscribed while long-polling: they move to the WebSocket on upgrade. */
  private readonly topics = new Set<string>()
  private pingTimer: ReturnType<typeof setTimeout> | undefined
  private pongTimer: ReturnType<typeof setTimeout> | undefined
  /** Socket.IO: namespace "/" connected (CONNECT answered). */
  private connected = false
  /** Set once the session's first transport is up. */
  private started = false

  constructor(
    private readonly context: EngineContext,
    private readonly maxPayload: number,
    /** Who opened the session (its handshake's client address), for the open line. */
    client: string,
  ) {
    this.data = context.frames.data(socketIoWire)
    this.data.engine = this
    this.data.client = client
  }

  /** The Engine.IO open packet. */
  openPacket(upgrades: string[]): string {
    return `0${JSON.stringify({ sid: this.sid, upgrades, pingInterval: PING_INTERVAL_MS, pingTimeout: PING_TIMEOUT_MS, maxPayload: this.maxPayload })}`
  }

  /** The session begins: counted, auth deadline and heartbeat started. */
  start(): void {
    this.started = true
    this.context.frames.opened(this)
    this.schedulePing()
  }

  get polling(): boolean {
    return this.ws === undefined
  }

  // ---- Socket (what the hub and the frame handling use) -----------------------------------------

  send(text: string): void {
    if (this.readyState !== 1) return
    if (this.ws) {
      this.ws.send(text)
      return
    }
    this.queue.push(text)
    this.queuedBytes += text.length
    this.flush()
    // Whatever queued it (a publish, or an answer to a packet the client never collects): bounded alike.
    this.context.hub.guard(this)
  }

  subscribe(topic: string): void {
    if (this.ws) return void this.ws.subscribe(topic)
    this.topics.add(topic)
    this.context.hub.addPolled(topic, this)
  }

  publish(topic: string, text: string): void {
    if (this.ws) this.ws.publish(topic, text)
    else this.context.publish(topic, text)
  }

  getBufferedAmount(): number {
    return this.ws ? this.ws.getBufferedAmount() : this.queuedBytes
  }

  cork(callback: () => void): void {
    if (this.ws) this.ws.cork(callback)
    else callback()
  }

  /**
   * Ends the session. Where reconnecting at once cannot help (a bad token, a revoked session, over the
   * user's connection cap, a flood of invalid frames) Socket.IO is first told the server disconnected the
   * socket, so the client does not reconnect by itself; anything else (shutdown, slow consumer) closes
   * only the transport, and the client reconnects.
   */
  close(code?: number, reason?: string): void {
    if (this.readyState !== 1) return
    if (code !== undefined && SERVER_DISCONNECTS.has(code)) this.send(DISCONNECT_PACKET)
    if (this.ws) this.ws.close(code, reason)
    else this.ended()
  }

  // ---- long-polling ---------------------------------------------------------------------------------

  /** A GET: the packets waiting, joined by the record separator, now or once there are some. */
  take(): string | Promise<string> {
    if (this.queue.length > 0 || this.readyState !== 1) return this.drain()
    // Upgrading: the client waits for this poll to return before it sends `upgrade`.
    if (this.upgrading) return '6'
    return new Promise<string>((resolve) => (this.poll = resolve))
  }

  get polled(): boolean {
    return this.poll !== undefined
  }

  /** A POST's body is being read: Engine.IO allows one at a time (a second ends the session, as GETs do). */
  posting = false

  /** A POST: packets joined by the record separator. False when one was no Engine.IO packet (the session ended). */
  receivePayload(body: string): boolean {
    for (const packet of body.split('\x1e')) if (this.receive(packet) === NOT_ENGINE_IO) return false
    return true
  }

  private flush(): void {
    const poll = this.poll
    if (poll && this.queue.length > 0) {
      this.poll = undefined
      poll(this.drain())
    }
  }

  /**
   * The queued packets. A closed session's last ones go alone, and its close packet with the next GET:
   * socket.io-client handles a Socket.IO packet a tick after the Engine.IO close in the same payload, so
   * DISCONNECT would come too late to stop it reconnecting.
   */
  private drain(): string {
    if (this.queue.length === 0 && this.readyState !== 1) {
      this.context.forget(this)
      return '1'
    }
    const body = this.queue.join('\x1e')
    this.queue = []
    this.queuedBytes = 0
    return body
  }

  // ---- WebSocket (Bun's handler, for the sockets of this session) ---------------------------------

  socketOpened(ws: BunSocket): void {
    if (this.readyState !== 1) return void ws.close()
    // A session that begins on a WebSocket has no sid yet in the URL: this socket is its transport.
    if (!this.ws && !this.probe && !this.started) {
      this.ws = ws
      ws.send(this.openPacket([]))
      this.start()
      return
    }
    if (this.ws || this.probe) return void ws.close()
    this.probe = ws
  }

  socketMessage(ws: BunSocket, data: string | Buffer): void {
    // Binary frames are Socket.IO attachments: their BINARY_EVENT was already refused.
    if (typeof data !== 'string') return
    if (ws === this.ws) return void this.receive(data)
    if (ws !== this.probe) return
    if (data === '2probe') {
      this.upgrading = true
      ws.send('3probe')
      // The client pauses polling: its pending GET must return.
      const poll = this.poll
      this.poll = undefined
      poll?.('6')
    } else if (data === '5' && this.upgrading) this.upgraded(ws)
  }

  socketClosed(ws: BunSocket): void {
    if (ws === this.probe) {
      this.probe = undefined
      this.upgrading = false
    } else if (ws === this.ws) this.ended()
  }

  /** The client switched to the WebSocket: subscriptions move there, and what was queued goes first. */
  private upgraded(ws: BunSocket): void {
    this.probe = undefined
    this.upgrading = false
    this.ws = ws
    for (const topic of this.topics) {
      this.context.hub.removePolled(topic, this)
      ws.subscribe(topic)
    }
    this.topics.clear()
    const poll = this.poll
    this.poll = undefined
    poll?.('6')
    const queued = this.queue
    this.queue = []
    this.queuedBytes = 0
    if (queued.length > 0) ws.cork(() => queued.forEach((packet) => ws.send(packet)))
  }

  // ---- Engine.IO and Socket.IO packets from the client --------------------------------------------

  private receive(packet: string): typeof NOT_ENGINE_IO | void {
    if (this.readyState !== 1 || packet === '') return
    switch (packet[0]) {
      case '4':
        return this.socketIo(packet.slice(1))
      case '3':
        // Only the answer to our ping counts: a pong unasked for (or a second one) would start a second
        // heartbeat, whose timeout nothing clears.
        if (this.pongTimer === undefined) return
        clearTimeout(this.pongTimer)
        this.pongTimer = undefined
        return this.schedulePing()
      case '1':
        return this.close()
      // `b…` (base64 binary over polling): an attachment, ignored as on the WebSocket; the others need no answer.
      case 'b':
      case '0':
      case '2':
      case '5':
      case '6':
        return
      default:
        // Not Engine.IO at all: the session ends, as the protocol's reference server and test suite have it.
        this.abort()
        return NOT_ENGINE_IO
    }
  }

  private socketIo(text: string): void {
    const packet = parsePacket(text)
    // A packet that is no frame goes to the frame handling like a frame that is not JSON: before auth it is
    // "another event first" (unauthorized, and the session ends), after it spends the invalid-frame budget.
    if (!packet) return this.context.frames.received(this, new AppError('bad_request', 'not a Socket.IO packet'))
    if (packet.type === CONNECT) return this.connect(packet.nsp, packet.data)
    // Events sent right behind a CONNECT whose token is being checked wait for it, as on the JSON wire.
    if (packet.nsp !== '/' || (!this.connected && !this.data.authing)) return
    switch (packet.type) {
      case EVENT: {
        const frame = frameOf(packet.data)
        if (!(frame instanceof AppError)) {
          if (packet.id !== undefined) expectsAck(frame, packet.id)
          return this.context.frames.received(this, frame)
        }
        return this.context.frames.received(this, frame, this.standIn(packet))
      }
      case BINARY_EVENT:
      case BINARY_ACK: {
        // Refused (its attachments are never read); through its callback when it has one, as any event
        // that is no frame, else as an `error` event.
        const refused = new AppError('bad_request', 'binary packets are not supported')
        return this.context.frames.received(this, refused, packet.type === BINARY_EVENT ? this.standIn(packet) : undefined)
      }
      case DISCONNECT:
        return this.close()
    }
  }

  /**
   * What an event that is no frame is answered as: its name, and its ack id, so that a client waiting on
   * its callback gets the error there, as the contract says, rather than as an `error` event.
   */
  private standIn(packet: { id?: number; data: unknown }): RawFrame | undefined {
    if (packet.id === undefined) return undefined
    const name = Array.isArray(packet.data) && typeof packet.data[0] === 'string' ? packet.data[0] : undefined
    const frame: RawFrame = name === undefined || name === 'message' ? {} : { type: name }
    expectsAck(frame, packet.id)
    return frame
  }

  /** CONNECT to "/", with the token in its auth payload (then answered once it is checked), or without. */
  private connect(nsp: string, auth: unknown): void {
    if (nsp !== '/') return this.send(connectErrorPacket(nsp, 'Invalid namespace'))
    if (this.connected || this.data.authing) return
    const fields = (auth ?? {}) as { access_token?: unknown; token?: unknown }
    const token = fields.access_token ?? fields.token
    const accepted = () => {
      this.connected = true
      this.send(connectPacket(newId()))
    }
    // No token: connected, to authenticate by event within the deadline. A token that cannot be one (empty,
    // not a string) is refused as a bad one is, as the JSON wire refuses it.
    if (token === undefined || token === null) return accepted()
    if (typeof token !== 'string' || token.length === 0) return this.send(connectErrorPacket('/', 'unauthorized', errorBody(unauthorized())))
    this.context.frames.authenticate(this, token, {
      verified: accepted,
      // The client's connect_error: `message` is the code ("unauthorized", "rate_limited"), `data` the error body.
      refused: (error) => this.send(connectErrorPacket('/', error.code, errorBody(error))),
    })
  }

  // ---- heartbeat --------------------------------------------------------------------------------

  private schedulePing(): void {
    this.pingTimer = setTimeout(() => {
      this.send('2')
      this.pongTimer = setTimeout(() => this.abort(), PING_TIMEOUT_MS)
    }, PING_INTERVAL_MS)
  }

  /** No pong in time, or a broken request: the transport goes without a word. */
  abort(): void {
    if (this.readyState !== 1) return
    if (this.ws) this.ws.close()
    else this.ended()
  }

  private ended(): void {
    if (this.readyState !== 1) return
    this.readyState = 3
    clearTimeout(this.pingTimer)
    clearTimeout(this.pongTimer)
    for (const topic of this.topics) this.context.hub.removePolled(topic, this)
    this.probe?.close()
    if (this.ws) this.context.forget(this)
    else {
      const poll = this.poll
      this.poll = undefined
      poll?.(this.drain())
      setTimeout(() => this.context.forget(this), CLOSED_POLL_GRACE_MS).unref()
    }
    this.context.frames.closed(this)
  }
}
