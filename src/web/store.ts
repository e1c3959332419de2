import type { ChatClient, ConnectionState, Dialog, Message, MessageStatus, PendingMessage, Session } from '../client'

/** Whether this browser can get push notifications, and whether this session has subscribed. */
export type PushState = 'unsupported' | 'available' | 'busy' | 'on'

/** One chat as the app knows it: the server's dialog, the messages loaded so far, and the peer's typing. */
export interface Chat {
  dialog: Dialog
  /**
   * The server's copy of the dialog counted the peer's messages up to this id (its last message then) in
   * `unread_count`: when they arrive as events (a catch-up), they are not counted again.
   */
  countedUpTo: number
  messages: Map<number, Message>
  /** History has been fetched (the newest page at least). */
  loaded: boolean
  hasMore: boolean
  /**
   * A window of history is shown (around a search hit far back): the id of its newest message. Newer
   * messages exist that are not all loaded, so those loaded (live ones too) wait, not shown, until the
   * pages after the window close the gap. null: the history loaded reaches the present.
   */
  gapAfter: number | null
  peerTyping: boolean
}

/** All the app's state, in one place; views render from it and never keep their own. */
export interface State {
  session: Session | null
  connection: ConnectionState
  /** Has been live, or has failed to connect, since sign-in: then a down socket reads "Reconnecting…". */
  wasLive: boolean
  chats: Map<number, Chat>
  openId: number | null
  pending: Map<string, PendingMessage>
  /** What went wrong, in words (shown with role="alert"). */
  alert: string | null
  busy: boolean
  /** Users this user blocks. */
  blocked: Set<number>
  /** The own message whose text the composer is editing. */
  editing: { dialogId: number; messageId: number } | null
  /** The message whose emoji picker is open. */
  reacting: number | null
  /** The hits shown, newest first; hasMore: older ones are there to fetch ("More results"). */
  search: { query: string; results: Message[] | null; hasMore: boolean }
  /** A message to bring into view (a search hit opened); a new object each time it is asked. */
  focus: { dialogId: number; messageId: number } | null
  /** Files being uploaded, not yet queued as messages. */
  uploading: number
  push: PushState
}

export const initialState = (session: Session | null): State => ({
  session,
  connection: 'closed',
  wasLive: false,
  chats: new Map(),
  openId: null,
  pending: new Map(),
  alert: null,
  busy: false,
  blocked: new Set(),
  editing: null,
  reacting: null,
  search: { query: '', results: null, hasMore: false },
  focus: null,
  uploading: 0,
  push: 'unsupported',
})

/** What a message says in one line (chat list, search results). */
export function summary(message: Message): string {
  if (message.deleted) return 'Message deleted'
  if (message.type === 'image') return message.text ? `Photo: ${message.text}` : 'Photo'
  if (message.type === 'file') return `File: ${message.text || message.attachment?.name || ''}`
  return message.text
}

const RANK: Record<MessageStatus, number> = { sent: 0, delivered: 1, read: 2 }

/** An own message's tick: what the server said, moved on by the peer's watermarks since. */
export function statusOf(message: Message, dialog: Dialog): MessageStatus {
  const byWatermark: MessageStatus =
    dialog.peer_last_read_message_id >= message.id ? 'read' : dialog.peer_last_delivered_message_id >= message.id ? 'delivered' : 'sent'
  return RANK[byWatermark] > RANK[message.status] ? byWatermark : message.status
}

/** Whether a loaded message is shown: not while it is beyond the gap after a window of history. */
export const isShown = (chat: Chat, messageId: number) => chat.gapAfter === null || messageId <= chat.gapAfter

export const activityOf = (dialog: Dialog) => dialog.last_message?.created_at ?? dialog.created_at

/** Chats by most recent activity first. */
export const chatList = (state: State) =>
  [...state.chats.values()].sort((a, b) => activityOf(b.dialog).localeCompare(activityOf(a.dialog)) || b.dialog.id - a.dialog.id)

/**
 * Wires the client's events into the state. `changed` re-renders; `isVisible` says whether the open chat
 * is in front of the user (then its new messages are read, not unread).
 */
export function connectStore(client: ChatClient, state: State, changed: () => void, isVisible: () => boolean): void {
  /** A message the dialog had not had yet: the chat list's preview, and unread unless counted or in front of the user. */
  const account = (chat: Chat, message: Message) => {
    const { dialog } = chat
    if (!dialog.last_message || dialog.last_message.id < message.id) dialog.last_message = message
    const mine = message.sender_id === state.session?.user.id
    // Open and in front of the user, and drawn: a message past the gap after a window of history is not.
    const seen = state.openId === dialog.id && isVisible() && isShown(chat, message.id)
    if (!mine && !seen && message.id > chat.countedUpTo && message.id > dialog.last_read_message_id) dialog.unread_count++
  }
  /** The server's copy replaces ours; messages that reached the app after it was made are in neither its count nor its preview. */
  const upsert = (dialog: Dialog) => {
    const countedUpTo = dialog.last_message?.id ?? 0
    const chat = state.chats.get(dialog.id)
    if (!chat) return void state.chats.set(dialog.id, { dialog, countedUpTo, messages: new Map(), loaded: false, hasMore: false, gapAfter: null, peerTyping: false })
    chat.dialog = dialog
    chat.countedUpTo = countedUpTo
    for (const message of chat.messages.values()) if (message.id > countedUpTo) account(chat, message)
  }

  client.on('state', ({ state: connection }) => {
    state.connection = connection
    if (connection === 'live' || connection === 'offline') state.wasLive = true
    changed()
  })
  client.on('dialog', ({ dialog }) => {
    upsert(dialog)
    changed()
  })
  const add = (message: Message) => {
    const chat = state.chats.get(message.dialog_id)
    if (!chat || chat.messages.has(message.id)) return
    chat.messages.set(message.id, message)
    account(chat, message)
  }
  client.on('message', ({ message }) => {
    add(message)
    changed()
  })
  /** A message already shown changed: replace it, and the chat list's preview if it is the last one, and a search hit. */
  const change = (dialogId: number, messageId: number, update: (message: Message) => Message) => {
    // Search never shows a deleted message: its hit goes; an edited one shows its new text.
    const results = state.search.results
    const at = results?.findIndex((m) => m.dialog_id === dialogId && m.id === messageId) ?? -1
    if (results && at >= 0) {
      const hit = update(results[at]!)
      if (hit.deleted) results.splice(at, 1)
      else results[at] = hit
    }
    const chat = state.chats.get(dialogId)
    if (!chat) return changed()
    const current = chat.messages.get(messageId)
    if (current) chat.messages.set(messageId, update(current))
    const last = chat.dialog.last_message
    if (last?.id === messageId) chat.dialog.last_message = update(last)
    if (state.editing?.messageId === messageId && chat.messages.get(messageId)?.deleted) state.editing = null
    changed()
  }
  client.on('changed', ({ message }) => change(message.dialog_id, message.id, () => message))
  client.on('deleted', ({ dialog_id, message_id }) =>
    change(dialog_id, message_id, (m) => ({ ...m, deleted: true, text: '', attachment: null, reactions: [] })),
  )
  client.on('reactions', ({ dialog_id, message_id, reactions }) => change(dialog_id, message_id, (m) => ({ ...m, reactions })))
  client.on('pending', ({ pending }) => {
    if (pending.state !== 'sent') state.pending.set(pending.client_msg_id, pending)
    else {
      // Shown as stored at once (its `message` event may wait for a catch-up to put it in order).
      state.pending.delete(pending.client_msg_id)
      if (pending.message) add(pending.message)
    }
    changed()
  })
  client.on('receipt', (receipt) => {
    const chat = state.chats.get(receipt.dialog_id)
    if (!chat || receipt.user_id !== chat.dialog.peer.id) return
    const d = chat.dialog
    d.peer_last_delivered_message_id = Math.max(d.peer_last_delivered_message_id, receipt.message_id)
    if (receipt.status === 'read') d.peer_last_read_message_id = Math.max(d.peer_last_read_message_id, receipt.message_id)
    changed()
  })
  client.on('typing', ({ dialog_id, user_id, typing }) => {
    const chat = state.chats.get(dialog_id)
    if (!chat || chat.dialog.peer.id !== user_id) return
    chat.peerTyping = typing
    changed()
  })
  client.on('presence', ({ user_id, online, last_seen_at }) => {
    for (const chat of state.chats.values())
      if (chat.dialog.peer.id === user_id) chat.dialog.peer = { ...chat.dialog.peer, online, last_seen_at }
    changed()
  })
}
