import type { WebSocketHandler } from 'bun'
import type { Frames } from '../realtime/connection'
import type { ConnectionData } from '../realtime/socket'
import type { Logger } from './logger'

/**
 * Wraps the WebSocket handler with one log line when a connection opens and one when it closes (code,
 * reason, user, how long it lived). Frames are not logged: they carry tokens and message text. Sockets
 * that carry Socket.IO are left to `logFrames`, which logs their sessions.
 */
export function logSockets(handler: WebSocketHandler<ConnectionData>, log: Logger): WebSocketHandler<ConnectionData> {
  if (!log.enabled('info')) return handler
  const opened = new WeakMap<object, number>()
  return {
    ...handler,
    open(ws) {
      if (ws.data.engine) return handler.open?.(ws)
      opened.set(ws, performance.now())
      // The client as the upgrade's request line names it (TRUST_PROXY), not the socket's peer: the proxy's.
      log.info('ws open', { client: ws.data.client })
      return handler.open?.(ws)
    },
    close(ws, code, reason) {
      if (ws.data.engine) return handler.close?.(ws, code, reason)
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

/**
 * The same lines for Socket.IO sessions, once per session whatever carries it (long-polling, a WebSocket,
 * or one then the other), at the frame handling's open and close. A session has no single close code.
 */
export function logFrames(frames: Frames, log: Logger): Frames {
  if (!log.enabled('info')) return frames
  const opened = new WeakMap<object, number>()
  return {
    ...frames,
    opened(ws) {
      opened.set(ws, performance.now())
      log.info('ws open', { wire: 'socket.io', client: ws.data.client })
      frames.opened(ws)
    },
    closed(ws) {
      const at = opened.get(ws)
      log.info('ws close', {
        wire: 'socket.io',
        user_id: ws.data.userId ?? null,
        ms: at === undefined ? undefined : Math.round(performance.now() - at),
      })
      frames.closed(ws)
    },
  }
}
