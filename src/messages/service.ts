import type { BlockCache } from '../blocks/cache'
import { AppError, blocked, invalidField, notFound } from '../errors'
import { peerOf, type Membership } from '../dialogs/membership'
import { logFault } from '../log/fault'
import type { Origin, RealtimePort } from '../realtime/port'
import type { Checked, LocalChanges } from '../storage/local-changes'
import type { Db } from '../storage/database'
import type { UploadService } from '../uploads/service'
import { releaseAttachment } from '../uploads/store'
import {
  attachmentOf,
  checkClientMsgId,
  checkContent,
  checkEmoji,
  statusFor,
  toMessageDto,
  type MessageDto,
  type MessageRecord,
  type MessageType,
  type ReadStateDto,
  type Watermarks,
  type StatusEvent,
} from './model'
import { changedAfter, deleteMessage, editMessage, NoChange, reactionsOf, reactionsOfMany, setReaction } from './changes'
import { history, messageById, messageBySendKey, pageStamp, watermarks, type HistoryCursor } from './history'
import type { MarkInput, MarkOutcome } from './receipts'
import type { MessageWriter } from './writer'
import { Lru } from '../shared/lru'

export interface SendCommand {
  dialogId: number
  clientMsgId: string
  type: MessageType
  /** Text: required; image/file: an optional caption. */
  text?: string
  /** image/file: an upload of the sender's (POST /uploads). */
  attachmentId?: number
}

/** Recently stored messages' dialogs, so receipts for them need no read (bounded: the least recently used go first). */
const MAX_REMEMBERED = 100_000
/** History pages kept, least recently used going first: a page of 30 short messages with its JSON is ~15 KB (measured), so ~15 MB. */
const MAX_PAGES = 1_000

type HistoryPageDto = { messages: MessageDto[]; has_more: boolean }

export class MessageService {
  private readonly dialogOf = new Lru<number, number>(MAX_REMEMBERED)
  private readonly pages = new Lru<string, { stamp: string; page: HistoryPageDto; checked: Checked | undefined }>(MAX_PAGES)

  constructor(
    private readonly db: Db,
    private readonly writer: MessageWriter,
    private readonly membership: Membership,
    private readonly realtime: RealtimePort,
    private readonly blocks: BlockCache,
    private readonly uploads: UploadService,
    /** Told of every change to a dialog's pages and lists (a kept page is answered unread while none is). */
    private readonly changes: LocalChanges,
    /** Told of each new message once it is committed and published, with its recipient (Web Push). */
    private readonly committed?: (message: MessageDto, recipientId: number) => void,
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
    const peer = peerOf(members, senderId)
    // Until it is published: a block waits for it (BlockCache.acting).
    const done = this.blocks.acting(senderId, peer)
    try {
      return await this.sendChecked(senderId, peer, members, cmd, origin)
    } finally {
      done()
    }
  }

  private async sendChecked(
    senderId: number,
    peer: number,
    members: readonly number[],
    cmd: SendCommand,
    origin?: Origin,
  ): Promise<{ created: boolean; message: MessageDto }> {
    // From memory (BlockCache): no database read per send.
    if (await this.blocks.between(senderId, peer)) {
      const repeat = await this.repeatOf(senderId, cmd.dialogId, cmd.clientMsgId)
      if (repeat) return repeat
      throw blocked()
    }
    const key = { dialogId: cmd.dialogId, clientMsgId: cmd.clientMsgId }
    let claimed: Awaited<ReturnType<UploadService['claim']>> | undefined
    if (cmd.type !== 'text') {
      try {
        claimed = await this.uploads.claim(senderId, cmd.attachmentId!, cmd.type, key)
      } catch (error) {
        // A retry of a send whose message was deleted since: the upload went with the message, and a
        // repeated client_msg_id answers the original all the same.
        const repeat = await this.repeatOf(senderId, cmd.dialogId, cmd.clientMsgId)
        if (repeat) return repeat
        throw error
      }
    }
    const outcome = await this.writer
      .submit({
        dialogId: cmd.dialogId,
        senderId,
        clientMsgId: cmd.clientMsgId,
        type: cmd.type,
        text: cmd.text ?? '',
        attachmentId: claimed?.id ?? null,
        attachment: claimed?.json ?? null,
      })
      .catch(async (error: unknown) => {
        // A send that failed gives its claim back: the upload would otherwise stay claimed, and never
        // swept, unless the client retried this very send. (A message that committed all the same keeps
        // its upload: the sweep spares an upload a message carries.)
        if (claimed) await this.uploads.unclaim(claimed.id, key).catch((cause) => logFault('giving back an upload claim failed', cause))
        throw error
      })
    // No message, or a repeat of one that does not carry this upload: the upload stays free for another send.
    const carried = outcome.kind === 'missing' ? undefined : attachmentOf(outcome.message)?.id
    if (claimed && carried !== claimed.id) await this.uploads.unclaim(claimed.id, key)
    if (outcome.kind === 'missing') throw notFound('dialog')
    if (outcome.kind === 'duplicate') {
      // A retry: off the hot path, so the original is answered whole, with the reactions it has gathered.
      const reactions = await this.db.read((s) => reactionsOf(s, outcome.message.id))
      return { created: false, message: toMessageDto(outcome.message, statusFor(outcome.message.id, outcome.recipient), reactions) }
    }
    this.changes.dialogChanged(cmd.dialogId, members)
    const message = toMessageDto(outcome.message, 'sent')
    this.dialogOf.set(message.id, message.dialog_id)
    this.realtime.messageNew(message, origin)
    this.committed?.(message, peer)
    return { created: true, message }
  }

  /**
   * A send between blocked users is refused, but a retry of one stored before the block (its ack lost, say)
   * answers its original, as any retry does: it creates nothing, and the client learns that its message
   * went out. Blocked sends are rare, so this read is off the hot path.
   */
  /** The message an earlier send with this client_msg_id stored, as a repeat answers it; undefined when none. */
  private async repeatOf(senderId: number, dialogId: number, clientMsgId: string): Promise<{ created: false; message: MessageDto } | undefined> {
    const found = await this.db.read(function* (s) {
      const original = yield* messageBySendKey(s, dialogId, senderId, clientMsgId)
      return original && { original, marks: yield* watermarks(s, dialogId), reactions: yield* reactionsOf(s, original.id) }
    })
    if (!found) return undefined
    const recipient = found.marks.find((w) => w.userId !== senderId)
    return { created: false, message: toMessageDto(found.original, statusFor(found.original.id, recipient), found.reactions) }
  }

  /**
   * A page of history, or with `changedAfter` the messages changed after that version (ascending by version).
   * A page once built is kept under its dialog's stamp (pageStamp: version and watermarks, read before the
   * page, so a change racing the read leaves the page newer than its stamp, never older) and answered again
   * while the stamp is unchanged: one point read instead of the page's rows, its reactions and their mapping.
   * The stamp is in the database, so a change made on another node counts as well. Where this process is
   * the database's one writer (LocalChanges), a page with no change reported since it was checked is
   * answered without even that read. The page is the same for both members (statuses are the recipient's
   * progress), and shared: callers never modify it.
   */
  async history(
    userId: number,
    dialogId: number,
    cursor: HistoryCursor | { changedAfter: number },
    limit: number,
  ): Promise<HistoryPageDto> {
    const members = await this.membership.require(dialogId, userId)
    // A cursor is one small object of one key (a time becomes its ISO text): its JSON names it.
    const key = `${dialogId}:${JSON.stringify(cursor)}:${limit}`
    const kept = this.pages.get(key)
    if (kept && this.changes.pageFresh(kept.checked, dialogId)) return kept.page
    const checked = this.changes.mark()
    const read = await this.db.read(function* (s) {
      const { stamp, marks } = yield* pageStamp(s, dialogId)
      if (kept?.stamp === stamp) return { stamp, kept: kept.page }
      const page = 'changedAfter' in cursor ? yield* changedAfter(s, dialogId, cursor.changedAfter, limit) : yield* history(s, dialogId, cursor, limit)
      return { stamp, page, marks, reactions: yield* reactionsOfMany(s, page.messages.map((m) => m.id)) }
    })
    if (read.kept) {
      this.pages.set(key, { ...kept!, checked })
      return read.kept
    }
    const { page, marks, reactions } = read
    const recipientOf = (senderId: number) => marks.find((w) => w.userId === peerOf(members, senderId))
    const dto = {
      messages: page.messages.map((m) => toMessageDto(m, statusFor(m.id, recipientOf(m.senderId)), reactions.get(m.id))),
      has_more: page.hasMore,
    }
    this.pages.set(key, { stamp: read.stamp, page: dto, checked })
    return dto
  }

  /** Replaces the text of the caller's own message; every connection of both members gets message:edited. */
  async edit(userId: number, dialogId: number, messageId: number, text: string): Promise<MessageDto> {
    const members = await this.membership.require(dialogId, userId)
    const peer = peerOf(members, userId)
    const done = this.blocks.acting(userId, peer)
    try {
      // New text reaches the peer as a send would: not while either blocks the other.
      if (await this.blocks.between(userId, peer)) throw blocked()
      const { message, reactions, marks } = await this.db.tx((s) => editMessage(s, dialogId, messageId, userId, text, new Date()))
      this.changes.dialogChanged(dialogId, members)
      const dto = toMessageDto(message, this.statusOf(message, members, marks), reactions)
      this.realtime.messageEdited(dto)
      return dto
    } finally {
      done()
    }
  }

  /** Deletes the caller's own message for everyone (again: nothing happens); everyone gets message:deleted. */
  async remove(userId: number, dialogId: number, messageId: number): Promise<void> {
    const members = await this.membership.require(dialogId, userId)
    // The attachment goes with it, in the same transaction; its bytes once no message refers to them.
    const deleted = await this.unlessNoChange(
      this.db.tx(function* (s) {
        const version = yield* deleteMessage(s, dialogId, messageId, userId)
        return { version, unusedKey: yield* releaseAttachment(s, messageId) }
      }),
    )
    if (deleted === undefined) return
    this.changes.dialogChanged(dialogId, members)
    this.realtime.messageDeleted({ dialog_id: dialogId, message_id: messageId, version: deleted.version })
    if (deleted.unusedKey) await this.uploads.dropBytes(deleted.unusedKey)
  }

  /** Adds (on) or removes the caller's reaction; a change sends everyone message:reactions with the whole set. */
  async react(userId: number, dialogId: number, messageId: number, emoji: string, on: boolean): Promise<void> {
    checkEmoji(emoji)
    const members = await this.membership.require(dialogId, userId)
    const peer = peerOf(members, userId)
    const done = this.blocks.acting(userId, peer)
    try {
      // Taking one's reaction back stays possible; adding one reaches the peer as a send would.
      if (on && (await this.blocks.between(userId, peer))) throw blocked()
      const changed = await this.unlessNoChange(this.db.tx((s) => setReaction(s, dialogId, messageId, userId, emoji, on, new Date())))
      if (!changed) return
      this.changes.dialogChanged(dialogId, members)
      this.realtime.reactions({ dialog_id: dialogId, message_id: messageId, reactions: changed.reactions, version: changed.version })
    } finally {
      done()
    }
  }

  /** The WebSocket frames name only the message: its dialog is looked up, and must be the caller's. */
  async editById(userId: number, messageId: number, text: string): Promise<MessageDto> {
    return this.edit(userId, await this.dialogOfOwn(userId, messageId), messageId, text)
  }

  async removeById(userId: number, messageId: number): Promise<void> {
    await this.remove(userId, await this.dialogOfOwn(userId, messageId), messageId)
  }

  private async dialogOfOwn(userId: number, messageId: number): Promise<number> {
    const dialogId = await this.dialogOfMessage(messageId)
    if (dialogId === undefined) throw notFound('message')
    await this.membership.require(dialogId, userId)
    return dialogId
  }

  private statusOf(m: MessageRecord, members: [number, number], marks: Watermarks[]) {
    return statusFor(m.id, marks.find((w) => w.userId === peerOf(members, m.senderId)))
  }

  private async unlessNoChange<T>(work: Promise<T>): Promise<T | undefined> {
    try {
      return await work
    } catch (error) {
      if (error instanceof NoChange) return undefined
      throw error
    }
  }

  /** Moves the read (and delivered) watermark forward; the peer and the reader's other devices are told. */
  async readUpTo(userId: number, dialogId: number, messageId: number, at: Date, origin?: Origin): Promise<ReadStateDto> {
    const members = await this.membership.require(dialogId, userId)
    if ((await this.dialogOfMessage(messageId)) !== dialogId)
      throw invalidField('last_read_message_id', 'no such message in this dialog')
    const state = await this.moveWatermarks(members, { dialogId, userId, messageId, at, read: true })
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
    const members = await this.membership.require(dialogId, userId)
    const state = await this.moveWatermarks(members, { dialogId, userId, messageId, at, read: false })
    if (state.deliveredMoved)
      this.realtime.status(this.statusEvent(dialogId, state.lastDeliveredMessageId, 'delivered', userId, state.deliveredAt), origin)
  }

  /** A receipt through the writer; a watermark that moved changes the dialog's pages and lists. */
  private async moveWatermarks(members: readonly number[], mark: MarkInput): Promise<MarkOutcome> {
    const state = await this.writer.mark(mark)
    if (state.readMoved || state.deliveredMoved) this.changes.dialogChanged(mark.dialogId, members)
    return state
  }

  /** A message's dialog; messages are never removed or moved (a deleted one keeps its row), so an answer once read stays true. */
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
