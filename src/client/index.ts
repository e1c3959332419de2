/*
 * bun-chat/client: the server's REST and WebSocket protocol behind one object. Runs anywhere with fetch,
 * WebSocket and crypto.getRandomValues (browsers, Bun, Node ≥ 22): no Node or Bun APIs.
 *
 *   const chat = new ChatClient({ baseUrl: 'http://localhost:5000' })
 *   await chat.login('alice', 'secret password')
 *   chat.on('message', ({ message }) => console.log(message.text))
 *   chat.connect()
 *   await chat.send(dialogId, 'hi').sent
 */
import { Api, type ApiOptions, type HistoryQuery, type OutgoingAttachment, type RefreshLock, type SearchQuery, type Session } from './api'
import { Emitter, type EventOf } from './emitter'
import { ChatError } from './errors'
import { Outbox, type PendingMessage, type SavedMessage } from './outbox'
import { ReceiptResend } from './receipts'
import { ReconnectingSocket, type Backoff, type WebSocketLike } from './socket'
import type { Attachment, Dialog, HistoryPageBody, Message, PushSubscriptionBody, Reaction, Receipt, ServerFrame } from './types'

export { Api } from './api'
export { ChatError } from './errors'
export { newClientMsgId } from './outbox'
export { backoffDelay } from './socket'
export type { HistoryQuery, OutgoingAttachment, PendingMessage, RefreshLock, SavedMessage, SearchQuery, Session }
export type * from './types'

/**
 * `connecting`: opening and authenticating; `catching_up`: connected, fetching what was missed;
 * `live`: up to date, events arrive as they happen; `offline`: down, a reconnect is scheduled;
 * `closed`: not connected and not trying (before connect(), after close() or logout).
 */
export type ConnectionState = 'closed' | 'connecting' | 'catching_up' | 'live' | 'offline'

export interface ClientEvents {
  state: { state: ConnectionState }
  /** Login, refresh, logout; `null` also when the server ended the session. */
  session: { session: Session | null }
  /** A dialog seen for the first time (`created: true`) or refreshed (after a catch-up or a read on another device). */
  dialog: { dialog: Dialog; created: boolean }
  /** Each message once, in `seq` order within its dialog: live, caught up after a reconnect, or a gap filled. */
  message: { message: Message }
  /**
   * A message changed after it was reported (edited, deleted, its reactions): live (`message:edited`) or
   * found by the catch-up after a reconnect. The message as it is now; replace your copy.
   */
  changed: { message: Message }
  /** A message was deleted for everyone (live): it keeps its place, with `deleted: true` and no text. */
  deleted: { dialog_id: number; message_id: number }
  /** A message's reactions changed (live): the whole set as it is now. */
  reactions: { dialog_id: number; message_id: number; reactions: Reaction[] }
  /** An own unacknowledged message changed state (queued, sending, sent, failed, discarded). */
  pending: { pending: PendingMessage }
  /** Someone's delivered or read watermark moved. */
  receipt: Receipt
  /** Whether the peer is typing; a `start` that is not followed by anything expires by itself. */
  typing: { dialog_id: number; user_id: number; typing: boolean }
  presence: { user_id: number; online: boolean; last_seen_at: string | null }
  /** A failure that belongs to no message (a bad frame, a catch-up that failed). */
  error: { error: ChatError }
  /** Every frame from the server as it is, handled or not: a frame type newer than this client is still seen. */
  frame: { frame: ServerFrame }
}
export type ClientEvent = EventOf<ClientEvents>

export interface ChatClientOptions extends ApiOptions {
  /** Defaults to the global WebSocket. */
  WebSocket?: WebSocketLike
  reconnect?: Backoff
  /** Tell the server that received messages reached this device (`message:delivered`); default true. */
  autoDeliver?: boolean
  /** Unacknowledged messages saved by an earlier run (`saved()`): queued again, sent once connected. */
  outbox?: SavedMessage[]
}

/** Where the client stands in one dialog: the last message it reported, and live messages held during a fill. */
interface Cursor {
  lastId: number
  lastSeq: number
  /** The highest dialog version applied: the catch-up asks for the changes after it. */
  version: number
  filling: boolean
  held: Message[]
}

const TYPING_REPEAT_MS = 3_000
const TYPING_IDLE_MS = 3_000
const TYPING_EXPIRES_MS = 6_000
const PAGE = 100
const MAX_TIMER_MS = 86_400_000

export class ChatClient {
  readonly api: Api
  private readonly emitter = new Emitter<ClientEvents>()
  private readonly socket: ReconnectingSocket
  private readonly outbox: Outbox
  private readonly cursors = new Map<number, Cursor>()
  private readonly typingOut = new Map<number, { sentAt: number; idle: ReturnType<typeof setTimeout> }>()
  private readonly typingIn = new Map<string, ReturnType<typeof setTimeout>>()
  /**
   * While catching up: the version of each message a live edit or deletion (each the message's whole state)
   * reported, so that an older copy in the catch-up's answer does not undo it.
   */
  private readonly liveChanges = new Map<number, number>()
  /** Dialogs reported as `created` (see report). */
  private readonly reportedNew = new Set<number>()
  private readonly deliverTimers = new Map<number, ReturnType<typeof setTimeout>>()
  private readonly deliverUpTo = new Map<number, number>()
  private readonly receipts = new ReceiptResend((type, dialogId, messageId) =>
    type === 'message:delivered' ? this.scheduleDelivered(dialogId, messageId) : void this.markRead(dialogId, messageId).catch(() => {}),
  )
  /** The latest read watermark sent over the socket per dialog: a frame lost with its connection goes again. */
  private readonly readSent = new Map<number, number>()
  private refreshTimer: ReturnType<typeof setTimeout> | undefined
  private currentState: ConnectionState = 'closed'
  /** Bumped on every connection, so a catch-up of a connection that has since dropped stops reporting. */
  private generation = 0

  constructor(private readonly options: ChatClientOptions) {
    this.api = new Api({
      ...options,
      onSession: (session) => {
        options.onSession?.(session)
        this.emitter.emit('session', { session })
        if (session) this.scheduleRefresh()
        else this.ended()
      },
    })
    const base = this.api.baseUrl || ((globalThis as { location?: { origin: string } }).location?.origin ?? '')
    const WebSocketCtor = options.WebSocket ?? (globalThis.WebSocket as WebSocketLike)
    this.socket = new ReconnectingSocket(
      `${base.replace(/^http/, 'ws')}/ws`,
      {
        token: () => this.api.accessToken(),
        connecting: () => this.setState('connecting'),
        up: () => void this.caughtUp(),
        frame: (frame) => this.onFrame(frame),
        down: () => {
          this.outbox.disconnected()
          this.setState('offline')
        },
        unauthorized: async () => {
          // The token was refused: one refresh, then try again; if the session is over, stop.
          try {
            await this.api.refresh()
            return true
          } catch (error) {
            return !(error instanceof ChatError && error.status === 401)
          }
        },
      },
      options.reconnect ?? { initialMs: 500, maxMs: 15_000 },
      WebSocketCtor,
    )
    this.outbox = new Outbox(
      (entry) =>
        this.socket.send({
          type: 'message:send',
          dialog_id: entry.dialog_id,
          client_msg_id: entry.client_msg_id,
          msg_type: entry.attachment?.type ?? 'text',
          text: entry.text,
          ...(entry.attachment && { attachment_id: entry.attachment.attachment_id }),
        }),
      (pending) => this.emitter.emit('pending', { pending }),
    )
    for (const saved of options.outbox ?? []) this.outbox.add(saved.dialog_id, saved.text, saved.client_msg_id, saved.created_at, saved.attachment)
  }

  // ---- session ---------------------------------------------------------------------------------

  get session(): Session | null {
    return this.api.session
  }
  get user() {
    return this.api.session?.user ?? null
  }
  get state(): ConnectionState {
    return this.currentState
  }

  register = (username: string, password: string) => this.api.register(username, password)
  login = (username: string, password: string) => this.api.login(username, password)

  /** Ends the session on the server and here: the connection closes and unsent messages are dropped. */
  async logout(): Promise<void> {
    this.close()
    await this.api.logout()
  }

  // ---- events ----------------------------------------------------------------------------------

  on<K extends keyof ClientEvents>(type: K, listener: (event: { type: K } & ClientEvents[K]) => void): () => void {
    return this.emitter.on(type, listener)
  }
  events(): AsyncIterableIterator<ClientEvent> {
    return this.emitter.events()
  }

  // ---- realtime --------------------------------------------------------------------------------

  /** Opens the realtime connection (needs a session) and keeps it open, reconnecting, until close(). */
  connect(): void {
    if (!this.api.session) throw new ChatError('unauthorized', 'sign in before connecting', 401)
    if (this.currentState === 'closed') this.setState('connecting')
    this.scheduleRefresh()
    this.socket.start()
  }

  /** Closes the connection and stops reconnecting; unacknowledged messages stay queued for the next connect(). */
  close(): void {
    // A catch-up still running belongs to the connection being closed: it reports nothing more.
    this.generation++
    this.socket.stop()
    clearTimeout(this.refreshTimer)
    // Peers shown typing stop being shown so (nothing would clear them once their timers are gone).
    for (const key of [...this.typingIn.keys()]) {
      const [dialogId, userId] = key.split(':').map(Number)
      this.peerStoppedTyping(dialogId!, userId!)
    }
    for (const { idle } of this.typingOut.values()) clearTimeout(idle)
    for (const timer of this.deliverTimers.values()) clearTimeout(timer)
    this.typingOut.clear()
    this.deliverTimers.clear()
    this.receipts.stop()
    this.outbox.disconnected()
    this.setState('closed')
  }

  /** Reconnect at once (e.g. when the browser says it is online again) rather than after the backoff. */
  reconnectNow(): void {
    this.socket.reconnectNow()
  }

  // ---- dialogs and history ---------------------------------------------------------------------

  /** Every dialog, most recent activity first; the client follows each from its last message on. */
  async dialogs(): Promise<Dialog[]> {
    const all: Dialog[] = []
    for (let cursor: { before: string; before_id: number } | undefined; ; ) {
      const page = await this.api.dialogs({ limit: PAGE, ...cursor })
      all.push(...page)
      for (const dialog of page) this.follow(dialog)
      const last = page.at(-1)
      if (page.length < PAGE || !last) return all
      // The last dialog's activity time and id: dialogs tied with it on time still follow (one write batch stamps one time).
      cursor = { before: last.last_message?.created_at ?? last.created_at, before_id: last.id }
    }
  }

  /** Finds or creates the dialog with the user of that exact name; null when there is no such user. */
  async openDialogWith(username: string): Promise<Dialog | null> {
    const user = await this.api.findUser(username)
    if (!user) return null
    const dialog = await this.api.openDialog(user.id)
    if (this.follow(dialog)) this.report(dialog, true)
    return dialog
  }

  /** A page of history (ascending). Messages it returns are history, not events: `message` is for what is new. */
  async history(dialogId: number, query: HistoryQuery = {}): Promise<HistoryPageBody> {
    return this.api.history(dialogId, query)
  }

  // ---- sending ---------------------------------------------------------------------------------

  /**
   * Queues a text message and returns it at once, pending; `sent` resolves on the server's ack. It is
   * sent now if connected, else after the reconnect, always with the same client_msg_id.
   */
  send(dialogId: number, text: string, clientMsgId?: string): PendingMessage {
    this.stopTyping(dialogId)
    return this.outbox.add(dialogId, text, clientMsgId)
  }

  /**
   * Queues an image or file message (an upload from `upload()`), with an optional caption, through the
   * same outbox as text: shown pending at once, sent once with its client_msg_id, however many reconnects.
   */
  sendAttachment(dialogId: number, uploadId: number, type: 'image' | 'file', caption = '', clientMsgId?: string): PendingMessage {
    this.stopTyping(dialogId)
    return this.outbox.add(dialogId, caption, clientMsgId, undefined, { type, attachment_id: uploadId })
  }

  /** Uploads a file for `sendAttachment`; the server decides its content type from the bytes. */
  upload = (file: Blob, name: string) => this.api.upload(file, name)

  /**
   * The address of an attachment with the access token in the query, for `<img src>` and download links
   * (which cannot send an Authorization header). Valid while the access token is: render it again after
   * a refresh.
   */
  attachmentUrl(attachment: Pick<Attachment, 'url'>): string {
    const token = this.api.session?.access_token ?? ''
    return `${this.api.baseUrl}${attachment.url}?access_token=${encodeURIComponent(token)}`
  }

  // ---- changing messages -----------------------------------------------------------------------

  /** Replaces the text of an own message; everyone's `changed` event follows (this client's too). */
  edit = (dialogId: number, messageId: number, text: string) => this.api.editMessage(dialogId, messageId, text)
  /** Deletes an own message for everyone; everyone's `deleted` event follows. */
  remove = (dialogId: number, messageId: number) => this.api.deleteMessage(dialogId, messageId)
  react = (dialogId: number, messageId: number, emoji: string) => this.api.react(dialogId, messageId, emoji)
  unreact = (dialogId: number, messageId: number, emoji: string) => this.api.unreact(dialogId, messageId, emoji)

  /** Messages holding every word of `q` (prefixes too), newest first; `dialogId` narrows it to one dialog. */
  search = (q: string, query: SearchQuery = {}) => this.api.search(q, query)

  // ---- blocking --------------------------------------------------------------------------------

  /** While either blocks the other, sends between them fail with `blocked`; history stays readable. */
  block = (userId: number) => this.api.block(userId)
  unblock = (userId: number) => this.api.unblock(userId)
  blocked = () => this.api.blocked()

  // ---- push ------------------------------------------------------------------------------------

  /** The server's VAPID key, for `pushManager.subscribe({ applicationServerKey })`. */
  vapidPublicKey = () => this.api.vapidPublicKey()
  /** Registers a `PushSubscription.toJSON()` for this session: pushes come while no connection is up. */
  subscribePush = (subscription: PushSubscriptionBody) => this.api.subscribePush(subscription)
  unsubscribePush = (endpoint: string) => this.api.unsubscribePush(endpoint)

  /** Unacknowledged messages, oldest first. */
  pending(): PendingMessage[] {
    return this.outbox.pending()
  }
  /** The unacknowledged messages as plain values, to store and pass back as `outbox` after a restart. */
  saved(): SavedMessage[] {
    return this.outbox.saved()
  }
  retry = (clientMsgId: string) => this.outbox.retry(clientMsgId)
  discard = (clientMsgId: string) => this.outbox.discard(clientMsgId)

  /** Moves the read watermark (over the socket when connected, else REST). */
  async markRead(dialogId: number, lastReadMessageId: number): Promise<void> {
    const frame = { type: 'message:read', dialog_id: dialogId, last_read_message_id: lastReadMessageId } as const
    if (this.socket.send(frame)) {
      this.receipts.sending('message:read', dialogId, lastReadMessageId)
      this.readSent.set(dialogId, Math.max(this.readSent.get(dialogId) ?? 0, lastReadMessageId))
    } else await this.api.readUpTo(dialogId, lastReadMessageId)
  }

  /** Call on every keystroke: sends `start` at most every few seconds and `stop` once the typing pauses. */
  typing(dialogId: number): void {
    const now = Date.now()
    const current = this.typingOut.get(dialogId)
    if (current) clearTimeout(current.idle)
    const idle = setTimeout(() => this.stopTyping(dialogId), TYPING_IDLE_MS)
    if (current && now - current.sentAt < TYPING_REPEAT_MS) return void (current.idle = idle)
    this.socket.send({ type: 'typing', dialog_id: dialogId, state: 'start' })
    this.typingOut.set(dialogId, { sentAt: now, idle })
  }

  stopTyping(dialogId: number): void {
    const current = this.typingOut.get(dialogId)
    if (!current) return
    clearTimeout(current.idle)
    this.typingOut.delete(dialogId)
    this.socket.send({ type: 'typing', dialog_id: dialogId, state: 'stop' })
  }

  // ---- inside ----------------------------------------------------------------------------------

  private setState(state: ConnectionState): void {
    if (state === this.currentState) return
    this.currentState = state
    this.emitter.emit('state', { state })
  }

  /**
   * Reports a dialog; as `created` only once (a dialog:new, a message of an unknown dialog and the catch-up's
   * list may each bring the same new dialog first).
   */
  private report(dialog: Dialog, isNew: boolean): void {
    const created = isNew && !this.reportedNew.has(dialog.id)
    if (created) this.reportedNew.add(dialog.id)
    this.emitter.emit('dialog', { dialog, created })
  }

  /** Starts following a dialog at its last message; true when it was new to the client. */
  private follow(dialog: Dialog): boolean {
    if (this.cursors.has(dialog.id)) return false
    const last = dialog.last_message
    this.cursors.set(dialog.id, { lastId: last?.id ?? 0, lastSeq: last?.seq ?? 0, version: dialog.version, filling: false, held: [] })
    return true
  }

  /** After auth:ok: resend the outbox, then fetch the dialogs and what each missed; then `live`. */
  private async caughtUp(): Promise<void> {
    const generation = ++this.generation
    this.liveChanges.clear()
    this.setState('catching_up')
    this.outbox.flush()
    for (const cursor of this.cursors.values()) cursor.filling = true
    try {
      // The dialogs followed, each at its version now: a live change while the list loads raises the cursor's
      // version past edits made while away, which must still be asked for.
      const known = new Map([...this.cursors].map(([id, cursor]) => [id, cursor.version]))
      const versions = new Map<number, number>()
      const me = this.api.session?.user.id
      for (const dialog of await this.dialogs()) {
        versions.set(dialog.id, dialog.version)
        this.report(dialog, !known.has(dialog.id))
        // A read receipt the server has not applied was lost with an earlier connection: sent again.
        const read = this.readSent.get(dialog.id)
        if (read !== undefined && read > dialog.last_read_message_id) void this.markRead(dialog.id, read).catch(() => {})
        else this.readSent.delete(dialog.id)
        // A dialog new to this client is followed from its last message, which never passes accept(): say it
        // reached this device all the same (the server ignores a receipt that moves nothing).
        const last = dialog.last_message
        if (last && last.sender_id !== me && last.status === 'sent') this.scheduleDelivered(dialog.id, last.id)
      }
      await Promise.all(
        [...this.cursors.keys()]
          .filter((id) => known.has(id))
          .map(async (id) => {
            if (generation !== this.generation) return
            // Taken before the list and the fill: new messages raise the version past the edits made before them.
            const since = known.get(id)!
            // What was reported before the fill: the messages the fill brings are new, not changed.
            const reportedSeq = this.cursors.get(id)!.lastSeq
            await this.fill(id, generation)
            if ((versions.get(id) ?? 0) > since) await this.changesSince(id, since, reportedSeq, generation)
          }),
      )
      if (generation !== this.generation) return
      if (this.socket.authenticated) {
        this.socket.healthy()
        this.setState('live')
      }
    } catch (error) {
      if (generation !== this.generation) return
      this.emitter.emit('error', { error: asChatError(error) })
      // Not up to date, so not live: drop the connection (with backoff) and catch up on the next one.
      if (this.api.session) this.socket.drop('catch-up failed')
    }
  }

  /** Fetches everything after the cursor (a reconnect or a seq gap), then replays the live messages held meanwhile. */
  private async fill(dialogId: number, generation = this.generation): Promise<void> {
    const cursor = this.cursors.get(dialogId)
    // Gone with a logout meanwhile.
    if (!cursor) return
    cursor.filling = true
    for (;;) {
      const page = await this.api.history(dialogId, { after_id: cursor.lastId, limit: PAGE })
      if (generation !== this.generation) return
      for (const message of page.messages) this.accept(cursor, message)
      if (!page.has_more || !page.messages.length) break
    }
    const held = cursor.held.sort((a, b) => a.seq - b.seq)
    cursor.held = []
    cursor.filling = false
    for (const message of held) this.ingest(message)
  }

  /** Edits, deletions and reactions made while away: messages reported up to `reportedSeq` come again as `changed`. */
  private async changesSince(dialogId: number, since: number, reportedSeq: number, generation: number): Promise<void> {
    const cursor = this.cursors.get(dialogId)
    if (!cursor) return
    for (let after = since; ; ) {
      const page = await this.api.history(dialogId, { changed_after: after, limit: PAGE })
      if (generation !== this.generation) return
      for (const message of page.messages) {
        if (message.seq <= reportedSeq && (this.liveChanges.get(message.id) ?? 0) <= message.version) this.emitter.emit('changed', { message })
        cursor.version = Math.max(cursor.version, message.version)
      }
      const last = page.messages.at(-1)
      if (!page.has_more || !last) return
      after = last.version
    }
  }

  private applied(dialogId: number, version: number): void {
    const cursor = this.cursors.get(dialogId)
    if (cursor) cursor.version = Math.max(cursor.version, version)
  }

  /** A message from the wire (new or acked): reported once, in order; a gap in seq is filled first. */
  private ingest(message: Message): void {
    let cursor = this.cursors.get(message.dialog_id)
    if (!cursor) {
      // A dialog this client has not seen (its dialog:new is still on its way, or the catch-up's list): follow
      // it from this message on, as from a dialog's last message; what came before is history.
      cursor = { lastId: 0, lastSeq: message.seq - 1, version: 0, filling: false, held: [] }
      this.cursors.set(message.dialog_id, cursor)
      void this.api.dialog(message.dialog_id).then(
        (dialog) => this.report(dialog, true),
        () => {},
      )
    }
    if (cursor.filling) return void cursor.held.push(message)
    if (message.seq <= cursor.lastSeq) return
    if (message.seq === cursor.lastSeq + 1) return this.accept(cursor, message)
    cursor.held.push(message)
    const generation = this.generation
    this.fill(message.dialog_id, generation).catch((error) => {
      // A newer connection's catch-up fills this dialog (and replays what is held).
      if (generation !== this.generation) return
      cursor.filling = false
      cursor.held = []
      this.emitter.emit('error', { error: asChatError(error) })
      // Not up to date: drop the connection (with backoff) and let the reconnect's catch-up fill the gap.
      if (this.api.session) this.socket.drop('gap fill failed')
    })
  }

  private accept(cursor: Cursor, message: Message): void {
    if (message.seq <= cursor.lastSeq) return
    cursor.lastSeq = message.seq
    cursor.lastId = Math.max(cursor.lastId, message.id)
    cursor.version = Math.max(cursor.version, message.version)
    const me = this.api.session?.user.id
    if (message.sender_id !== me) {
      this.peerStoppedTyping(message.dialog_id, message.sender_id)
      this.scheduleDelivered(message.dialog_id, message.id)
    }
    this.emitter.emit('message', { message })
  }

  private onFrame(frame: ServerFrame): void {
    this.emitter.emit('frame', { frame })
    switch (frame.type) {
      case 'message:new':
        return this.ingest(frame.message)
      case 'message:ack':
        this.outbox.ack(frame.client_msg_id, frame.message)
        return this.ingest(frame.message)
      case 'message:edited':
        this.applied(frame.message.dialog_id, frame.message.version)
        if (this.currentState === 'catching_up') this.liveChanges.set(frame.message.id, frame.message.version)
        return this.emitter.emit('changed', { message: frame.message })
      case 'message:deleted':
        this.applied(frame.dialog_id, frame.version)
        if (this.currentState === 'catching_up') this.liveChanges.set(frame.message_id, frame.version)
        return this.emitter.emit('deleted', { dialog_id: frame.dialog_id, message_id: frame.message_id })
      case 'message:reactions':
        this.applied(frame.dialog_id, frame.version)
        return this.emitter.emit('reactions', { dialog_id: frame.dialog_id, message_id: frame.message_id, reactions: frame.reactions })
      case 'message:status': {
        const { type: _, ...receipt } = frame
        this.emitter.emit('receipt', receipt)
        // Read on another device of mine: the unread count changed; fetch it rather than guess.
        if (receipt.user_id === this.api.session?.user.id && receipt.status === 'read')
          void this.api.dialog(receipt.dialog_id).then((dialog) => this.emitter.emit('dialog', { dialog, created: false }), () => {})
        return
      }
      case 'typing':
        if (frame.state === 'stop') return this.peerStoppedTyping(frame.dialog_id, frame.user_id)
        return this.peerTyping(frame.dialog_id, frame.user_id)
      case 'presence':
        // Offline (or hidden by a block): whatever they were typing, they are not any more.
        if (!frame.online)
          for (const key of [...this.typingIn.keys()]) {
            const [dialogId, userId] = key.split(':').map(Number)
            if (userId === frame.user_id) this.peerStoppedTyping(dialogId!, userId)
          }
        return this.emitter.emit('presence', { user_id: frame.user_id, online: frame.online, last_seen_at: frame.last_seen_at })
      case 'dialog:new':
        if (this.follow(frame.dialog)) this.report(frame.dialog, true)
        return
      case 'error': {
        const error = new ChatError(frame.code, frame.message, 0, frame.details, frame.retry_after)
        if (frame.frame_type === 'message:send' && frame.client_msg_id) return this.outbox.failed(frame.client_msg_id, error)
        if ((frame.frame_type === 'message:delivered' || frame.frame_type === 'message:read') && frame.code === 'rate_limited')
          return this.receipts.refused(frame.frame_type, frame.retry_after)
        return this.emitter.emit('error', { error })
      }
    }
  }

  private peerTyping(dialogId: number, userId: number): void {
    const key = `${dialogId}:${userId}`
    const was = this.typingIn.get(key)
    clearTimeout(was)
    this.typingIn.set(key, setTimeout(() => this.peerStoppedTyping(dialogId, userId), TYPING_EXPIRES_MS))
    if (!was) this.emitter.emit('typing', { dialog_id: dialogId, user_id: userId, typing: true })
  }

  private peerStoppedTyping(dialogId: number, userId: number): void {
    const key = `${dialogId}:${userId}`
    const was = this.typingIn.get(key)
    if (!was) return
    clearTimeout(was)
    this.typingIn.delete(key)
    this.emitter.emit('typing', { dialog_id: dialogId, user_id: userId, typing: false })
  }

  /** One `message:delivered` per dialog for a burst of received messages: watermarks mean "up to". */
  private scheduleDelivered(dialogId: number, messageId: number): void {
    if (this.options.autoDeliver === false) return
    this.deliverUpTo.set(dialogId, Math.max(this.deliverUpTo.get(dialogId) ?? 0, messageId))
    if (this.deliverTimers.has(dialogId)) return
    this.deliverTimers.set(
      dialogId,
      setTimeout(() => {
        this.deliverTimers.delete(dialogId)
        const upTo = this.deliverUpTo.get(dialogId)
        if (upTo === undefined || !this.socket.send({ type: 'message:delivered', message_id: upTo })) return
        this.deliverUpTo.delete(dialogId)
        this.receipts.sending('message:delivered', dialogId, upTo)
      }, 50),
    )
  }

  /** Refreshes the access token ahead of its expiry while connected, so the next reconnect has a valid one. */
  private scheduleRefresh(): void {
    clearTimeout(this.refreshTimer)
    const due = this.api.refreshDueAt()
    if (due === undefined || this.currentState === 'closed') return
    const wait = due - Date.now()
    this.refreshTimer = setTimeout(() => {
      // A timer longer than 2^31-1 ms fires at once, so a long-lived token is waited for a day at a time.
      if (wait > MAX_TIMER_MS) return this.scheduleRefresh()
      this.api.refresh().catch(() => {
        // Offline: retried before the next request or connection; a 401 has already ended the session.
        if (this.api.session) this.refreshTimer = setTimeout(() => this.scheduleRefresh(), 5_000)
      })
    }, Math.min(Math.max(0, wait), MAX_TIMER_MS))
  }

  /** The session ended (logout, or refused by the server): stop everything. */
  private ended(): void {
    this.close()
    this.outbox.clear()
    this.cursors.clear()
    this.reportedNew.clear()
    this.readSent.clear()
  }
}

const asChatError = (error: unknown) =>
  error instanceof ChatError ? error : new ChatError('internal', error instanceof Error ? error.message : String(error))
