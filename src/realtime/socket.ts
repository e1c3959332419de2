import type { ServerWebSocket } from 'bun'
import type { TokenBucket } from '../limits/token-bucket'

/** What the server keeps per WebSocket connection (Bun's `ws.data`). */
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
  /** message:send / delivered / read draw on the user's bucket (UserLimits); typing on the connection's. */
  typing: TokenBucket
}

export type Socket = ServerWebSocket<ConnectionData>

export const CLOSE_GOING_AWAY = 1001
export const CLOSE_TRY_AGAIN_LATER = 1013
export const CLOSE_UNAUTHORIZED = 4401

export function closeSocket(ws: Socket, code: number, reason: string): void {
  if (ws.data.closing) return
  ws.data.closing = true
  ws.close(code, reason)
}
