import type { Server, WebSocketHandler } from 'bun'
import type { Core } from '../app'
import { peerOf } from '../dialogs/membership'
import { AppError, toAppError, unauthorized } from '../errors'
import { queryOf } from '../http/host'
import { TokenBucket } from '../limits/token-bucket'
import { CLOSE_POLICY_VIOLATION, InvalidFrames } from '../limits/invalid-frames'
import { CLOSE_TOO_MANY_CONNECTIONS } from '../limits/user-limits'
import { parseInstant } from '../shared/time'
import {
  ackFrame,
  authOkFrame,
  editedFrame,
  parseFrame,
  PONG,
  validateFrame,
  type ClientFrame,
  type RawFrame,
} from './protocol'
import { closeSocket, CLOSE_UNAUTHORIZED, type ConnectionData, type Socket } from './socket'
import { jsonWire } from './wire'

// Typing indicators are cosmetic: a few per second is plenty, and they fan out to every peer device.
const TYPING_BURST = 10
const TYPING_PER_SEC = 3

// The JSON wire's paths, and the route pattern each is logged under.
const ROUTES = new Map([
  ['/ws', '/ws'],
  ['/ws/', '/ws'],
  ['/socket.io', '/socket.io/'],
  ['/socket.io/', '/socket.io/'],
])

/** The WebSocket endpoints: the upgrade, Bun's handler, and a graceful stop for shutdown. */
export interface Realtime {
  /** The route pattern of a path the JSON wire is on (/ws, /socket.io/), else undefined. */
  route(path: string): string | undefined
  /**
   * Upgrades a request for such a path, its 101 echoing the request id; false when it is no WebSocket
   * handshake, which the HTTP app answers. `client` is the address TRUST_PROXY finds, for the open line.
   */
  upgrade(request: Request, server: Server<ConnectionData>, trace: { id: string; client: string }): boolean
  websocket: WebSocketHandler<ConnectionData>
  /** Shutdown: later frames are refused; resolves when every frame already received has been answered. */
  quiesce(): Promise<void>
  /** The same frame handling for the connections of another wire (Socket.IO), which parse frames themselves. */
  frames: Frames
}

/** What a wire adapter hands its connections' events to: below it, no code knows which wire a frame came by. */
export interface Frames {
  /** Counts the connection and starts its auth deadline. */
  opened(ws: Socket): void
  /**
   * A client frame, parsed (or why it could not be). With an error, `request` stands for the frame that
   * could not be one, so that the error answers it (a Socket.IO event's ack id, its name).
   */
  received(ws: Socket, frame: RawFrame | AppError, request?: RawFrame): void
  closed(ws: Socket): void
  /**
   * Authenticates with a token given outside a frame (Socket.IO's CONNECT). `verified` runs once the
   * token is good and the connection admitted, right before auth:ok, in the tick that subscribes the
   * connection (what it sends, Socket.IO's CONNECT answer, is where a client resyncs: nothing published
   * after it may be missed); `refused` replaces the error and close of
   * a bad token (unauthorized) or of a user over the connection cap (rate_limited).
   */
  authenticate(ws: Socket, token: string, hooks: AuthHooks): void
  /** Fresh per-connection state for a connection of `wire`. */
  data(wire: ConnectionData['wire'], queryToken?: string): ConnectionData
}

type AuthHooks = { verified(): void; refused(error: AppError): void }

export function createRealtime(core: Core): Realtime {
  const { config, hub, metrics } = core
  // Frames whose work is still running; shutdown waits for the count to reach zero.
  let inFlight = 0
  let idle: (() => void) | undefined
  let refusing = false
  const invalidFrames = new InvalidFrames()

  // Frames out are counted by our frame type (the JSON frame, before a wire encodes it), whatever the wire.
  const reply = (ws: Socket, frame: string, raw: RawFrame) => {
    metrics.frameOut(frame)
    ws.send(ws.data.wire.answer(frame, raw))
    hub.guard(ws)
  }
  const fail = (ws: Socket, error: unknown, raw?: RawFrame) => {
    metrics.wsFramesOut.inc({ type: 'error' })
    ws.send(ws.data.wire.failure(toAppError(error), raw))
    hub.guard(ws)
  }

  /**
   * Runs a frame's asynchronous work; shutdown waits for it, so its ack goes out before the 1001 close.
   * Work that resolves to a frame (message:edit → its message:edited) has answered with that event
   * already; a wire that confirms frames (Socket.IO's ack callbacks) confirms with its payload.
   */
  const track = (ws: Socket, raw: RawFrame, work: Promise<unknown>) => {
    inFlight++
    const settled = () => {
      if (--inFlight === 0) idle?.()
    }
    work.then(
      (result) => {
        // A frame without an answer of its own (a receipt, typing): some wires confirm it was acted on.
        const done = ws.data.wire.done(raw, typeof result === 'string' ? result : undefined)
        if (done !== undefined) hub.confirmLater(ws, done)
        settled()
      },
      (error) => {
        refuse(ws, error, raw)
        settled()
      },
    )
  }

  /**
   * A frame that failed: its error frame, and a refused frame (bad_request, validation_failed — found by the
   * frame's check or by its work, a blank text say) spends the connection's invalid-frame budget.
   */
  const refuse = (ws: Socket, error: unknown, raw?: RawFrame) => {
    fail(ws, error, raw)
    const code = error instanceof AppError ? error.code : undefined
    if ((code === 'bad_request' || code === 'validation_failed') && !invalidFrames.take(ws))
      closeSocket(ws, CLOSE_POLICY_VIOLATION, 'too many invalid frames')
  }

  const reject = (ws: Socket, message: string, raw?: RawFrame) => {
    if (ws.data.closing) return
    ws.send(ws.data.wire.failure(unauthorized(message), raw))
    closeSocket(ws, CLOSE_UNAUTHORIZED, 'unauthorized')
  }

  /**
   * Counts the connection against the user's cap (released on close), whatever its wire; over it → error
   * frame and close 4429 (or the hooks' refusal: Socket.IO's CONNECT_ERROR).
   */
  const admit = (ws: Socket, userId: number, raw?: RawFrame, hooks?: AuthHooks) => {
    try {
      core.limits.admit(userId, ws)
      return true
    } catch (error) {
      const appError = toAppError(error)
      if (hooks) hooks.refused(appError)
      else ws.send(ws.data.wire.failure(appError, raw))
      closeSocket(ws, CLOSE_TOO_MANY_CONNECTIONS, 'too many connections for this user')
      return false
    }
  }

  /** Checks the token, then registers the connection with the hub; auth:ok only once it is subscribed. */
  const authenticate = (ws: Socket, token: string, raw?: RawFrame, hooks?: AuthHooks) => {
    const authing = (async () => {
      try {
        const principal = await core.auth.authenticate(token)
        if (ws.data.closing) return false
        if (!admit(ws, principal.userId, raw, hooks)) return false
        ws.data.userId = principal.userId
        ws.data.sessionId = principal.sessionId
        clearTimeout(ws.data.authTimer)
        return await hub.connect(ws, principal.userId, authOkFrame(principal.userId), raw, hooks?.verified)
      } catch (error) {
        const appError = toAppError(error)
        if (appError.code === 'unauthorized') {
          if (hooks) hooks.refused(appError)
          else reject(ws, appError.message, raw)
        } else {
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
        return reply(ws, PONG, frame)
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
            .then(({ message }) => hub.replyLater(ws, ackFrame(frame.client_msg_id, message), frame)),
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
        return track(ws, frame, core.messages.editById(userId, frame.message_id, frame.text).then(editedFrame))
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

  const handle = (ws: Socket, input: RawFrame | AppError, request?: RawFrame) => {
    const raw = input instanceof AppError ? undefined : input
    let frame: ClientFrame | undefined
    try {
      if (!raw) throw input
      frame = validateFrame(raw)
      // Labelled by validated type only: a client-chosen label would let anyone grow the metric without bound.
      metrics.wsFrames.incFor('type', frame.type)
      if (refusing) throw new AppError('unavailable', 'server is shutting down; reconnect and resend')
      limit(ws, frame)
      route(ws, ws.data.userId!, frame)
    } catch (error) {
      if (!frame) metrics.wsFrames.incFor('type', 'invalid')
      refuse(ws, error, raw ?? request)
    }
  }

  /** Before authentication: only an `auth` frame is accepted; anything else ends the connection. */
  const handleFirst = (ws: Socket, raw: RawFrame | AppError, request?: RawFrame) => {
    if (raw instanceof AppError) return reject(ws, 'the first frame must be {"type":"auth","access_token":...}', request)
    if (raw.type !== 'auth' || typeof raw.access_token !== 'string' || raw.access_token.length === 0)
      return reject(ws, 'the first frame must be {"type":"auth","access_token":...}', raw)
    authenticate(ws, raw.access_token, raw)
  }

  const opened = (ws: Socket) => {
    metrics.openConnections.inc({}, 1)
    if (ws.data.queryToken) authenticate(ws, ws.data.queryToken)
    ws.data.authTimer = setTimeout(() => {
      if (ws.data.userId === undefined && !ws.data.authing) reject(ws, 'no auth frame in time')
    }, config.wsAuthTimeoutMs)
  }

  const received = (ws: Socket, frame: RawFrame | AppError, request?: RawFrame) => {
    const authing = ws.data.authing
    // Frames sent right behind `auth` wait for its answer, in order; userId is known before that answer
    // (the hub still subscribes the connection), so it is not what tells.
    if (authing) void authing.then((ok) => ok && handle(ws, frame, request))
    else if (ws.data.userId !== undefined) handle(ws, frame, request)
    else handleFirst(ws, frame, request)
  }

  const closed = (ws: Socket) => {
    metrics.openConnections.inc({}, -1)
    ws.data.closing = true
    clearTimeout(ws.data.authTimer)
    if (ws.data.userId !== undefined) core.limits.release(ws.data.userId, ws)
    hub.disconnect(ws)
  }

  const data = (wire: ConnectionData['wire'], queryToken?: string): ConnectionData => ({
    userId: undefined,
    sessionId: undefined,
    queryToken,
    authing: undefined,
    authTimer: undefined,
    closing: false,
    client: undefined,
    typing: new TokenBucket(TYPING_BURST, TYPING_PER_SEC),
    wire,
    engine: undefined,
  })

  const websocket: WebSocketHandler<ConnectionData> = {
    // Oversize frames close with 1009 (Bun); this is the contract's body limit, also for frames.
    maxPayloadLength: config.maxBodyBytes,
    idleTimeout: config.wsIdleTimeoutSec,
    sendPings: true,
    // The hub closes slow consumers with 1013 at wsBackpressureBytes; Bun's own limit (an abrupt close)
    // is only the backstop, set above it with room for the frames published between two checks.
    backpressureLimit: config.wsBackpressureBytes * 2 + config.maxBodyBytes * 4,
    closeOnBackpressureLimit: true,
    // A socket of another wire (Engine.IO) goes to its adapter.
    open: (ws) => (ws.data.engine ? ws.data.engine.socketOpened(ws) : opened(ws)),
    message: (ws, data) => (ws.data.engine ? ws.data.engine.socketMessage(ws, data) : received(ws, read(data))),
    close: (ws) => (ws.data.engine ? ws.data.engine.socketClosed(ws) : closed(ws)),
  }

  return {
    websocket,
    frames: {
      opened,
      received,
      closed,
      authenticate: (ws, token, hooks) => authenticate(ws, token, undefined, hooks),
      data,
    },
    route: (path) => ROUTES.get(path),
    upgrade(request, server, { id, client }) {
      const query = queryOf(request.url)
      const connection = data(jsonWire, (query && new URLSearchParams(query).get('access_token')) || undefined)
      connection.client = client
      return server.upgrade(request, { data: connection, headers: { 'x-request-id': id } })
    },
    async quiesce() {
      refusing = true
      if (inFlight > 0) await new Promise<void>((resolve) => (idle = resolve))
    },
  }
}

/** A JSON-wire message as a frame, or why it is not one. */
const read = (data: string | Buffer): RawFrame | AppError => {
  try {
    return parseFrame(data)
  } catch (error) {
    return toAppError(error)
  }
}

const instant = (field: string, value: string | undefined) => (value === undefined ? new Date() : parseInstant(field, value))
