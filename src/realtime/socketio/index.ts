import type { Server } from 'bun'
import type { Core } from '../../app'
import { readCapped } from '../../http/edge'
import type { Frames } from '../connection'
import type { ConnectionData } from '../socket'
import { PING_INTERVAL_MS, PING_TIMEOUT_MS, Session, type EngineContext } from './session'

export { socketIoWire } from './packets'

/**
 * Socket.IO clients (Engine.IO v4 + Socket.IO v5) on /socket.io/ when the query has EIO: the handshake,
 * long-polling (GET takes queued packets, POST brings the client's) and the WebSocket transport, direct
 * or by upgrade. Only the transports live here; sessions are in session.ts, packets in packets.ts.
 */
export interface SocketIo {
  /** /socket.io/ with EIO in the query. */
  accepts(request: Request): boolean
  /**
   * Answers it (undefined: upgraded to a WebSocket, the 101 echoing the request id). `client` is the
   * address TRUST_PROXY finds, kept for a new session's open line.
   */
  fetch(request: Request, server: Server<ConnectionData>, trace: { id: string; client: string }): Response | Promise<Response> | undefined
}

// Engine.IO's error bodies.
const TRANSPORT_UNKNOWN = 0
const SESSION_ID_UNKNOWN = 1
const BAD_HANDSHAKE_METHOD = 2
const BAD_REQUEST = 3
const UNSUPPORTED_PROTOCOL_VERSION = 5
const POLL_TIMEOUT_SEC = (PING_INTERVAL_MS + PING_TIMEOUT_MS) / 1000
const MESSAGES = ['Transport unknown', 'Session ID unknown', 'Bad handshake method', 'Bad request', 'Forbidden', 'Unsupported protocol version']

export function createSocketIo(core: Core, frames: Frames): SocketIo {
  const { config } = core
  const maxPayload = config.maxBodyBytes
  const sessions = new Map<string, Session>()
  let server: Server<ConnectionData> | undefined
  const context: EngineContext = {
    hub: core.hub,
    frames,
    publish: (topic, text) => server?.publish(topic, text),
    forget: (session) => {
      if (sessions.get(session.sid) === session) sessions.delete(session.sid)
    },
  }

  // As the HTTP app's CORS: `*` without credentials when CORS_ORIGINS is `*`; a listed origin echoed, with them.
  const corsOf = (request: Request): Record<string, string> => {
    const origin = request.headers.get('origin')
    if (!origin) return {}
    if (config.corsOrigins === '*') return { 'access-control-allow-origin': '*' }
    if (!config.corsOrigins.includes(origin)) return {}
    return { 'access-control-allow-origin': origin, 'access-control-allow-credentials': 'true', vary: 'Origin' }
  }
  const text = (request: Request, body: string, status = 200) =>
    new Response(body, { status, headers: { 'content-type': 'text/plain; charset=UTF-8', ...corsOf(request) } })
  const error = (request: Request, code: number, status = 400) =>
    Response.json({ code, message: MESSAGES[code] }, { status, headers: corsOf(request) })

  const poll = async (request: Request, session: Session, server: Server<ConnectionData>): Promise<Response> => {
    if (request.method === 'GET') {
      // One GET at a time (a second one ends the session), and none once the session moved to a WebSocket.
      if (!session.polling) return error(request, BAD_REQUEST)
      if (session.polled) {
        session.abort()
        return error(request, BAD_REQUEST)
      }
      // A GET waits up to a ping interval (Bun's default idle timeout is 10 s).
      server.timeout(request, POLL_TIMEOUT_SEC)
      return text(request, await session.take())
    }
    if (request.method !== 'POST') return error(request, BAD_REQUEST)
    // A closed session is kept a moment only so that a GET can collect its last packets: nothing more goes in.
    if (session.readyState !== 1) return error(request, SESSION_ID_UNKNOWN)
    // One POST at a time, as one GET: two in flight could deliver their packets out of order.
    if (session.posting) {
      session.abort()
      return error(request, BAD_REQUEST)
    }
    // The server reads bodies unbounded (see server.ts): an announced length is refused on arrival, a
    // chunked body at the limit.
    let body: Uint8Array | undefined
    session.posting = true
    try {
      if (Number(request.headers.get('content-length') ?? 0) <= maxPayload) body = await readCapped(request, maxPayload).catch(() => undefined)
    } finally {
      session.posting = false
    }
    if (!body) {
      session.abort()
      return text(request, 'payload too large', 413)
    }
    // A payload holding what is no Engine.IO packet (it ended the session) is refused.
    return session.receivePayload(new TextDecoder().decode(body)) ? text(request, 'ok') : error(request, BAD_REQUEST)
  }

  return {
    accepts(request) {
      const url = request.url
      // The bare path when the Host header is one Bun cannot use (see http/host.ts).
      const pathStart = url.startsWith('/') ? 0 : url.indexOf('/', url.indexOf('//') + 2)
      const queryStart = url.indexOf('?', pathStart)
      if (queryStart < 0) return false
      const path = url.slice(pathStart, queryStart)
      return (path === '/socket.io/' || path === '/socket.io') && /[?&]EIO=/.test(url.slice(queryStart))
    },
    fetch(request, bunServer, { id, client }) {
      server = bunServer
      if (request.method === 'OPTIONS')
        return new Response(null, {
          status: 204,
          headers: {
            ...corsOf(request),
            'access-control-allow-methods': 'GET, POST',
            'access-control-allow-headers': request.headers.get('access-control-request-headers') ?? '',
          },
        })
      // Not `new URL`: the URL may be the bare path (see accepts).
      const query = new URLSearchParams(request.url.slice(request.url.indexOf('?')))
      if (query.get('EIO') !== '4') return error(request, UNSUPPORTED_PROTOCOL_VERSION)
      const transport = query.get('transport')
      const sid = query.get('sid')
      if (transport === 'websocket') {
        if (request.headers.get('upgrade')?.toLowerCase() !== 'websocket') return error(request, BAD_REQUEST)
        const session = sid ? sessions.get(sid) : new Session(context, maxPayload, client)
        if (!session || (sid && (!session.polling || session.readyState !== 1))) return error(request, SESSION_ID_UNKNOWN)
        return bunServer.upgrade(request, { data: session.data, headers: { 'x-request-id': id } }) ? undefined : error(request, BAD_REQUEST)
      }
      if (transport !== 'polling') return error(request, TRANSPORT_UNKNOWN)
      if (sid) {
        const session = sessions.get(sid)
        return session ? poll(request, session, bunServer) : error(request, SESSION_ID_UNKNOWN)
      }
      if (request.method !== 'GET') return error(request, BAD_HANDSHAKE_METHOD)
      const session = new Session(context, maxPayload, client)
      sessions.set(session.sid, session)
      session.start()
      return text(request, session.openPacket(['websocket']))
    },
  }
}
