import type { WebSocketHandler } from 'bun'
import type { ConnectionData } from '../realtime/socket'
import type { Logger } from './logger'

/**
 * Wraps the WebSocket handler with one log line when a connection opens and one when it closes (code,
 * reason, user, how long it lived). Frames are not logged: they carry tokens and message text.
 */
export function logSockets(handler: WebSocketHandler<ConnectionData>, log: Logger): WebSocketHandler<ConnectionData> {
  if (!log.enabled('info')) return handler
  const opened = new WeakMap<object, number>()
  return {
    ...handler,
    open(ws) {
      opened.set(ws, performance.now())
      // The socket's peer: behind a proxy, the proxy (the HTTP lines carry the client address TRUST_PROXY finds).
      log.info('ws open', { peer: ws.remoteAddress })
      return handler.open?.(ws)
    },
    close(ws, code, reason) {
      const at = opened.get(ws)
      log.info('ws close', {
        user_id: ws.data.userId ?? null,
        code,
        reason: reason || undefined,
        ms: at === undefined ? undefined : Math.round(performance.now() - at),
      })
      return handler.close?.(ws, code, reason)
    },
  }
}
