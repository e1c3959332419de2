/*
 * The wire types, derived from the server's own schemas (type-only imports: nothing of the server reaches a
 * bundle). When a model gains a field, the client's types gain it too.
 */
import type { Static } from '@sinclair/typebox'
import type { TokenPair } from '../auth/model'
import type { DialogList, DialogSchema } from '../dialogs/model'
import type { ErrorCode } from '../errors'
import type { AttachmentSchema, DeletedEvent, HistoryPage, MessageSchema, ReactionSchema, ReactionsEvent, ReadState, StatusEvent } from '../messages/model'
import type { SubscribeBody } from '../push/model'
import type { ClientFrame } from '../realtime/protocol'
import type { SearchPage } from '../search/model'
import type { UploadSchema } from '../uploads/model'
import type { UserSchema } from '../users/model'

export type User = Static<typeof UserSchema>
export type Message = Static<typeof MessageSchema>
export type MessageStatus = Message['status']
export type Dialog = Static<typeof DialogSchema>
export type Peer = Dialog['peer']
export type TokenPairBody = Static<typeof TokenPair>
export type DialogListBody = Static<typeof DialogList>
export type HistoryPageBody = Static<typeof HistoryPage>
export type ReadStateBody = Static<typeof ReadState>
export type Reaction = Static<typeof ReactionSchema>
/** An image or file as a Message shows it; `url` is relative to the server (see `ChatClient.attachmentUrl`). */
export type Attachment = Static<typeof AttachmentSchema>
/** What POST /uploads answers: an upload not yet sent in any message. */
export type Upload = Static<typeof UploadSchema>
export type SearchPageBody = Static<typeof SearchPage>
/** The browser's `PushSubscription.toJSON()`, as the server takes it. */
export type PushSubscriptionBody = Static<typeof SubscribeBody>
export type { DeletedEvent, ReactionsEvent }
export type { ClientFrame, ErrorCode }

/** A receipt: the user's delivered or read watermark moved (for `read`, `message_id` is the new watermark). */
export type Receipt = StatusEvent

/** Frames the server sends, composed from the same models the server encodes them from. */
export type ServerFrame =
  | { type: 'auth:ok'; user_id: number }
  | { type: 'message:ack'; client_msg_id: string; message: Message }
  | { type: 'message:new'; message: Message }
  | { type: 'message:edited'; message: Message }
  | ({ type: 'message:deleted' } & DeletedEvent)
  | ({ type: 'message:reactions' } & ReactionsEvent)
  | ({ type: 'message:status' } & Receipt)
  | { type: 'typing'; dialog_id: number; user_id: number; state: 'start' | 'stop' }
  /** `last_seen_at` null: hidden (the two are in a block), or never seen. */
  | { type: 'presence'; user_id: number; online: boolean; last_seen_at: string | null }
  | { type: 'dialog:new'; dialog: Dialog }
  | { type: 'pong' }
  | ErrorFrame

export interface ErrorFrame {
  type: 'error'
  code: ErrorCode | (string & {})
  message: string
  details?: Record<string, unknown>
  retry_after?: number
  frame_type?: string
  client_msg_id?: string
}
