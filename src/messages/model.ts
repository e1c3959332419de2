import { t } from 'elysia'
import { chars, Int, UNCHECKED } from '../shared/schema'
import { invalidField } from '../errors'
import { BodyId, ParamId } from '../shared/ids'
import { charCount, MAX_CLIENT_MSG_ID_CHARS, MAX_TEXT_CHARS, textTooLong } from '../shared/text'

export const MESSAGE_TYPES = ['text', 'image', 'file'] as const
export type MessageType = (typeof MESSAGE_TYPES)[number]

export const ReactionSchema = t.Object({ emoji: t.String(), user_ids: t.Array(Int()) })
export type ReactionDto = typeof ReactionSchema.static
export const MessageTypeSchema = t.Union([t.Literal('text'), t.Literal('image'), t.Literal('file')])

/** An image/file message's upload, as a Message shows it; `url` downloads it (GET /uploads/{id}). */
export const AttachmentSchema = t.Object({
  id: Int(),
  name: t.String(),
  content_type: t.String(),
  size: Int(),
  url: t.String(),
})
export type AttachmentDto = typeof AttachmentSchema.static

export const MessageSchema = t.Object({
  id: Int(),
  dialog_id: Int(),
  seq: Int(),
  sender_id: Int(),
  client_msg_id: t.String(),
  type: MessageTypeSchema,
  text: t.String(),
  created_at: t.String({ format: 'date-time' }),
  status: t.Union([t.Literal('sent'), t.Literal('delivered'), t.Literal('read')]),
  edited_at: t.Union([t.String({ format: 'date-time' }), t.Null()]),
  deleted: t.Boolean(),
  reactions: t.Array(ReactionSchema),
  /** The dialog's version at this message's last change (see GET …/messages?changed_after=). */
  version: Int(),
  attachment: t.Union([AttachmentSchema, t.Null()]),
})
export type MessageDto = typeof MessageSchema.static
export type MessageStatus = MessageDto['status']

// Bounds the raw size; `checkClientMsgId` counts characters (code points): 64 emoji are a valid id.
export const ClientMsgId = t.String({ minLength: 1, ...chars(MAX_CLIENT_MSG_ID_CHARS) })

export const SendBody = t.Object({
  client_msg_id: ClientMsgId,
  type: MessageTypeSchema,
  // Required for text; an optional caption (0–4000 characters) for image and file.
  text: t.Optional(t.String(chars(MAX_TEXT_CHARS))),
  attachment_id: t.Optional(BodyId()),
})

export const HistoryQuery = t.Object({
  limit: t.Optional(t.Integer({ minimum: 1, maximum: 100 })),
  before: t.Optional(t.String({ maxLength: 64 })),
  before_id: t.Optional(ParamId('before_id')),
  after_id: t.Optional(ParamId('after_id', 0)),
  changed_after: t.Optional(ParamId('changed_after', 0)),
})

export const MessageParams = t.Object({
  dialog_id: ParamId('dialog_id'),
  message_id: ParamId('message_id'),
})

// Bounded generously: the longest emoji (a tagged subdivision flag, a ZWJ family) is well under this.
export const ReactionParams = t.Object({
  dialog_id: ParamId('dialog_id'),
  message_id: ParamId('message_id'),
  emoji: t.String({ minLength: 1, maxLength: 64 }),
})

// Any length up to the limit: an image's or file's caption may be edited away (checkTextOf).
export const EditBody = t.Object({ text: t.String(chars(MAX_TEXT_CHARS)) })

export const HistoryPage = t.Object({ messages: t.Array(MessageSchema), has_more: t.Boolean() }, UNCHECKED)

export const ReadUpToBody = t.Object({
  last_read_message_id: BodyId(),
  read_at: t.Optional(t.String({ maxLength: 64 })),
})

export const ReadState = t.Object({
  dialog_id: Int(),
  last_read_message_id: Int(),
  read_at: t.Union([t.String(), t.Null()]),
  unread_count: Int(),
})
export type ReadStateDto = typeof ReadState.static

export interface MessageRecord {
  id: number
  dialogId: number
  seq: number
  senderId: number
  clientMsgId: string
  type: string
  text: string
  createdAt: Date
  version: number
  editedAt: Date | null
  deleted: boolean
  /** The attachment as stored with the message: `AttachmentDto` less `url`, as JSON; null for text. */
  attachment: string | null
}

/** A member's progress through a dialog. */
export interface Watermarks {
  userId: number
  lastReadMessageId: number
  lastDeliveredMessageId: number
}

export interface StatusEvent {
  dialog_id: number
  message_id: number
  status: 'delivered' | 'read'
  user_id: number
  at: string
}

export interface DeletedEvent {
  dialog_id: number
  message_id: number
  version: number
}

export interface ReactionsEvent {
  dialog_id: number
  message_id: number
  reactions: ReactionDto[]
  version: number
}

export function statusFor(messageId: number, recipient: Watermarks | undefined): MessageStatus {
  if (!recipient) return 'sent'
  if (recipient.lastReadMessageId >= messageId) return 'read'
  return recipient.lastDeliveredMessageId >= messageId ? 'delivered' : 'sent'
}

export const toMessageDto = (m: MessageRecord, status: MessageStatus, reactions: ReactionDto[] = []): MessageDto => ({
  id: m.id,
  dialog_id: m.dialogId,
  seq: m.seq,
  sender_id: m.senderId,
  client_msg_id: m.clientMsgId,
  type: m.type as MessageType,
  text: m.text,
  created_at: m.createdAt.toISOString(),
  status,
  edited_at: m.editedAt?.toISOString() ?? null,
  deleted: m.deleted,
  reactions: m.deleted ? [] : reactions,
  version: m.version,
  attachment: attachmentOf(m),
})

export function attachmentOf(m: MessageRecord): AttachmentDto | null {
  if (!m.attachment) return null
  const stored = JSON.parse(m.attachment) as Omit<AttachmentDto, 'url'>
  return { ...stored, url: `/uploads/${stored.id}` }
}

/**
 * Strings that cannot be stored as they are: a NUL (Postgres text cannot hold one) or a lone surrogate (not
 * Unicode; it would be stored as U+FFFD, unlike what was acknowledged). Rejected alike on every database.
 */
const unstorable = (value: string) => value.includes('\u0000') || !value.isWellFormed()

export function checkClientMsgId(clientMsgId: string): void {
  if (unstorable(clientMsgId)) throw invalidField('client_msg_id', 'must be Unicode text without NUL characters')
  if (charCount(clientMsgId, MAX_CLIENT_MSG_ID_CHARS) > MAX_CLIENT_MSG_ID_CHARS)
    throw invalidField('client_msg_id', `at most ${MAX_CLIENT_MSG_ID_CHARS} characters`)
}

/** A send's content: text needs text and no attachment; image/file need an attachment, text is a caption. */
export function checkContent(type: MessageType, text: string | undefined, attachmentId: number | undefined): void {
  if (type === 'text') {
    if (attachmentId !== undefined) throw invalidField('attachment_id', 'only image and file messages carry an attachment')
    if (text === undefined) throw invalidField('text', 'required for a text message')
    return checkText(text)
  }
  if (attachmentId === undefined) throw invalidField('attachment_id', `required for an ${type} message`)
  if (text !== undefined) checkTextOf(type, text)
}

/** A message's text by what the message is (at a send and an edit): a text message's text, or a caption, which may be empty. */
export function checkTextOf(type: MessageRecord['type'], text: string): void {
  if (type === 'text') checkText(text)
  else checkStorableText(text)
}

export function checkText(text: string): void {
  // \s lacks U+0085 (NEL), which Unicode counts as white space.
  if (!/[^\s\u0085]/.test(text)) throw invalidField('text', 'must not be only whitespace')
  checkStorableText(text)
}

/** What any text (a message or a caption) must be: storable, and at most MAX_TEXT_CHARS characters. */
function checkStorableText(text: string): void {
  if (unstorable(text)) throw invalidField('text', 'must be Unicode text without NUL characters')
  if (textTooLong(text)) throw invalidField('text', `at most ${MAX_TEXT_CHARS} characters`)
}

const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' })

/**
 * One element of an emoji ZWJ sequence (UTS #51): a pictograph, then at most a variation selector, a skin
 * tone and a tag sequence (subdivision flags). Anything else inside the cluster (a combining mark, a
 * dangling ZWJ) makes it no emoji, though a grapheme cluster would still hold it.
 */
const ELEMENT = '\\p{Extended_Pictographic}[\\uFE0E\\uFE0F]?\\p{Emoji_Modifier}?\\uFE0F?(?:[\\u{E0020}-\\u{E007E}]+\\u{E007F})?'
const EMOJI = new RegExp(`^(?:${ELEMENT}(?:\\u200D${ELEMENT})*|\\p{Regional_Indicator}{2}|[0-9#*]\\uFE0F?\\u20E3)$`, 'u')

/** Exactly one emoji: one grapheme cluster that is a ZWJ sequence of pictographs (see ELEMENT), a flag or a keycap. */
export function checkEmoji(emoji: string): void {
  const clusters = [...graphemes.segment(emoji)]
  const one = clusters.length === 1 ? clusters[0]!.segment : ''
  if (!EMOJI.test(one)) throw invalidField('emoji', 'must be exactly one emoji')
}
