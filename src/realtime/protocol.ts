import { Type as T, type Static, type TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import type { DialogDto } from '../dialogs/model'
import { AppError } from '../errors'
import type { DeletedEvent, MessageDto, ReactionsEvent, StatusEvent } from '../messages/model'
import { charCount, MAX_CLIENT_MSG_ID_CHARS, MAX_TEXT_CHARS } from '../shared/text'
import { MAX_ID } from '../shared/ids'
import { chars } from '../shared/schema'
import { parseJson } from '../shared/json'

/*
 * The WebSocket protocol of CONTRACT.md: the client frames' schemas (compiled once, so checking a frame
 * is a generated function, not a schema walk) and the server frames' encoders. Field names are the
 * contract's; docs/PROTOCOL.md describes them with examples.
 */

const Id = T.Integer({ minimum: 1, maximum: MAX_ID })
// Timestamps are parsed by parseInstant (which names the field); the schema only bounds their size.
const Instant = T.String({ maxLength: 64 })
// Bounds the raw size; MessageService counts characters (code points), as for text.
const ClientMsgId = T.String({ minLength: 1, ...chars(MAX_CLIENT_MSG_ID_CHARS) })

const schemas = {
  auth: T.Object({ type: T.Literal('auth'), access_token: T.String({ minLength: 1, maxLength: 4096 }) }),
  'message:send': T.Object({
    type: T.Literal('message:send'),
    dialog_id: Id,
    client_msg_id: ClientMsgId,
    msg_type: T.Union([T.Literal('text'), T.Literal('image'), T.Literal('file')]),
    // Bounds the raw size; MessageService counts characters (code points) and checks text against the type.
    text: T.Optional(T.String(chars(MAX_TEXT_CHARS))),
    attachment_id: T.Optional(Id),
  }),
  'message:delivered': T.Object({
    type: T.Literal('message:delivered'),
    message_id: Id,
    delivered_at: T.Optional(Instant),
  }),
  'message:read': T.Object({
    type: T.Literal('message:read'),
    dialog_id: Id,
    last_read_message_id: Id,
    read_at: T.Optional(Instant),
  }),
  'message:edit': T.Object({
    type: T.Literal('message:edit'),
    message_id: Id,
    // Bounds the raw size; the edit counts characters and rejects blank text for a text message, as a send does.
    text: T.String(chars(MAX_TEXT_CHARS)),
  }),
  'message:delete': T.Object({ type: T.Literal('message:delete'), message_id: Id }),
  typing: T.Object({
    type: T.Literal('typing'),
    dialog_id: Id,
    state: T.Union([T.Literal('start'), T.Literal('stop')]),
  }),
  ping: T.Object({ type: T.Literal('ping') }),
} satisfies Record<string, TSchema>

export type FrameType = keyof typeof schemas
export type ClientFrame = { [K in FrameType]: Static<(typeof schemas)[K]> }[FrameType]
export const FRAME_TYPES = Object.keys(schemas) as FrameType[]

const checks = Object.fromEntries(FRAME_TYPES.map((type) => [type, TypeCompiler.Compile(schemas[type])])) as {
  [K in FrameType]: TypeCheck<(typeof schemas)[K]>
}

/** A parsed frame before validation: kept so an error can echo its `type` and `client_msg_id`. */
export type RawFrame = Record<string, unknown>

/** Text → a JSON object with a string `type`, else bad_request. */
export function parseFrame(data: string | Buffer): RawFrame {
  if (typeof data !== 'string') throw new AppError('bad_request', 'frames are JSON text, not binary')
  let value: unknown
  try {
    value = parseJson(data)
  } catch {
    throw new AppError('bad_request', 'frame is not valid JSON')
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new AppError('bad_request', 'frame must be a JSON object')
  if (typeof (value as RawFrame).type !== 'string')
    throw new AppError('bad_request', 'frame has no string "type"', { field: 'type' })
  return value as RawFrame
}

/** A parsed frame → a known, valid client frame: bad_request for an unknown type, else validation_failed. */
export function validateFrame(raw: RawFrame): ClientFrame {
  const type = raw.type as string
  const check = Object.hasOwn(checks, type) ? checks[type as FrameType] : undefined
  if (!check) throw new AppError('bad_request', `unknown frame type`, { field: 'type' })
  if (check.Check(raw)) return raw as ClientFrame
  const first = check.Errors(raw).First()
  const field = first?.path.replace(/^\//, '').replace(/\//g, '.') || 'type'
  throw new AppError('validation_failed', `${field}: ${first?.message ?? 'invalid'}`, { field })
}

// ---- server → client -------------------------------------------------------------------------

export const PONG = '{"type":"pong"}'

export const authOkFrame = (userId: number) => JSON.stringify({ type: 'auth:ok', user_id: userId })

// A sent message goes out twice (ack to the sender, message:new to the others): encode it once.
const encoded = new WeakMap<MessageDto, string>()
const encode = (message: MessageDto) => {
  let json = encoded.get(message)
  if (json === undefined) encoded.set(message, (json = JSON.stringify(message)))
  return json
}

export const ackFrame = (clientMsgId: string, message: MessageDto) =>
  `{"type":"message:ack","client_msg_id":${JSON.stringify(clientMsgId)},"message":${encode(message)}}`

export const newFrame = (message: MessageDto) => `{"type":"message:new","message":${encode(message)}}`

export const statusFrame = (event: StatusEvent) => JSON.stringify({ type: 'message:status', ...event })

export const editedFrame = (message: MessageDto) => `{"type":"message:edited","message":${encode(message)}}`

export const deletedFrame = (event: DeletedEvent) => JSON.stringify({ type: 'message:deleted', ...event })

export const reactionsFrame = (event: ReactionsEvent) => JSON.stringify({ type: 'message:reactions', ...event })

export const typingFrame = (dialogId: number, userId: number, state: 'start' | 'stop') =>
  JSON.stringify({ type: 'typing', dialog_id: dialogId, user_id: userId, state })

/** `lastSeenAt` null: hidden, as REST shows a peer in a block with the caller. */
export const presenceFrame = (userId: number, online: boolean, lastSeenAt: Date | null) =>
  JSON.stringify({ type: 'presence', user_id: userId, online, last_seen_at: lastSeenAt?.toISOString() ?? null })

export const dialogNewFrame = (dialog: DialogDto) => JSON.stringify({ type: 'dialog:new', dialog })

// Echoed values are the client's own, so they are bounded: an oversize one is the failing field anyway.
const echoable = (value: unknown): value is string =>
  typeof value === 'string' && value.length <= MAX_CLIENT_MSG_ID_CHARS * 2 && charCount(value, MAX_CLIENT_MSG_ID_CHARS) <= MAX_CLIENT_MSG_ID_CHARS

/**
 * `type` is "error" on every error frame, so the offending frame's type is echoed as `frame_type`;
 * `client_msg_id` keeps its name. Both only when the frame had them (as short strings).
 */
export function errorFrame(error: AppError, raw?: RawFrame): string {
  return JSON.stringify({
    type: 'error',
    code: error.code,
    message: error.message,
    ...(error.details ? { details: error.details } : {}),
    ...(error.retryAfter !== undefined ? { retry_after: error.retryAfter } : {}),
    ...(echoable(raw?.type) ? { frame_type: raw.type } : {}),
    ...(echoable(raw?.client_msg_id) ? { client_msg_id: raw.client_msg_id } : {}),
  })
}
export { schemas as CLIENT_FRAME_SCHEMAS }
