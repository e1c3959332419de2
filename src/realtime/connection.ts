import type { Server, WebSocketHandler } from 'bun'
import type { Core } from '../app'
import { peerOf } from '../dialogs/membership'
import { AppError, toAppError, unauthorized } from '../errors'
import { TokenBucket } from '../limits/token-bucket'
import { CLOSE_POLICY_VIOLATION, InvalidFrames } from '../limits/invalid-frames'
import { CLOSE_TOO_MANY_CONNECTIONS } from '../limits/user-limits'
import { parseInstant } from '../shared/time'
import {
  ackFrame,
  authOkFrame,
  errorFrame,
  parseFrame,
  PONG,
  validateFrame,
  type ClientFrame,
  type RawFrame,
} from './protocol'
import { closeSocket, CLOSE_UNAUTHORIZED, type ConnectionData, type Socket } from './socket'

// Typing indicators are cosmetic: a few per second is plenty, and they fan out to every peer device.
const TYPING_BURST = 10
const TYPING_PER_SEC = 3

const PATHS = new Set(['/ws', '/ws/', '/socket.io', '/socket.io/'])

/** The WebSocket endpoints: the upgrade, Bun's handler, and a graceful stop for shutdown. */
export interface Realtime {
  /** Upgrades a request to /ws or /socket.io/; false for anything else, which the HTTP app answers. */
  upgrade(request: Request, server: Server<ConnectionData>): boolean
  websocket: WebSocketHandler<ConnectionData>
  /** Shutdown: later frames are refused; resolves when every frame already received has been answered. */
  quiesce(): Promise<void>
}

export function createRealtime(core: Core): Realtime {
  const { config, hub, metrics } = core
  // Frames whose work is still running; shutdown waits for the count to reach zero.
  let inFlight = 0
  let idle: (() => void) | undefined
  let refusing = false
  const invalidFrames = new InvalidFrames()

  const reply = (ws: Socket, frame: string) => {
    metrics.frameOut(frame)
    ws.send(frame)
    hub.guard(ws)
  }
  const fail = (ws: Socket, error: unknown, raw?: RawFrame) => reply(ws, errorFrame(toAppError(error), raw))

  /** Runs a frame's asynchronous work; shutdown waits for it, so its ack goes out before the 1001 close. */
  const track = (ws: Socket, raw: RawFrame, work: Promise<unknown>) => {
    inFlight++
    const settled = () => {
      if (--inFlight === 0) idle?.()
    }
    work.then(settled, (error) => {
      fail(ws, error, raw)
      settled()
    })
  }

  const reject = (ws: Socket, message: string, raw?: RawFrame) => {
    if (ws.data.closing) return
    ws.send(errorFrame(unauthorized(message), raw))
    closeSocket(ws, CLOSE_UNAUTHORIZED, 'unauthorized')
  }

  /** Counts the connection against the user's cap (released on close); over it → error frame, close 4429. */
  const admit = (ws: Socket, userId: number, raw?: RawFrame) => {
    try {
      core.limits.admit(userId, ws)
      return true
    } catch (error) {
      ws.send(errorFrame(toAppError(error), raw))
      closeSocket(ws, CLOSE_TOO_MANY_CONNECTIONS, 'too many connections for this user')
      return false
    }
  }

  /** Checks the token, then registers the connection with the hub; auth:ok only once it is subscribed. */
  const authenticate = (ws: Socket, token: string, raw?: RawFrame) => {
    const authing = (async () => {
      try {
        const principal = await core.auth.authenticate(token)
        if (ws.data.closing) return false
        if (!admit(ws, principal.userId, raw)) return false
        ws.data.userId = principal.userId
        ws.data.sessionId = principal.sessionId
        clearTimeout(ws.data.authTimer)
        return await hub.connect(ws, principal.userId, authOkFrame(principal.userId))
      } catch (error) {
        const appError = toAppError(error)
        if (appError.code === 'unauthorized') reject(ws, appError.message, raw)
        else {
          // The database failing is not the client's fault: say so, and let it retry.
          fail(ws, appError, raw)
          closeSocket(ws, 1011, 'internal error')
        }
        return false
      } finally {
        ws.data.authing = undefined
      }
    })()
    ws.data.authing = authing
  }

  const route = (ws: Socket, userId: number, frame: ClientFrame) => {
    switch (frame.type) {
      case 'ping':
        return reply(ws, PONG)
      case 'message:send':
        return track(
          ws,
          frame,
          core.messages
            .send(
              userId,
              {
                dialogId: frame.dialog_id,
                clientMsgId: frame.client_msg_id,
                type: frame.msg_type,
                text: frame.text,
                attachmentId: frame.attachment_id,
              },
              ws,
            )
            .then(({ message }) => hub.replyLater(ws, ackFrame(frame.client_msg_id, message))),
        )
      case 'message:delivered':
        return track(
          ws,
          frame,
          core.messages.delivered(userId, frame.message_id, instant('delivered_at', frame.delivered_at), ws),
        )
      case 'message:read':
        return track(
          ws,
          frame,
          core.messages.readUpTo(userId, frame.dialog_id, frame.last_read_message_id, instant('read_at', frame.read_at), ws),
        )
      case 'message:edit':
        return track(ws, frame, core.messages.editById(userId, frame.message_id, frame.text))
      case 'message:delete':
        return track(ws, frame, core.messages.removeById(userId, frame.message_id))
      case 'typing':
        return track(
          ws,
          frame,
          Promise.resolve(core.membership.require(frame.dialog_id, userId)).then((members) =>
            hub.typing(frame.dialog_id, userId, peerOf(members, userId), frame.state),
          ),
        )
      case 'auth':
        throw new AppError('bad_request', 'already authenticated')
    }
  }

  const limit = (ws: Socket, frame: ClientFrame) => {
    if (frame.type === 'ping' || frame.type === 'auth') return
    if (frame.type !== 'typing') return core.limits.takeSend(ws.data.userId!)
    const wait = ws.data.typing.take()
    if (wait > 0) throw new AppError('rate_limited', 'typing too fast', undefined, Math.max(1, Math.ceil(wait)))
  }

  const handle = (ws: Socket, data: string | Buffer) => {
    let raw: RawFrame | undefined
    let frame: ClientFrame | undefined
    try {
      raw = parseFrame(data)
      frame = validateFrame(raw)
      // Labelled by validated type only: a client-chosen label would let anyone grow the metric without bound.
      metrics.wsFrames.inc({ type: frame.type })
      if (refusing) throw new AppError('unavailable', 'server is shutting down; reconnect and resend')
      limit(ws, frame)
      route(ws, ws.data.userId!, frame)
    } catch (error) {
      if (!frame) metrics.wsFrames.inc({ type: 'invalid' })
      fail(ws, error, raw)
      const code = error instanceof AppError ? error.code : undefined
      if ((code === 'bad_request' || code === 'validation_failed') && !invalidFrames.take(ws))
        closeSocket(ws, CLOSE_POLICY_VIOLATION, 'too many invalid frames')
    }
  }

  /** Before authentication: only an `auth` frame is accepted; anything else ends the connection. */
  const handleFirst = (ws: Socket, data: string | Buffer) => {
    let raw: RawFrame | undefined
    try {
      raw = parseFrame(data)
    } catch {
      return reject(ws, 'the first frame must be {"type":"auth","access_token":...}')
    }
    if (raw.type !== 'auth' || typeof raw.access_token !== 'string' || raw.access_token.length === 0)
      return reject(ws, 'the first frame must be {"type":"auth","access_token":...}', raw)
    authenticate(ws, raw.access_token, raw)
  }

  const websocket: WebSocketHandler<ConnectionData> = {
    // Oversize frames close with 1009 (Bun); this is the contract's body limit, also for frames.
    maxPayloadLength: config.maxBodyBytes,
    idleTimeout: config.wsIdleTimeoutSec,
    sendPings: true,
    // The hub closes slow consumers with 1013 at wsBackpressureBytes; Bun's own limit (an abrupt close)
    // is only the backstop, set above it with room for the frames published between two checks.
    backpressureLimit: config.wsBackpressureBytes * 2 + config.maxBodyBytes * 4,
    closeOnBackpressureLimit: true,
    open(ws) {
      metrics.openConnections.inc({}, 1)
      if (ws.data.queryToken) authenticate(ws, ws.data.queryToken)
      ws.data.authTimer = setTimeout(() => {
        if (ws.data.userId === undefined && !ws.data.authing) reject(ws, 'no auth frame in time')
      }, config.wsAuthTimeoutMs)
    },
    message(ws, data) {
      if (ws.data.userId !== undefined) return handle(ws, data)
      const authing = ws.data.authing
      // Frames sent right behind `auth` wait for its answer, in order.
      if (authing) void authing.then((ok) => ok && handle(ws, data))
      else handleFirst(ws, data)
    },
    close(ws) {
      metrics.openConnections.inc({}, -1)
      ws.data.closing = true
      clearTimeout(ws.data.authTimer)
      if (ws.data.userId !== undefined) core.limits.release(ws.data.userId, ws)
      hub.disconnect(ws)
    },
  }

  return {
    websocket,
    upgrade(request, server) {
      const url = request.url
      // The bare path when the Host header is one Bun cannot use (see http/host.ts).
      const pathStart = url.startsWith('/') ? 0 : url.indexOf('/', url.indexOf('//') + 2)
      const queryStart = url.indexOf('?', pathStart)
      if (!PATHS.has(queryStart === -1 ? url.slice(pathStart) : url.slice(pathStart, queryStart))) return false
      const queryToken = queryStart === -1 ? undefined : new URLSearchParams(url.slice(queryStart)).get('access_token')
      return server.upgrade(request, {
        data: {
          userId: undefined,
          sessionId: undefined,
          queryToken: queryToken || undefined,
          authing: undefined,
          authTimer: undefined,
          closing: false,
          typing: new TokenBucket(TYPING_BURST, TYPING_PER_SEC),
        },
      })
    },
    async quiesce() {
      refusing = true
      if (inFlight > 0) await new Promise<void>((resolve) => (idle = resolve))
    },
  }
}

const instant = (field: string, value: string | undefined) => (value === undefined ? new Date() : parseInstant(field, value))
