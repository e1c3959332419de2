import { ChatClient, ChatError, type Attachment, type Message, type SavedMessage, type Session } from '../client'
import { MAX_TEXT_CHARS, textTooLong } from '../shared/text'
import { h } from './dom'
import { connectStore, initialState, isShown, type Chat, type State } from './store'
import { pushSupported, subscribe } from './push'
import { authView } from './views/auth'
import { conversationView } from './views/conversation'
import { sidebarView } from './views/sidebar'

/*
 * The web app: the state lives in one object (store.ts), the client library's events update it, and
 * render() brings the views up to date. The app never calls fetch or opens a socket: the client does.
 * Each feature is an action here (a call of the client, then the state changed) and a part of a view.
 */

const SESSION_KEY = 'bun-chat.session'
const OPEN_KEY = 'bun-chat.open'
/**
 * Messages written but not yet acknowledged, per user: they survive a reload while the server is away. The
 * tabs of one user share the key, so none may erase another's: see saveOutbox.
 */
const outboxKey = (session: Session) => `bun-chat.outbox.${session.user.id}`
const loadOutbox = (session: Session): SavedMessage[] => {
  try {
    const saved: unknown = JSON.parse(localStorage.getItem(outboxKey(session)) ?? '[]')
    return Array.isArray(saved) ? (saved as SavedMessage[]) : []
  } catch {
    return []
  }
}

const loadSession = (): Session | null => {
  try {
    return JSON.parse(localStorage.getItem(SESSION_KEY) ?? 'null') as Session | null
  } catch {
    return null
  }
}
const saveSession = (session: Session | null) =>
  session ? localStorage.setItem(SESSION_KEY, JSON.stringify(session)) : localStorage.removeItem(SESSION_KEY)

const root = document.getElementById('app')!
const visible = () => document.visibilityState === 'visible'

let client: ChatClient
let state: State = initialState(null)
/** The client_msg_ids this tab's client has held: what it no longer holds was acknowledged, failed or discarded. */
let held = new Set<string>()
let scheduled = false
/**
 * The chat to open once its dialog is known (the one open before a reload, or a notification's): once only.
 * Opening any chat, or going back to the list, forgets it, so later dialog events (a catch-up) leave the list be.
 */
let reopen: number | null = null
/** Set while the user logs out, so that the end of the session is not reported as a failure. */
let loggingOut = false

/** Say what went wrong in words a person understands (shown with role="alert"). */
function describe(error: unknown): string {
  if (!(error instanceof ChatError)) return 'Something went wrong. Please try again.'
  switch (error.code) {
    case 'invalid_credentials':
      return 'Wrong username or password.'
    case 'username_taken':
      return 'That username is taken. Pick another one, or log in.'
    case 'network':
      return 'Cannot reach the server. Check that it is running, then try again.'
    case 'rate_limited':
      return `Too many attempts. Try again in ${error.retryAfter ?? 'a few'} seconds.`
    case 'validation_failed':
      return humanField(error)
    case 'blocked':
      return 'You cannot message this person: one of you has blocked the other.'
    case 'forbidden':
      return 'Only the sender can change a message.'
    case 'payload_too_large':
      return 'That file is too large to send.'
    default:
      return error.message ? `${error.message[0]!.toUpperCase()}${error.message.slice(1)}.` : 'Something went wrong.'
  }
}

function humanField(error: ChatError): string {
  const field = error.details?.field
  if (field === 'username') return 'Usernames are 3–32 letters, digits, “_”, “.” or “-”.'
  if (field === 'password') return 'Passwords are 8–256 characters.'
  if (field === 'peer_user_id') return 'That is you. Find someone else to chat with.'
  return error.message
}

const actions = {
  async login(username: string, password: string) {
    await authenticate(() => client.login(username, password))
  },
  async register(username: string, password: string) {
    await authenticate(() => client.register(username, password))
  },
  async logout() {
    loggingOut = true
    try {
      await client.logout()
    } catch {
      // The server is unreachable: the session is forgotten here anyway (the client did that).
    }
  },
  async startChat(username: string) {
    if (!username) return
    state.alert = null
    try {
      const dialog = await client.openDialogWith(username)
      if (!dialog) state.alert = `No user is called “${username}”.`
      else {
        sidebar.clearFind()
        await actions.open(dialog.id)
      }
    } catch (error) {
      state.alert = describe(error)
    }
    render()
  },
  /** Opens a chat; not loaded yet, it starts at its newest page, or with `around`, at a window around that message. */
  async open(dialogId: number, around?: Message) {
    // An edit is of a message in the chat it was started in: leaving that chat abandons it.
    if (state.editing && state.editing.dialogId !== dialogId) state.editing = null
    reopen = null
    state.openId = dialogId
    sessionStorage.setItem(OPEN_KEY, String(dialogId))
    render()
    const chat = state.chats.get(dialogId)
    if (!chat || chat.loaded) return
    if (around) {
      chat.loaded = await showAround(chat, around)
      return render()
    }
    try {
      const page = await client.history(dialogId, { limit: 50 })
      for (const message of page.messages) chat.messages.set(message.id, message)
      chat.loaded = true
      chat.hasMore = page.has_more
    } catch (error) {
      state.alert = describe(error)
    }
    render()
  },
  /** The page before the oldest message loaded; false when it failed (said in words). */
  async loadOlder(dialogId: number, limit = 50): Promise<boolean> {
    const chat = state.chats.get(dialogId)
    if (!chat) return false
    const oldest = Math.min(...[...chat.messages.keys()])
    let ok = true
    try {
      const page = await client.history(dialogId, { limit, before_id: oldest })
      // Another window of history replaced the messages meanwhile: this page is not next to it.
      if (Math.min(...[...chat.messages.keys()]) !== oldest) return true
      for (const message of page.messages) chat.messages.set(message.id, message)
      chat.hasMore = page.has_more
    } catch (error) {
      state.alert = describe(error)
      ok = false
    }
    render()
    return ok
  },
  /** The page after a window of history, scrolled to its end; the last one closes the gap. */
  async loadNewer(dialogId: number) {
    const chat = state.chats.get(dialogId)
    const from = chat?.gapAfter
    if (!chat || from == null || loadingNewer.has(dialogId)) return
    loadingNewer.add(dialogId)
    try {
      const page = await client.history(dialogId, { limit: 100, after_id: from })
      // Jumped meanwhile (to the latest, or to another hit): the page is not next to what is shown.
      if (chat.gapAfter !== from) return
      for (const message of page.messages) chat.messages.set(message.id, message)
      chat.gapAfter = page.has_more ? (page.messages.at(-1)?.id ?? from) : null
    } catch (error) {
      state.alert = describe(error)
    } finally {
      loadingNewer.delete(dialogId)
      render()
    }
  },
  /** From a window of history back to the present: the newest page replaces the window. */
  async jumpToLatest(dialogId: number) {
    const chat = state.chats.get(dialogId)
    if (chat?.gapAfter == null) return
    try {
      const page = await client.history(dialogId, { limit: 50 })
      if (chat.gapAfter === null) return
      replaceLoaded(chat, page.messages)
      chat.hasMore = page.has_more
      chat.gapAfter = null
    } catch (error) {
      state.alert = describe(error)
    }
    render()
  },
  /** Queues the message; false (and said why) when it is refused as it is, to be changed in the composer. */
  send(dialogId: number, text: string): boolean {
    if (!fits(text)) return false
    client.send(dialogId, text)
    // Written while a window of history is shown: back to the present, where it goes.
    void actions.jumpToLatest(dialogId)
    return true
  },
  /**
   * Saves the edit, and ends it once the server has it. Refused or failed (the server is down), the edit
   * goes on with the text in the composer, to send again or cancel.
   */
  async edit(dialogId: number, messageId: number, text: string) {
    if (!fits(text)) return
    const current = state.chats.get(dialogId)?.messages.get(messageId)
    try {
      if (current?.text !== text) await client.edit(dialogId, messageId, text)
      if (state.editing?.messageId === messageId) state.editing = null
      state.alert = null
    } catch (error) {
      state.alert = `Not saved: ${describe(error)}`
    }
    render()
  },
  startEdit(dialogId: number, messageId: number) {
    state.editing = { dialogId, messageId }
    state.reacting = null
    render()
  },
  cancelEdit() {
    state.editing = null
    render()
  },
  async remove(dialogId: number, messageId: number) {
    if (state.editing?.messageId === messageId) state.editing = null
    await attempt(() => client.remove(dialogId, messageId))
  },
  pick(messageId: number | null) {
    state.reacting = messageId
    render()
  },
  async toggleReaction(dialogId: number, messageId: number, emoji: string) {
    state.reacting = null
    render()
    const me = state.session?.user.id ?? 0
    const mine = state.chats.get(dialogId)?.messages.get(messageId)?.reactions.some((r) => r.emoji === emoji && r.user_ids.includes(me))
    await attempt(() => (mine ? client.unreact(dialogId, messageId, emoji) : client.react(dialogId, messageId, emoji)))
  },
  /**
   * Uploads each file, then sends it through the outbox as a photo or a file (the server's sniffed type decides).
   * The caption goes with the first; false when it did not go (refused, or the upload failed), to give it back.
   */
  async attach(dialogId: number, files: File[], caption: string): Promise<boolean> {
    if (!fits(caption)) return false
    void actions.jumpToLatest(dialogId)
    let captionSent = !caption
    for (const [i, file] of files.entries()) {
      state.uploading++
      render()
      try {
        const upload = await client.upload(file, file.name || 'pasted image.png')
        const type = upload.content_type.startsWith('image/') ? 'image' : 'file'
        client.sendAttachment(dialogId, upload.id, type, i === 0 ? caption : '')
        if (i === 0) captionSent = true
      } catch (error) {
        state.alert = `Not sent: ${describe(error)}`
      } finally {
        state.uploading--
        render()
      }
    }
    return captionSent
  },
  async toggleBlock(userId: number) {
    const blocked = state.blocked.has(userId)
    await attempt(async () => {
      await (blocked ? client.unblock(userId) : client.block(userId))
      if (blocked) state.blocked.delete(userId)
      else state.blocked.add(userId)
    })
  },
  async search(query: string) {
    const asked = ++searches
    state.search.query = query
    // The hits shown are the last query's: "More results" goes until this one's come.
    state.search.hasMore = false
    if (!query) {
      state.search.results = null
      return render()
    }
    try {
      const page = await client.search(query, { limit: 20 })
      if (asked === searches) state.search = { query, results: page.messages, hasMore: page.has_more }
    } catch (error) {
      if (asked === searches) state.alert = describe(error)
    }
    render()
  },
  /** The page of hits older than the last one shown, added after it. */
  async moreResults() {
    const asked = searches
    const { query, results } = state.search
    const last = results?.at(-1)
    if (!last) return
    try {
      const page = await client.search(query, { limit: 20, beforeId: last.id })
      // Another search meanwhile, or this page already added (pressed twice): it does not follow what is shown.
      if (asked !== searches || state.search.results?.at(-1) !== last) return
      state.search = { query, results: [...state.search.results, ...page.messages], hasMore: page.has_more }
    } catch (error) {
      if (asked === searches) state.alert = describe(error)
    }
    render()
  },
  async openResult(message: Message) {
    ++searches
    state.search = { query: '', results: null, hasMore: false }
    // The chat's newest page may be drawn for a moment before the window around the hit replaces it:
    // nothing is marked read until what stays on screen is known.
    opening = message.dialog_id
    try {
      await reachHit(message)
    } finally {
      if (opening === message.dialog_id) opening = null
    }
    render()
  },
  async enablePush() {
    state.push = 'busy'
    render()
    try {
      state.push = (await subscribe(client, true)) ? 'on' : 'available'
    } catch (error) {
      state.push = 'available'
      state.alert = `Notifications could not be turned on: ${error instanceof Error ? error.message : String(error)}`
    }
    // Refused: the browser never asks again, so the button could do nothing more; the user is told where to allow them.
    if (state.push === 'available' && Notification.permission === 'denied') {
      state.push = 'unsupported'
      state.alert = 'Notifications are blocked for this site in the browser’s settings. Allow them there, then reload.'
    }
    render()
  },
  dismissAlert() {
    state.alert = null
    render()
  },
  typing: (dialogId: number) => client.typing(dialogId),
  retry: (clientMsgId: string) => void client.retry(clientMsgId),
  attachmentUrl: (attachment: Attachment) => client.attachmentUrl(attachment),
  back() {
    reopen = null
    state.openId = null
    sessionStorage.removeItem(OPEN_KEY)
    render()
  },
}

let searches = 0
/** The chat a search hit is being opened in (see openResult): not marked read meanwhile. */
let opening: number | null = null
/** Chats whose next page after a window of history is being fetched (scrolling asks again and again). */
const loadingNewer = new Set<number>()
/** How far back (in messages) a search hit is reached by loading the pages in between: three at most. */
const NEAR_HIT = 300

/** Opens the hit's chat with the hit loaded and focused (see openResult). */
async function reachHit(message: Message): Promise<void> {
  await actions.open(message.dialog_id, message)
  const chat = state.chats.get(message.dialog_id)
  if (!chat?.loaded || state.openId !== message.dialog_id) return
  const shown = () => chat.messages.has(message.id) && isShown(chat, message.id)
  // A hit a few pages older than the history loaded: those pages are loaded. Farther back (or beyond
  // the gap after a window shown): a window of history around it instead, not everything since.
  if (!shown()) {
    const oldest = Math.min(...[...chat.messages.values()].map((m) => m.seq))
    if (message.seq < oldest && oldest - message.seq <= NEAR_HIT) {
      while (!chat.messages.has(message.id) && chat.hasMore)
        if (!(await actions.loadOlder(message.dialog_id, 100)) || state.openId !== message.dialog_id) return
    } else if (!(await showAround(chat, message)) || state.openId !== message.dialog_id) return
  }
  if (!shown()) return
  state.focus = { dialogId: message.dialog_id, messageId: message.id }
}

/**
 * Shows a window of history around a message: the page up to it and the page after it. Newer messages
 * loaded are kept, not shown until the gap up to them closes; older ones are let go.
 */
async function showAround(chat: Chat, hit: Message): Promise<boolean> {
  const dialogId = chat.dialog.id
  try {
    // before_id is exclusive: the next id takes in the hit (within a dialog, ids grow with seq).
    const [upTo, after] = await Promise.all([
      client.history(dialogId, { limit: 50, before_id: hit.id + 1 }),
      client.history(dialogId, { limit: 50, after_id: hit.id }),
    ])
    const window = [...upTo.messages, ...after.messages]
    replaceLoaded(chat, window)
    chat.hasMore = upTo.has_more
    chat.gapAfter = after.has_more ? (window.at(-1)?.id ?? hit.id) : null
    return true
  } catch (error) {
    state.alert = describe(error)
    render()
    return false
  }
}

/** The chat's loaded history becomes these (ascending) messages, and those newer already loaded. */
function replaceLoaded(chat: Chat, messages: Message[]): void {
  const last = messages.at(-1)?.id ?? 0
  const newer = [...chat.messages].filter(([id]) => id > last)
  chat.messages = new Map([...messages.map((m) => [m.id, m] as const), ...newer])
}

/** Whether a text is within the server's bound; if not, says so (the text stays where it was written). */
function fits(text: string): boolean {
  if (!textTooLong(text)) return true
  state.alert = `Too long to send: a message holds at most ${MAX_TEXT_CHARS} characters. Shorten it, or split it in two.`
  render()
  return false
}

/** Runs a call of the client; a failure is shown in words (role="alert"). */
async function attempt(call: () => Promise<unknown>): Promise<void> {
  try {
    await call()
    state.alert = null
  } catch (error) {
    state.alert = describe(error)
  }
  render()
}

async function authenticate(attempt: () => Promise<Session>) {
  state.busy = true
  state.alert = null
  render()
  try {
    await attempt()
  } catch (error) {
    state.alert = describe(error)
  } finally {
    state.busy = false
    render()
  }
}

const auth = authView(actions)
const sidebar = sidebarView(actions)
const conversation = conversationView(actions)
const shell = h('div', { class: 'shell' }, sidebar.status, sidebar.alert, sidebar.element, conversation.element)

/** Brings the page up to date with the state, at most once per frame. */
function render(): void {
  if (scheduled) return
  scheduled = true
  requestAnimationFrame(() => {
    scheduled = false
    draw()
  })
}

function draw(): void {
  const signedIn = state.session !== null
  const screen = signedIn ? shell : auth.element
  if (root.firstElementChild !== screen) {
    root.replaceChildren(screen)
    if (!signedIn) auth.shown()
  }
  if (!signedIn) return auth.update(state)
  shell.dataset.view = state.openId === null ? 'list' : 'chat'
  sidebar.update(state)
  conversation.update(state)
  markRead()
}

/** A chat open in front of the user has its messages read. */
function markRead(): void {
  const chat = state.openId === null ? undefined : state.chats.get(state.openId)
  if (!chat || !visible() || !chat.loaded || opening === chat.dialog.id) return
  const me = state.session?.user.id
  let latest = 0
  for (const message of chat.messages.values())
    if (message.sender_id !== me && message.id > latest && isShown(chat, message.id)) latest = message.id
  const { dialog } = chat
  if (latest <= dialog.last_read_message_id && dialog.unread_count === 0) return
  if (latest > dialog.last_read_message_id) {
    const before = dialog.last_read_message_id
    dialog.last_read_message_id = latest
    client.markRead(dialog.id, latest).catch(() => {
      // Offline: the catch-up after the reconnect brings the server's watermark, and this runs again.
      if (dialog.last_read_message_id === latest) dialog.last_read_message_id = before
    })
  }
  // With a gap after a window of history, newer messages are neither shown nor read: the count stays.
  if (chat.gapAfter === null) dialog.unread_count = 0
  render()
}

function start(session: Session | null): void {
  // Everything stored, other tabs' messages too: one written in a tab closed since is sent from here.
  const outbox = session ? loadOutbox(session) : []
  held = new Set(outbox.map((m) => m.client_msg_id))
  client = new ChatClient({ baseUrl: '', session, onSession: saveSession, loadSession, outbox })
  state = initialState(session)
  connectStore(client, state, render, visible)
  for (const pending of client.pending()) state.pending.set(pending.client_msg_id, pending)
  // A notification's click opens the app at /?dialog=<id>: that chat, once its dialog is known.
  const asked = new URL(location.href).searchParams.get('dialog')
  if (asked) history.replaceState(null, '', '/')
  reopen = Number(asked) || Number(sessionStorage.getItem(OPEN_KEY)) || null
  client.on('session', ({ session: next }) => {
    const wasSignedIn = state.session !== null
    state.session = next
    if (next && !wasSignedIn) {
      client.connect()
      signedIn(false)
    }
    if (!next && wasSignedIn) {
      // Ended here (log out) or by the server: start over with a clean client and state.
      sessionStorage.removeItem(OPEN_KEY)
      // Nothing this user typed stays on screen for the next one.
      sidebar.reset()
      conversation.reset()
      for (const key of Object.keys(localStorage)) if (key.startsWith('bun-chat.outbox.')) localStorage.removeItem(key)
      const ended = !loggingOut
      loggingOut = false
      start(null)
      if (ended) state.alert = 'Your session has ended. Please log in again.'
    }
    render()
  })
  client.on('dialog', ({ dialog }) => {
    if (reopen === dialog.id && state.openId === null) void actions.open(dialog.id)
  })
  client.on('pending', ({ pending }) => {
    if (pending.state === 'failed') state.alert = `Message not sent: ${describe(pending.error)}`
    saveOutbox()
  })
  client.on('state', ({ state: connection }) => {
    if (connection !== 'live') return
    adoptOutbox()
    // A chat opened while the server was away has no history yet (and so is never marked read): fetched now.
    const open = state.openId === null ? undefined : state.chats.get(state.openId)
    if (open && !open.loaded) void actions.open(open.dialog.id)
  })
  if (session) {
    client.connect()
    signedIn(true)
  }
  render()
}

/**
 * Stores this tab's unacknowledged messages, merged by client_msg_id with what the user's other tabs stored:
 * it keeps theirs and drops only what it held itself and holds no longer.
 */
function saveOutbox(): void {
  if (!state.session) return
  const mine = client.saved()
  for (const m of mine) held.add(m.client_msg_id)
  const all = [...loadOutbox(state.session).filter((m) => !held.has(m.client_msg_id)), ...mine]
  if (all.length) localStorage.setItem(outboxKey(state.session), JSON.stringify(all))
  else localStorage.removeItem(outboxKey(state.session))
}

/**
 * Back live: sends what other tabs stored and this one never held (a tab closed while offline leaves its
 * messages there). A tab still open sends its own too: the server answers a repeated client_msg_id with the
 * original, so each is stored once.
 */
function adoptOutbox(): void {
  if (!state.session) return
  for (const m of loadOutbox(state.session)) {
    if (held.has(m.client_msg_id)) continue
    if (m.attachment) client.sendAttachment(m.dialog_id, m.attachment.attachment_id, m.attachment.type, m.text, m.client_msg_id)
    else client.send(m.dialog_id, m.text, m.client_msg_id)
  }
}

/** After sign-in: whom this user blocks, and push notifications (renewed silently on later starts). */
function signedIn(resumed: boolean): void {
  const mine = client
  mine.blocked().then(
    (users) => {
      if (mine !== client) return
      state.blocked = new Set(users.map((u) => u.id))
      render()
    },
    () => {},
  )
  if (!pushSupported() || Notification.permission === 'denied') return
  state.push = 'available'
  if (!resumed || Notification.permission !== 'granted') return
  subscribe(mine, false).then(
    (on) => {
      if (mine === client && on) state.push = 'on'
      render()
    },
    () => {},
  )
}

/** The service worker: a click on a notification while the app is open switches to that chat. */
if ('serviceWorker' in navigator)
  navigator.serviceWorker.addEventListener('message', (event: MessageEvent) => {
    const data = event.data as { type?: string; dialog_id?: number } | null
    if (data?.type === 'push:open' && typeof data.dialog_id === 'number' && state.session) void actions.open(data.dialog_id)
  })

document.addEventListener('visibilitychange', render)
// An open emoji picker closes on Escape or a click anywhere else.
document.addEventListener('click', (event) => {
  if (state.reacting !== null && !(event.target as Element).closest('.picker, button.react')) actions.pick(null)
})
document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && state.reacting !== null) actions.pick(null)
})
addEventListener('online', () => client.reconnectNow())
/*
 * Offline: the socket may look open for a while yet (until the heartbeat gives up, ~30 s): drop it now, as
 * a heartbeat timeout would, so "Reconnecting…" shows at once and what is written meanwhile waits in the
 * outbox (sent once, with its client_msg_id, when "online" reconnects).
 */
addEventListener('offline', () => {
  if (!state.session || state.connection === 'closed') return
  client.close()
  client.connect()
})
// Another tab signed out: follow it.
addEventListener('storage', (event: StorageEvent) => {
  if (event.key === SESSION_KEY && event.newValue === null && state.session) void client.logout().catch(() => {})
})
start(loadSession())
