import { AppError, invalidField, notFound } from '../errors'
import { peerOf, type Membership } from '../dialogs/membership'
import type { Origin, RealtimePort } from '../realtime/port'
import type { Db } from '../storage/database'
import {
  checkClientMsgId,
  checkText,
  statusFor,
  toMessageDto,
  type MessageDto,
  type ReadStateDto,
  type StatusEvent,
} from './model'
import { advanceWatermarks, history, messageById, unreadCount, watermarks, type HistoryCursor } from './store'
import type { MessageWriter } from './writer'

export interface SendCommand {
  dialogId: number
  clientMsgId: string
  type: 'text'
  text: string
}

export class MessageService {
  constructor(
    private readonly db: Db,
    private readonly writer: MessageWriter,
    private readonly membership: Membership,
    private readonly realtime: RealtimePort,
  ) {}

  /**
   * Sends through the group-commit writer. `created` is false for a repeated client_msg_id, which
   * answers the original and publishes nothing. `origin` is the sending connection, which gets an ack
   * rather than `message:new`.
   */
  async send(senderId: number, cmd: SendCommand, origin?: Origin): Promise<{ created: boolean; message: MessageDto }> {
    checkClientMsgId(cmd.clientMsgId)
    checkText(cmd.text)
    await this.membership.require(cmd.dialogId, senderId)
    const outcome = await this.writer.submit({
      dialogId: cmd.dialogId,
      senderId,
      clientMsgId: cmd.clientMsgId,
      type: cmd.type,
      text: cmd.text,
    })
    if (outcome.kind === 'missing') throw notFound('dialog')
    if (outcome.kind === 'duplicate')
      return { created: false, message: toMessageDto(outcome.message, statusFor(outcome.message.id, outcome.recipient)) }
    const message = toMessageDto(outcome.message, 'sent')
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
    const state = await this.db.tx(function* (s) {
      const message = yield* messageById(s, messageId)
      if (!message || message.dialogId !== dialogId)
        throw invalidField('last_read_message_id', 'no such message in this dialog')
      const progress = yield* advanceWatermarks(s, dialogId, userId, messageId, at, true)
      return { ...progress, unread: yield* unreadCount(s, dialogId, userId, progress.lastReadMessageId) }
    })
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
    const message = await this.db.read((s) => messageById(s, messageId))
    if (!message) throw notFound('message')
    await this.membership.require(message.dialogId, userId)
    const state = await this.db.tx((s) => advanceWatermarks(s, message.dialogId, userId, messageId, at, false))
    if (state.deliveredMoved)
      this.realtime.status(
        this.statusEvent(message.dialogId, state.lastDeliveredMessageId, 'delivered', userId, state.deliveredAt),
        origin,
      )
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
