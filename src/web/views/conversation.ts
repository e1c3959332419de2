import type { Attachment, Message, PendingMessage } from '../../client'
import { attr, h, keyed, text } from '../dom'
import { dayKey, dayLabel, lastSeen, timeLabel } from '../format'
import { isShown, statusOf, type Chat, type State } from '../store'

export interface ConversationActions {
  /** False when the text was refused as it is (too long): it stays in the composer. */
  send(dialogId: number, text: string): boolean
  /** Ends the edit once saved; a failed one goes on, its text still in the composer. */
  edit(dialogId: number, messageId: number, text: string): void
  startEdit(dialogId: number, messageId: number): void
  cancelEdit(): void
  remove(dialogId: number, messageId: number): void
  /** Opens (or with null closes) a message's emoji picker. */
  pick(messageId: number | null): void
  /** Adds the own reaction, or takes it back when it is there. */
  toggleReaction(dialogId: number, messageId: number, emoji: string): void
  /** Resolves false when the caption did not go out (refused, or the upload failed). */
  attach(dialogId: number, files: File[], caption: string): Promise<boolean>
  toggleBlock(userId: number): void
  /** `<img src>` and download links: the address with the access token in it. */
  attachmentUrl(attachment: Attachment): string
  typing(dialogId: number): void
  loadOlder(dialogId: number): void
  /** The next page after a window of history shown (a search hit far back). */
  loadNewer(dialogId: number): void
  /** From a window of history back to the newest messages. */
  jumpToLatest(dialogId: number): void
  retry(clientMsgId: string): void
  back(): void
}

/** A row of the log: a day separator, a stored message, or an own message not yet acknowledged. */
type Row =
  | { kind: 'day'; key: string; label: string }
  | { kind: 'message'; key: string; message: Message }
  | { kind: 'pending'; key: string; pending: PendingMessage }

const TICKS = { sent: '✓', delivered: '✓✓', read: '✓✓', pending: '🕓', failed: '!' } as const
const WORDS = { sent: 'Sent', delivered: 'Delivered', read: 'Read', pending: 'Sending', failed: 'Not sent' } as const
/** The picker's choice: the reactions people use most. */
const EMOJI = ['👍', '❤️', '😂', '😮', '😢', '🎉'] as const

const size = (bytes: number) =>
  bytes < 1024 ? `${bytes} B` : bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(0)} KB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`

/** The open chat: who, the log of messages with day separators and ticks, typing, and the composer. */
export function conversationView(actions: ConversationActions) {
  const title = h('h2', { class: 'peer' })
  const subtitle = h('p', { class: 'presence' })
  const older = h('button', { type: 'button', class: 'link older', hidden: true }, 'Load older messages')
  const log = h('div', { role: 'log', 'aria-label': 'Messages', class: 'log', tabindex: '0' })
  const latest = h('button', { type: 'button', class: 'jump', hidden: true }, 'Jump to latest')
  const input = h('textarea', { id: 'composer', dir: 'auto', rows: 1, placeholder: 'Write a message', autocomplete: 'off', enterkeyhint: 'send' })
  const picker = h('input', { type: 'file', multiple: true, hidden: true, tabindex: '-1' })
  const attach = h('button', { type: 'button', class: 'icon', 'aria-label': 'Attach', title: 'Attach a photo or file' }, '+')
  const editing = h(
    'div',
    { class: 'editing', hidden: true },
    h('span', {}, 'Editing message'),
    h('button', { type: 'button', class: 'link', onclick: () => actions.cancelEdit() }, 'Cancel edit'),
  )
  const uploading = h('p', { class: 'uploading muted', hidden: true }, 'Uploading…')
  const form = h(
    'form',
    { class: 'composer' },
    h('label', { for: 'composer', class: 'sr-only' }, 'Message'),
    attach,
    picker,
    input,
    h('button', { type: 'submit', class: 'primary' }, 'Send'),
  )
  const block = h('button', { type: 'button', class: 'link block' }, 'Block')
  const empty = h('div', { class: 'placeholder' }, h('p', {}, 'Pick a chat, or start one with “Find user”.'))
  const pane = h(
    'section',
    { class: 'conversation-pane', 'aria-label': 'Conversation' },
    h(
      'header',
      { class: 'bar' },
      h('button', { type: 'button', class: 'back', 'aria-label': 'Back to chats', onclick: () => actions.back() }, '‹'),
      h('div', { class: 'title' }, title, subtitle),
      block,
    ),
    older,
    log,
    latest,
    editing,
    uploading,
    form,
  )
  const element = h('div', { class: 'conversation' }, empty, pane)
  let openId: number | null = null
  let editingId: number | null = null
  /** What is written and not sent, per chat (an edit's text is not a draft: the draft waits under it). */
  const drafts = new Map<number, string>()
  /**
   * The user has just sent, or asked for the latest: the next update showing the present (no window of
   * history) shows the newest message, wherever the log was scrolled.
   */
  let toNewest = false
  /** The log shows a window of history, with a gap after it: it is never pinned to its bottom, and scrolling there loads on. */
  let windowed = false
  /** The log is scrolled to its bottom (the newest message): a picture loading in it keeps it there. */
  let pinned = true
  /** Where the app last scrolled the log to its bottom: the scroll event that follows is the app's, not the user's. */
  let pinnedAt = -1
  /** The last search hit brought into view (state.focus), and the message highlighted for it a moment. */
  let focused: State['focus'] = null
  let foundId: number | null = null
  let foundTimer: ReturnType<typeof setTimeout> | undefined
  const nearBottom = () => log.scrollHeight - log.scrollTop - log.clientHeight < 48
  const toBottom = () => {
    log.scrollTop = log.scrollHeight
    pinnedAt = log.scrollTop
  }
  // (A picture may have grown the log between the app's scroll and its event: that is not the user leaving the bottom.)
  log.addEventListener('scroll', () => {
    if (log.scrollTop !== pinnedAt) pinned = !windowed && nearBottom()
    // Within a screen of a window's end: the page after it, before the reader gets there.
    if (windowed && openId !== null && log.scrollHeight - log.scrollTop - log.clientHeight < log.clientHeight) actions.loadNewer(openId)
  })
  /** A picture has loaded and grown its row: the log stays at the bottom if it was there. */
  const imageLoaded = () => {
    if (pinned) toBottom()
  }

  /** Keeps the composer's text as the open chat's draft (not while it holds an edit). */
  const keepDraft = () => {
    if (openId === null || editingId !== null) return
    if (input.value) drafts.set(openId, input.value)
    else drafts.delete(openId)
  }
  /** A caption that did not go out: back in the composer if that chat is open and it is empty, else its draft. */
  const giveBack = (dialogId: number, caption: string) => {
    if (!caption) return
    if (openId === dialogId && editingId === null) {
      if (input.value.trim()) return
      input.value = caption
      grow()
    } else if (!drafts.get(dialogId)) drafts.set(dialogId, caption)
  }
  /** Sends files with the composer's text as their caption; an edit in progress is dropped for them. */
  const attachFiles = (files: File[]) => {
    if (openId === null) return
    const dialogId = openId
    const caption = input.value.trim()
    if (editingId !== null) {
      editingId = null
      actions.cancelEdit()
    }
    input.value = ''
    drafts.delete(dialogId)
    grow()
    toNewest = true
    void actions.attach(dialogId, files, caption).then((sent) => sent || giveBack(dialogId, caption))
  }

  attach.addEventListener('click', () => picker.click())
  picker.addEventListener('change', () => {
    const files = Array.from(picker.files ?? [])
    picker.value = ''
    if (files.length) attachFiles(files)
  })
  // A pasted image (a screenshot) is sent as a photo; pasted text stays text.
  input.addEventListener('paste', (event) => {
    const files = Array.from(event.clipboardData?.files ?? []).filter((file) => file.type.startsWith('image/'))
    if (openId === null || !files.length) return
    event.preventDefault()
    attachFiles(files)
  })

  form.addEventListener('submit', (event) => {
    event.preventDefault()
    const value = input.value
    // The caret stays in the composer, for the next message (a click on Send took it away).
    input.focus()
    if (openId === null || !value.trim()) return
    // An edit keeps its text until the server has it (then the draft comes back, see update).
    if (editingId !== null) return actions.edit(openId, editingId, value)
    toNewest = true
    if (!actions.send(openId, value)) return void (toNewest = false)
    input.value = ''
    drafts.delete(openId)
    grow()
  })
  input.addEventListener('keydown', (event) => {
    // Enter sends; Shift+Enter is a new line; an IME composing text keeps its Enter.
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault()
      form.requestSubmit()
    }
    if (event.key === 'Escape' && editingId !== null) {
      event.preventDefault()
      actions.cancelEdit()
    }
  })
  input.addEventListener('input', () => {
    grow()
    if (openId !== null && input.value.trim() && editingId === null) actions.typing(openId)
  })
  older.addEventListener('click', () => openId !== null && actions.loadOlder(openId))
  latest.addEventListener('click', () => {
    if (openId === null) return
    toNewest = true
    // The button goes once the gap is closed: the keyboard's place goes to the composer, not to the page.
    input.focus()
    actions.jumpToLatest(openId)
  })
  const grow = () => {
    input.style.height = 'auto'
    input.style.height = `${Math.min(input.scrollHeight, 160)}px`
  }

  const createRow = (row: Row): HTMLElement => {
    if (row.kind === 'day') return h('div', { class: 'day', role: 'separator' }, h('span', {}, row.label))
    // tabindex -1: not a Tab stop, but it can take the keyboard's place when its actions go away (see updateRow).
    return h(
      'div',
      { class: 'msg', tabindex: '-1' },
      h('div', { class: 'attachment' }),
      h('p', { class: 'text', dir: 'auto' }),
      h('div', { class: 'reactions' }),
      h(
        'span',
        { class: 'meta' },
        h('span', { class: 'edited' }),
        h('time', {}),
        h('span', { class: 'ticks', 'aria-hidden': 'true' }),
        h('span', { class: 'sr-only word' }),
      ),
      h(
        'div',
        { class: 'actions' },
        h('button', { type: 'button', class: 'link react', 'aria-haspopup': 'true' }, 'React'),
        h('button', { type: 'button', class: 'link edit' }, 'Edit'),
        h('button', { type: 'button', class: 'link delete' }, 'Delete'),
      ),
      h(
        'div',
        { class: 'picker', role: 'group', 'aria-label': 'Reactions to add', hidden: true },
        ...EMOJI.map((emoji) => h('button', { type: 'button', class: 'emoji', 'data-emoji': emoji }, emoji)),
      ),
    )
  }

  /** An image that failed with an access token refreshed since: once more, with the current one. */
  const retryImage = (attachment: Attachment) => (event: Event) => {
    const img = event.currentTarget as HTMLImageElement
    const url = actions.attachmentUrl(attachment)
    if (img.dataset.retried || img.src.endsWith(url)) return
    img.dataset.retried = 'true'
    img.src = url
  }

  /**
   * The image shown inline, or a download link for any other file; made once per attachment. The address
   * carries the access token: after a refresh the link gets the current one, and so does a picture that
   * failed to load (one already shown keeps its src, not to download it again).
   */
  const showAttachment = (slot: HTMLElement, attachment: Attachment | null | undefined, isImage: boolean) => {
    const key = attachment ? String(attachment.id) : ''
    if (slot.dataset.id === key) {
      if (!attachment) return
      const url = actions.attachmentUrl(attachment)
      const link = slot.querySelector('a')
      const img = slot.querySelector('img')
      if (link) attr(link, 'href', url)
      if (img?.complete && !img.naturalWidth) attr(img, 'src', url)
      return
    }
    slot.dataset.id = key
    if (!attachment) return slot.replaceChildren()
    const url = actions.attachmentUrl(attachment)
    slot.replaceChildren(
      isImage
        ? h('a', { href: url, target: '_blank', rel: 'noopener' }, h('img', { src: url, alt: attachment.name, decoding: 'async', onerror: retryImage(attachment), onload: imageLoaded }))
        : h('a', { href: url, download: attachment.name, class: 'file' }, `↓ ${attachment.name}`, h('span', { class: 'muted' }, ` ${size(attachment.size)}`)),
    )
  }

  const updateRow = (state: State, chat: Chat) => (element: HTMLElement, row: Row) => {
    if (row.kind === 'day') return text(element.firstElementChild!, row.label)
    const me = state.session?.user.id
    const message = row.kind === 'message' ? row.message : undefined
    const own = row.kind === 'pending' || message?.sender_id === me
    const status = message ? (own ? statusOf(message, chat.dialog) : undefined) : row.kind === 'pending' ? (row.pending.state === 'failed' ? 'failed' : 'pending') : undefined
    element.className = `msg ${own ? 'own' : 'theirs'}${message && message.id === foundId ? ' found' : ''}`
    attr(element, 'data-id', message ? String(message.id) : null)
    attr(element, 'data-status', status ?? null)
    const deleted = message?.deleted ?? false
    element.classList.toggle('deleted', deleted)
    element.classList.toggle('being-edited', !!message && state.editing?.messageId === message.id)
    const body = deleted ? 'Message deleted' : (message?.text ?? (row.kind === 'pending' ? row.pending.text : ''))
    const textEl = element.querySelector('.text') as HTMLElement
    text(textEl, body)
    textEl.hidden = !body
    const slot = element.querySelector('.attachment') as HTMLElement
    if (row.kind === 'pending' && row.pending.attachment) text(slot, row.pending.attachment.type === 'image' ? 'Sending photo…' : 'Sending file…')
    else showAttachment(slot, message?.attachment, message?.type === 'image')
    text(element.querySelector('.edited')!, message?.edited_at && !deleted ? 'edited' : '')
    // Reactions: one button per emoji with its count; pressed when it includes mine.
    const reactions = element.querySelector('.reactions') as HTMLElement
    const reactButton = element.querySelector('button.react') as HTMLButtonElement
    const list = message && !deleted ? message.reactions : []
    // A chip pressed away (the last reaction of its emoji) hands the keyboard focus to the React button below.
    const chipFocused = reactions.contains(document.activeElement) ? (document.activeElement as HTMLElement) : null
    reactions.hidden = !list.length
    keyed(
      reactions,
      list,
      (r) => r.emoji,
      () => h('button', { type: 'button', class: 'chip' }),
      (chip, r) => {
        text(chip, `${r.emoji} ${r.user_ids.length}`)
        attr(chip, 'aria-pressed', me !== undefined && r.user_ids.includes(me) ? 'true' : 'false')
        chip.onclick = () => actions.toggleReaction(chat.dialog.id, message!.id, r.emoji)
      },
    )
    if (chipFocused && !chipFocused.isConnected) reactButton.focus()
    // A part hidden while it holds the keyboard focus hands it on (else it falls to the page): the picker
    // (an emoji chosen, or Escape) to its React button, then the actions (Delete pressed) to the message.
    const pickerEl = element.querySelector('.picker') as HTMLElement
    const picking = !!message && !deleted && state.reacting === message.id
    if (!picking && pickerEl.contains(document.activeElement)) reactButton.focus()
    pickerEl.hidden = !picking
    const actionsEl = element.querySelector('.actions') as HTMLElement
    if ((!message || deleted) && actionsEl.contains(document.activeElement)) element.focus()
    actionsEl.hidden = !message || deleted
    const editButton = element.querySelector('button.edit') as HTMLButtonElement
    const deleteButton = element.querySelector('button.delete') as HTMLButtonElement
    editButton.hidden = deleteButton.hidden = !own || message?.type !== 'text'
    // Attachments have no text to edit; they can still be deleted.
    if (own && message && message.type !== 'text') deleteButton.hidden = false
    attr(reactButton, 'aria-expanded', picking ? 'true' : 'false')
    if (message) {
      reactButton.onclick = () => actions.pick(picking ? null : message.id)
      editButton.onclick = () => actions.startEdit(chat.dialog.id, message.id)
      deleteButton.onclick = () => actions.remove(chat.dialog.id, message.id)
      for (const button of pickerEl.querySelectorAll<HTMLButtonElement>('button.emoji'))
        button.onclick = () => actions.toggleReaction(chat.dialog.id, message.id, button.dataset.emoji!)
    }
    const at = message?.created_at ?? (row.kind === 'pending' ? row.pending.created_at : '')
    const time = element.querySelector('time')!
    attr(time, 'datetime', at)
    text(time, timeLabel(new Date(at)))
    text(element.querySelector('.ticks')!, status ? TICKS[status] : '')
    text(element.querySelector('.word')!, status ? WORDS[status] : '')
    attr(element.querySelector('.ticks')!, 'title', status ? WORDS[status] : null)
    const retry = element.querySelector('button.retry')
    if (status === 'failed' && row.kind === 'pending' && !retry) {
      const button = h('button', { type: 'button', class: 'link retry' }, 'Retry')
      button.onclick = () => actions.retry(row.pending.client_msg_id)
      element.append(h('span', { class: 'error' }, row.pending.error?.message ?? 'not sent'), button)
    } else if (status !== 'failed' && retry) {
      retry.remove()
      element.querySelector('.error')?.remove()
    }
  }

  return {
    element,
    /** Signed out: drafts and the composer are emptied, nothing of this user is left for the next. */
    reset() {
      drafts.clear()
      input.value = ''
      openId = editingId = null
      toNewest = windowed = false
      pinned = true
      grow()
    },
    update(state: State) {
      const chat = state.openId === null ? undefined : state.chats.get(state.openId)
      empty.hidden = !!chat
      pane.hidden = !chat
      if (!chat) {
        keepDraft()
        openId = null
        return
      }
      const switched = openId !== chat.dialog.id
      // Measured before anything changes (the "Load older messages" button going away moves the log up):
      // the first message the reader sees, and where it is on screen, to keep it there below.
      // (pinned: at the bottom, and a picture that has grown the log since, before its load event, does not change that.)
      // A window of history is not followed to its bottom: below it is a gap, not the newest message.
      const gap = chat.gapAfter !== null
      const atBottom = switched || (!gap && (toNewest || (!windowed && (pinned || nearBottom()))))
      const logTop = log.getBoundingClientRect().top
      const anchor = atBottom ? undefined : [...log.querySelectorAll<HTMLElement>('.msg')].find((m) => m.getBoundingClientRect().bottom > logTop)
      const anchorTop = anchor?.getBoundingClientRect().top ?? 0
      if (switched) {
        // Each chat has its own draft: what was written to one person never moves to another.
        keepDraft()
        editingId = null
        input.value = drafts.get(chat.dialog.id) ?? ''
        grow()
      }
      openId = chat.dialog.id
      const { peer } = chat.dialog
      text(title, peer.username)
      // A long name is cut with an ellipsis (style.css): the whole of it on hover.
      attr(title, 'title', peer.username)
      text(subtitle, chat.peerTyping ? 'typing…' : peer.online ? 'online' : lastSeen(peer.last_seen_at))
      attr(subtitle, 'data-typing', chat.peerTyping)
      // The oldest page loaded with the keyboard on "Load older messages": the focus goes to the first message (below).
      const olderLeaving = !chat.hasMore && document.activeElement === older
      older.hidden = !chat.hasMore
      latest.hidden = !gap
      const blocked = state.blocked.has(peer.id)
      text(block, blocked ? 'Unblock' : 'Block')
      block.onclick = () => actions.toggleBlock(peer.id)
      uploading.hidden = state.uploading === 0
      attr(input, 'placeholder', blocked ? 'You blocked this person' : 'Write a message')

      // Editing: the composer holds the message's text until it is sent or the edit is cancelled.
      const target = state.editing?.dialogId === chat.dialog.id ? chat.messages.get(state.editing.messageId) : undefined
      const nextEditing = target && !target.deleted ? target.id : null
      if (nextEditing !== editingId) {
        const was = editingId
        // The draft waits under the edit, and comes back when it is sent or cancelled.
        if (was === null) keepDraft()
        editingId = nextEditing
        if (target && nextEditing !== null) {
          input.value = target.text
          input.focus()
          input.setSelectionRange(input.value.length, input.value.length)
        } else if (was !== null) input.value = drafts.get(chat.dialog.id) ?? ''
        grow()
      }
      // "Cancel edit" pressed (or the edit ended) with the keyboard on it: back to the composer, not to the page.
      if (editingId === null && editing.contains(document.activeElement)) input.focus()
      editing.hidden = editingId === null

      keyed(log, rows(state, chat), (row) => row.key, createRow, updateRow(state, chat))
      if (!gap) toNewest = false
      windowed = gap
      if (atBottom) toBottom()
      // Messages were put above or below, or the log moved: keep what the reader was looking at in place.
      else if (anchor?.isConnected) log.scrollTop += anchor.getBoundingClientRect().top - anchorTop
      pinned = !gap && (atBottom || nearBottom())
      if (olderLeaving) (log.querySelector<HTMLElement>('.msg') ?? log).focus({ preventScroll: true })
      // A chat switched to: the composer (before the hit below, which takes the focus when one is opened).
      if (switched && matchMedia('(min-width: 720px)').matches) input.focus()
      // A search hit opened: it is scrolled to the middle of the log, highlighted a moment, and given the keyboard focus
      // (the result pressed is gone with the results).
      const focus = state.focus
      if (focus && focus !== focused && focus.dialogId === chat.dialog.id) {
        const hit = log.querySelector<HTMLElement>(`.msg[data-id="${focus.messageId}"]`)
        if (hit) {
          focused = focus
          const box = hit.getBoundingClientRect()
          const logBox = log.getBoundingClientRect()
          log.scrollTop += box.top - logBox.top - Math.max(0, (log.clientHeight - box.height) / 2)
          pinned = !gap && nearBottom()
          for (const old of log.querySelectorAll('.msg.found')) old.classList.remove('found')
          foundId = focus.messageId
          hit.classList.add('found')
          hit.focus({ preventScroll: true })
          clearTimeout(foundTimer)
          foundTimer = setTimeout(() => {
            foundId = null
            log.querySelector('.msg.found')?.classList.remove('found')
          }, 2000)
        }
      }
    },
  }
}

/** The rows of the log; while a window of history is shown, nothing newer than it (not even what is being sent). */
function rows(state: State, chat: Chat): Row[] {
  const messages = [...chat.messages.values()].filter((m) => isShown(chat, m.id)).sort((a, b) => a.seq - b.seq)
  const me = state.session?.user.id
  const acked = new Set(messages.filter((m) => m.sender_id === me).map((m) => m.client_msg_id))
  const pending = [...state.pending.values()].filter((p) => p.dialog_id === chat.dialog.id && chat.gapAfter === null && !acked.has(p.client_msg_id))
  const out: Row[] = []
  let day = ''
  const separate = (iso: string) => {
    const date = new Date(iso)
    const key = dayKey(date)
    if (key !== day) out.push({ kind: 'day', key: `day:${(day = key)}`, label: dayLabel(date) })
  }
  for (const message of messages) {
    separate(message.created_at)
    out.push({ kind: 'message', key: `m:${message.client_msg_id}:${message.sender_id}`, message })
  }
  for (const p of pending) {
    separate(p.created_at)
    out.push({ kind: 'pending', key: `m:${p.client_msg_id}:${me}`, pending: p })
  }
  return out
}
