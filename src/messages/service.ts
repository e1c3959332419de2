import type { BlockCache } from '../blocks/cache'
import { AppError, blocked, invalidField, notFound } from '../errors'
import { peerOf, type Membership } from '../dialogs/membership'
import type { Origin, RealtimePort } from '../realtime/port'
import type { Db } from '../storage/database'
import type { UploadService } from '../uploads/service'
import {
  attachmentOf,
  checkClientMsgId,
  checkContent,
  statusFor,
  toMessageDto,
  type MessageDto,
  type MessageType,
  type ReadStateDto,
  type StatusEvent,
} from './model'
import { history, messageById, watermarks, type HistoryCursor } from './store'
import type { MessageWriter } from './writer'

export interface SendCommand {
  dialogId: number
  clientMsgId: string
  type: MessageType
  /** Text: required; image/file: an optional caption. */
  text?: string
  /** image/file: an upload of the sender's (POST /uploads). */
  attachmentId?: number
}

/** Recently stored messages' dialogs, so receipts for them need no read (bounded: dropped when full). */
const MAX_REMEMBERED = 100_000

export class MessageService {
  private readonly dialogOf = new Map<number, number>()

  constructor(
    private readonly db: Db,
    private readonly writer: MessageWriter,
    private readonly membership: Membership,
    private readonly realtime: RealtimePort,
    private readonly blocks: BlockCache,
    private readonly uploads: UploadService,
  ) {}

  /**
   * Sends through the group-commit writer. `created` is false for a repeated client_msg_id, which
   * answers the original and publishes nothing. `origin` is the sending connection, which gets an ack
   * rather than `message:new`.
   */
  async send(senderId: number, cmd: SendCommand, origin?: Origin): Promise<{ created: boolean; message: MessageDto }> {
    checkClientMsgId(cmd.clientMsgId)
    checkContent(cmd.type, cmd.text, cmd.attachmentId)
    const members = await this.membership.require(cmd.dialogId, senderId)
    // From memory (BlockCache): no database read per send.
    if (await this.blocks.between(senderId, peerOf(members, senderId))) throw blocked()
    const key = { dialogId: cmd.dialogId, clientMsgId: cmd.clientMsgId }
    const claimed = cmd.type === 'text' ? undefined : await this.uploads.claim(senderId, cmd.attachmentId!, cmd.type, key)
    const outcome = await this.writer.submit({
      dialogId: cmd.dialogId,
      senderId,
      clientMsgId: cmd.clientMsgId,
      type: cmd.type,
      text: cmd.text ?? '',
      attachmentId: claimed?.id ?? null,
      attachment: claimed?.json ?? null,
    })
    // No message, or a repeat of one that does not carry this upload: the upload stays free for another send.
    const carried = outcome.kind === 'missing' ? undefined : attachmentOf(outcome.message)?.id
    if (claimed && carried !== claimed.id) await this.uploads.unclaim(claimed.id, key)
    if (outcome.kind === 'missing') throw notFound('dialog')
    if (outcome.kind === 'duplicate')
      return { created: false, message: toMessageDto(outcome.message, statusFor(outcome.message.id, outcome.recipient)) }
    const message = toMessageDto(outcome.message, 'sent')
    if (this.dialogOf.size >= MAX_REMEMBERED) this.dialogOf.clear()
    this.dialogOf.set(message.id, message.dialog_id)
    this.realtime.messageNew(message, origin)
    return { created: true, message }
  }

  async history(
    userId: number,
    dialogId: number,
    cursor: HistoryCursor,
    limit: number,
  ): Promise<{ messages: MessageDto[]; has_more: boolean }> {
    const members = await this.membership.require(dialogId, userId)
    const { page, marks } = await this.db.read(function* (s) {
      return { page: yield* history(s, dialogId, cursor, limit), marks: yield* watermarks(s, dialogId) }
    })
    const recipientOf = (senderId: number) => marks.find((w) => w.userId === peerOf(members, senderId))
    return {
      messages: page.messages.map((m) => toMessageDto(m, statusFor(m.id, recipientOf(m.senderId)))),
      has_more: page.hasMore,
    }
  }

  /** Moves the read (and delivered) watermark forward; the peer and the reader's other devices are told. */
  async readUpTo(userId: number, dialogId: number, messageId: number, at: Date, origin?: Origin): Promise<ReadStateDto> {
    await this.membership.require(dialogId, userId)
    if ((await this.dialogOfMessage(messageId)) !== dialogId)
      throw invalidField('last_read_message_id', 'no such message in this dialog')
    const state = await this.writer.mark({ dialogId, userId, messageId, at, read: true })
    if (state.readMoved)
      this.realtime.status(this.statusEvent(dialogId, state.lastReadMessageId, 'read', userId, state.readAt), origin)
    return {
      dialog_id: dialogId,
      last_read_message_id: state.lastReadMessageId,
      read_at: state.readAt?.toISOString() ?? null,
      unread_count: state.unread,
    }
  }

  /** Moves the delivered watermark to a message of the caller's dialog; the sender is told. */
  async delivered(userId: number, messageId: number, at: Date, origin?: Origin): Promise<void> {
    const dialogId = await this.dialogOfMessage(messageId)
    if (dialogId === undefined) throw notFound('message')
    await this.membership.require(dialogId, userId)
    const state = await this.writer.mark({ dialogId, userId, messageId, at, read: false })
    if (state.deliveredMoved)
      this.realtime.status(this.statusEvent(dialogId, state.lastDeliveredMessageId, 'delivered', userId, state.deliveredAt), origin)
  }

  /** A message's dialog; messages are never deleted or moved, so an answer once read stays true. */
  private async dialogOfMessage(messageId: number): Promise<number | undefined> {
    return this.dialogOf.get(messageId) ?? (await this.db.read((s) => messageById(s, messageId)))?.dialogId
  }

  private statusEvent(
    dialogId: number,
    messageId: number,
    status: 'read' | 'delivered',
    userId: number,
    at: Date | null,
  ): StatusEvent {
    if (!at) throw new AppError('internal', 'watermark moved without a time')
    return { dialog_id: dialogId, message_id: messageId, status, user_id: userId, at: at.toISOString() }
  }
}
