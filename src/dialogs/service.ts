import type { BlockCache } from '../blocks/cache'
import { blocked, invalidField, notFound } from '../errors'
import { reactionsOfMany } from '../messages/changes'
import { statusFor, toMessageDto, type ReactionDto } from '../messages/model'
import type { RealtimePort } from '../realtime/port'
import { Lru } from '../shared/lru'
import { isoOrNull } from '../shared/time'
import type { Db, Routine } from '../storage/database'
import type { Checked, LocalChanges } from '../storage/local-changes'
import { userById } from '../users/store'
import type { Membership } from './membership'
import type { DialogDto } from './model'
import { dialogOfPair, dialogsOf, dialogsStamp, findOrCreateDialog, type DialogCursor, type DialogRecord } from './store'

/** Dialog lists kept, least recently used going first: a list of 20 is ~10 KB (measured), so ~20 MB. */
const MAX_LISTS = 2_000

export class DialogService {
  /** Lists as answers less presence (shared: never modified). */
  private readonly lists = new Lru<string, { stamp: string; dialogs: DialogDto[]; peers: number[]; checked: Checked | undefined }>(MAX_LISTS)

  constructor(
    private readonly db: Db,
    private readonly membership: Membership,
    private readonly realtime: RealtimePort,
    private readonly blocks: BlockCache,
    /** Told of new dialogs; asked whether a kept list is still current without reading it. */
    private readonly changes: LocalChanges,
  ) {}

  /** The pair's dialog: created (and announced to both members) or the existing one. */
  async open(userId: number, peerId: number): Promise<{ created: boolean; dialog: DialogDto }> {
    if (peerId === userId) throw invalidField('peer_user_id', 'cannot open a dialog with yourself')
    const peer = await this.db.read((s) => userById(s, peerId))
    if (!peer) throw notFound('user')
    if (await this.blocks.between(userId, peerId)) {
      // No new dialog while blocked; one that exists stays readable.
      const existing = await this.db.read((s) => dialogOfPair(s, userId, peerId))
      if (existing === undefined) throw blocked()
      return { created: false, dialog: await this.get(userId, existing) }
    }
    const { id, created } = await this.db.tx((s) => findOrCreateDialog(s, userId, peerId, new Date()))
    this.membership.remember(id, [userId, peerId])
    if (created) this.changes.dialogOpened([userId, peerId])
    const dialog = await this.get(userId, id)
    if (created) {
      const peerView = await this.get(peerId, id)
      await this.realtime.dialogNew(id, [
        { userId, dialog },
        { userId: peerId, dialog: peerView },
      ])
    }
    return { created, dialog }
  }

  async get(userId: number, dialogId: number): Promise<DialogDto> {
    const [found] = await this.list(userId, 1, undefined, dialogId)
    if (!found) throw notFound('dialog')
    return found
  }

  /**
   * The caller's dialogs (or one of them). What was read is kept, as answers less presence, under the
   * user's dialogsStamp, read before it (a change racing the read leaves the list newer than its stamp,
   * never older), and used again while the stamp is unchanged; presence and blocks are applied on every
   * call. The stamp is in the database, so a change made on another node counts as well. Where this process
   * is the database's one writer (LocalChanges), a list with no change reported since it was checked (to
   * the user's dialogs, or to its peers' last_seen_at) is used without even that read.
   */
  async list(userId: number, limit: number, cursor?: DialogCursor, dialogId?: number): Promise<DialogDto[]> {
    const key = `${userId}:${limit}:${cursor?.before.getTime() ?? ''}:${cursor?.beforeId ?? ''}:${dialogId ?? ''}`
    const kept = this.lists.get(key)
    const blocks = await this.blocks.of(userId)
    if (kept && this.changes.listFresh(kept.checked, userId, kept.peers)) return kept.dialogs.map((d) => this.withPresence(d, blocks))
    const checked = this.changes.mark()
    const read = await this.db.read(function* (s): Routine<{ stamp: string; found?: DialogRecord[]; reactions?: Map<number, ReactionDto[]> }> {
      const stamp = yield* dialogsStamp(s, userId)
      if (kept?.stamp === stamp) return { stamp }
      const found = yield* dialogsOf(s, userId, { limit, ...cursor, dialogId })
      return { stamp, found, reactions: yield* reactionsOfMany(s, found.flatMap((d) => (d.lastMessage ? [d.lastMessage.id] : []))) }
    })
    let dialogs = kept?.dialogs
    if (read.found) {
      const reactions = read.reactions!
      dialogs = read.found.map((d) => toDto(d, d.lastMessage ? reactions.get(d.lastMessage.id) : undefined))
    }
    this.lists.set(key, { stamp: read.stamp, dialogs: dialogs!, peers: dialogs!.map((d) => d.peer.id), checked })
    return dialogs!.map((d) => this.withPresence(d, blocks))
  }

  /** A peer in a block with the caller (either way) shows no presence: offline, never seen. */
  private withPresence(d: DialogDto, blocks: Set<number>): DialogDto {
    const hidden = blocks.has(d.peer.id)
    return {
      ...d,
      peer: { ...d.peer, online: !hidden && this.realtime.isOnline(d.peer.id), last_seen_at: hidden ? null : d.peer.last_seen_at },
    }
  }
}

/** The dialog as the caller sees it, before presence (`online` false, `last_seen_at` as stored). */
function toDto(d: DialogRecord, reactions: ReactionDto[] | undefined): DialogDto {
  const last = d.lastMessage
  return {
    id: d.id,
    peer: { id: d.peer.userId, username: d.peer.username, online: false, last_seen_at: isoOrNull(d.peer.lastSeenAt) },
    created_at: d.createdAt.toISOString(),
    last_message: last ? toMessageDto(last, statusFor(last.id, last.senderId === d.me.userId ? d.peer : d.me), reactions) : null,
    unread_count: d.unreadCount,
    last_read_message_id: d.me.lastReadMessageId,
    peer_last_read_message_id: d.peer.lastReadMessageId,
    peer_last_delivered_message_id: d.peer.lastDeliveredMessageId,
    version: d.version,
  }
}
