import { Type as T, type TSchema } from '@sinclair/typebox'
import { DialogSchema } from '../dialogs/model'
import { ERROR_STATUS } from '../errors'
import { MessageSchema } from '../messages/model'
import { CLIENT_FRAME_SCHEMAS } from '../realtime/protocol'
import { published } from './limits'

type Json = Record<string, any>

/*
 * The WebSocket protocol as an AsyncAPI 3 document. Client frames come from the very schemas the server
 * validates frames with (src/realtime/protocol.ts: a frame type added there appears here by itself);
 * server frames are described here in TypeBox beside the REST objects they carry.
 */

const Id = T.Integer({ minimum: 1 })
const Instant = T.String({ format: 'date-time' })

const SERVER_FRAMES: Record<string, { summary: string; schema: TSchema }> = {
  'auth:ok': { summary: 'Authenticated: events of every dialog of the user follow', schema: T.Object({ type: T.Literal('auth:ok'), user_id: Id }) },
  'message:ack': {
    summary: 'The message of this connection’s message:send is durably committed (or was already, for a repeated client_msg_id)',
    schema: T.Object({ type: T.Literal('message:ack'), client_msg_id: T.String(), message: MessageSchema }),
  },
  'message:new': {
    summary: 'A message in one of the user’s dialogs (to the peer and the sender’s other connections)',
    schema: T.Object({ type: T.Literal('message:new'), message: MessageSchema }),
  },
  'message:status': {
    summary: 'A member’s delivered or read watermark moved (for read, message_id is the new watermark)',
    schema: T.Object({
      type: T.Literal('message:status'),
      dialog_id: Id,
      message_id: Id,
      status: T.Union([T.Literal('delivered'), T.Literal('read')]),
      user_id: Id,
      at: Instant,
    }),
  },
  'message:edited': {
    summary: 'A message was edited (to every connection of both members, the editing one included)',
    schema: T.Object({ type: T.Literal('message:edited'), message: MessageSchema }),
  },
  'message:deleted': {
    summary: 'A message was deleted for everyone: it keeps its id and seq, loses its content',
    schema: T.Object({ type: T.Literal('message:deleted'), dialog_id: Id, message_id: Id, version: Id }),
  },
  'message:reactions': {
    summary: 'A message’s reactions changed: the whole set',
    schema: T.Object({ type: T.Literal('message:reactions'), dialog_id: Id, message_id: Id, reactions: MessageSchema.properties.reactions, version: Id }),
  },
  typing: {
    summary: 'The peer is typing (or stopped)',
    schema: T.Object({ type: T.Literal('typing'), dialog_id: Id, user_id: Id, state: T.Union([T.Literal('start'), T.Literal('stop')]) }),
  },
  presence: {
    summary:
      'A dialog peer came online (first connection) or went offline (last one closed); at a block, the other user as hidden ' +
      '(offline, last_seen_at null), and at an unblock, as they are',
    schema: T.Object({ type: T.Literal('presence'), user_id: Id, online: T.Boolean(), last_seen_at: T.Union([Instant, T.Null()]) }),
  },
  'dialog:new': { summary: 'A dialog was created with the user in it', schema: T.Object({ type: T.Literal('dialog:new'), dialog: DialogSchema }) },
  pong: { summary: 'Answer to ping', schema: T.Object({ type: T.Literal('pong') }) },
  error: {
    summary: 'A frame failed; the connection stays open (except unauthorized, which closes with 4401)',
    schema: T.Object({
      type: T.Literal('error'),
      code: T.Union(Object.keys(ERROR_STATUS).map((code) => T.Literal(code))),
      message: T.String(),
      details: T.Optional(T.Record(T.String(), T.Unknown())),
      retry_after: T.Optional(T.Integer({ description: 'Seconds, with rate_limited' })),
      frame_type: T.Optional(T.String({ description: 'The offending frame’s type' })),
      client_msg_id: T.Optional(T.String({ description: 'The offending frame’s client_msg_id' })),
    }),
  },
}

const CLIENT_SUMMARIES: Record<string, string> = {
  auth: 'First frame: authenticate (or pass ?access_token= when connecting)',
  'message:send': 'Send a message; answered with message:ack after the commit',
  'message:delivered': 'Move the delivered watermark; the sender gets message:status',
  'message:read': 'Move the read watermark; the peer and the caller’s other connections get message:status',
  typing: 'Relay a typing indicator to the peer; not stored',
  ping: 'Answered with pong',
}

/** AsyncAPI component names allow [A-Za-z0-9._-]; frame types have colons. */
const idOf = (type: string) => type.replace(/[^A-Za-z0-9._-]/g, '_')

/** A TypeBox schema as plain JSON Schema (TypeBox marks its objects with symbols, which JSON drops). */
const plain = (schema: TSchema): Json => published(JSON.parse(JSON.stringify(schema))) as Json

export function asyncApiDocument(version: string): Json {
  const client = Object.entries(CLIENT_FRAME_SCHEMAS as Record<string, TSchema>)
  const server = Object.entries(SERVER_FRAMES)
  const messages: Json = {}
  for (const [type, schema] of client)
    messages[idOf(type)] = { name: type, title: type, summary: CLIENT_SUMMARIES[type] ?? `Client frame ${type}`, payload: plain(schema) }
  for (const [type, { summary, schema }] of server)
    messages[`server.${idOf(type)}`] = { name: type, title: type, summary, payload: plain(schema) }

  const channelMessages = Object.fromEntries(Object.keys(messages).map((id) => [id, { $ref: `#/components/messages/${id}` }]))
  const channels = {
    ws: {
      address: '/ws',
      title: 'JSON WebSocket',
      description: 'Every frame is one JSON text message with a `type`. The first frame must be `auth` (or `?access_token=` in the URL); else error `unauthorized` and close code 4401.',
      messages: channelMessages,
    },
    socketio: {
      address: '/socket.io/',
      title: 'Socket.IO path',
      description:
        'Without `EIO` in the query, the same JSON protocol as /ws. With `EIO=4`, Engine.IO v4 + Socket.IO v5: every frame type is an event name whose payload is the frame without `type`.',
      messages: channelMessages,
    },
  }
  const operations: Json = {}
  for (const channel of Object.keys(channels)) {
    for (const [type] of client)
      operations[`${channel}.receive.${idOf(type)}`] = {
        action: 'receive',
        channel: { $ref: `#/channels/${channel}` },
        summary: CLIENT_SUMMARIES[type] ?? `Client frame ${type}`,
        messages: [{ $ref: `#/channels/${channel}/messages/${idOf(type)}` }],
      }
    for (const [type, { summary }] of server)
      operations[`${channel}.send.${idOf(type)}`] = {
        action: 'send',
        channel: { $ref: `#/channels/${channel}` },
        summary,
        messages: [{ $ref: `#/channels/${channel}/messages/server.${idOf(type)}` }],
      }
  }
  return {
    asyncapi: '3.0.0',
    info: {
      title: 'Chat server WebSocket protocol',
      version,
      description:
        'The realtime half of the chat server. `receive` operations are frames the server accepts from clients; `send` operations are frames it sends. Objects (Message, Dialog) are those of the REST API at /docs/json.',
    },
    defaultContentType: 'application/json',
    servers: { local: { host: 'localhost:5000', protocol: 'ws', description: 'Same host and port as the REST API (wss behind TLS)' } },
    channels,
    operations,
    components: { messages },
  }
}
