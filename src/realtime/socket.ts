import type { ServerWebSocket } from 'bun'
import type { TokenBucket } from '../limits/token-bucket'
import type { Wire } from './wire'

/** What the server keeps per connection (Bun's `ws.data` on the JSON wire). */
export interface ConnectionData {
  /** Set once the connection has authenticated; frames other than `auth` are refused before. */
  userId: number | undefined
  /** The login session the connection authenticated with: revoking it closes the connection. */
  sessionId: string | undefined
  /** From `?access_token=`: authenticates on open instead of by first frame. */
  queryToken: string | undefined
  /** While the token is being checked: later frames wait on it, so their order is kept. */
  authing: Promise<boolean> | undefined
  authTimer: ReturnType<typeof setTimeout> | undefined
  /** Set by the first close() so that a second reason (slow and unauthorized, say) does not close twice. */
  closing: boolean
  /** The client's address as TRUST_PROXY finds it, given at the upgrade (a Socket.IO session: its handshake): for the `ws open` line. */
  client: string | undefined
  /** message:send / delivered / read draw on the user's bucket (UserLimits); typing on the connection's. */
  typing: TokenBucket
  /** How frames are written on this connection: JSON text, or Socket.IO packets. */
  wire: Wire
  /** Set on Bun sockets that carry Engine.IO: the adapter takes their events (see socketio/). */
  engine: BunSocketHandler | undefined
}

/** The part of Bun's WebSocket handler an adapter implements for the sockets it owns. */
export interface BunSocketHandler {
  socketOpened(ws: BunSocket): void
  socketMessage(ws: BunSocket, data: string | Buffer): void
  socketClosed(ws: BunSocket): void
}

export type BunSocket = ServerWebSocket<ConnectionData>

/**
 * A connection as the hub sees it: a Bun WebSocket on the JSON wire (as is), or an adapter's socket that
 * behaves like one (a Socket.IO session, over a WebSocket or long-polling). `send` takes the wire's text.
 */
export interface Socket {
  data: ConnectionData
  readonly readyState: number
  send(text: string): unknown
  /** Receives what is published on `topic` from now on. */
  subscribe(topic: string): void
  /** Publishes to the topic's subscribers other than this connection. */
  publish(topic: string, text: string): unknown
  getBufferedAmount(): number
  close(code?: number, reason?: string): void
  cork(callback: () => void): unknown
}

export const CLOSE_GOING_AWAY = 1001
export const CLOSE_TRY_AGAIN_LATER = 1013
export const CLOSE_UNAUTHORIZED = 4401

export function closeSocket(ws: Socket, code: number, reason: string): void {
  if (ws.data.closing) return
  ws.data.closing = true
  ws.close(code, reason)
}
