import type { Message, PendingMessage } from '../../client'
import { attr, h, keyed, text } from '../dom'
import { dayKey, dayLabel, lastSeen, timeLabel } from '../format'
import { statusOf, type Chat, type State } from '../store'

export interface ConversationActions {
  send(dialogId: number, text: string): void
  typing(dialogId: number): void
  loadOlder(dialogId: number): void
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

/** The open chat: who, the log of messages with day separators and ticks, typing, and the composer. */
export function conversationView(actions: ConversationActions) {
  const title = h('h2', { class: 'peer' })
  const subtitle = h('p', { class: 'presence' })
  const older = h('button', { type: 'button', class: 'link older', hidden: true }, 'Load older messages')
  const log = h('div', { role: 'log', 'aria-label': 'Messages', class: 'log', tabindex: '0' })
  const input = h('textarea', { id: 'composer', rows: 1, placeholder: 'Write a message', autocomplete: 'off', enterkeyhint: 'send' })
  const form = h(
    'form',
    { class: 'composer' },
    h('label', { for: 'composer', class: 'sr-only' }, 'Message'),
    input,
    h('button', { type: 'submit', class: 'primary' }, 'Send'),
  )
  const empty = h('div', { class: 'placeholder' }, h('p', {}, 'Pick a chat, or start one with “Find user”.'))
  const pane = h(
    'section',
    { class: 'conversation-pane', 'aria-label': 'Conversation' },
    h(
      'header',
      { class: 'bar' },
      h('button', { type: 'button', class: 'back', 'aria-label': 'Back to chats', onclick: () => actions.back() }, '‹'),
      h('div', { class: 'title' }, title, subtitle),
    ),
    older,
    log,
    form,
  )
  const element = h('div', { class: 'conversation' }, empty, pane)
  let openId: number | null = null

  form.addEventListener('submit', (event) => {
    event.preventDefault()
    const value = input.value
    if (openId === null || !value.trim()) return
    actions.send(openId, value)
    input.value = ''
    grow()
  })
  input.addEventListener('keydown', (event) => {
    // Enter sends; Shift+Enter is a new line; an IME composing text keeps its Enter.
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault()
      form.requestSubmit()
    }
  })
  input.addEventListener('input', () => {
    grow()
    if (openId !== null && input.value.trim()) actions.typing(openId)
  })
  older.addEventListener('click', () => openId !== null && actions.loadOlder(openId))
  const grow = () => {
    input.style.height = 'auto'
    input.style.height = `${Math.min(input.scrollHeight, 160)}px`
  }

  const createRow = (row: Row): HTMLElement => {
    if (row.kind === 'day') return h('div', { class: 'day', role: 'separator' }, h('span', {}, row.label))
    return h(
      'div',
      { class: 'msg' },
      h('p', { class: 'text' }),
      h('span', { class: 'meta' }, h('time', {}), h('span', { class: 'ticks', 'aria-hidden': 'true' }), h('span', { class: 'sr-only word' })),
    )
  }

  const updateRow = (state: State, chat: Chat) => (element: HTMLElement, row: Row) => {
    if (row.kind === 'day') return text(element.firstElementChild!, row.label)
    const me = state.session?.user.id
    const message = row.kind === 'message' ? row.message : undefined
    const own = row.kind === 'pending' || message?.sender_id === me
    const status = message ? (own ? statusOf(message, chat.dialog) : undefined) : row.kind === 'pending' ? (row.pending.state === 'failed' ? 'failed' : 'pending') : undefined
    element.className = `msg ${own ? 'own' : 'theirs'}`
    attr(element, 'data-status', status ?? null)
    text(element.querySelector('.text')!, message?.text ?? (row.kind === 'pending' ? row.pending.text : ''))
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
    update(state: State) {
      const chat = state.openId === null ? undefined : state.chats.get(state.openId)
      empty.hidden = !!chat
      pane.hidden = !chat
      if (!chat) {
        openId = null
        return
      }
      const switched = openId !== chat.dialog.id
      openId = chat.dialog.id
      const { peer } = chat.dialog
      text(title, peer.username)
      text(subtitle, chat.peerTyping ? 'typing…' : peer.online ? 'online' : lastSeen(peer.last_seen_at))
      attr(subtitle, 'data-typing', chat.peerTyping)
      older.hidden = !chat.hasMore

      const atBottom = switched || log.scrollHeight - log.scrollTop - log.clientHeight < 48
      const firstBefore = log.querySelector('.msg') as HTMLElement | null
      const offsetBefore = firstBefore?.offsetTop ?? 0
      const scrollBefore = log.scrollTop
      keyed(log, rows(state, chat), (row) => row.key, createRow, updateRow(state, chat))
      if (atBottom) log.scrollTop = log.scrollHeight
      // Older messages were put above: keep what the reader was looking at in place.
      else if (firstBefore?.isConnected) log.scrollTop = scrollBefore + firstBefore.offsetTop - offsetBefore
      if (switched && matchMedia('(min-width: 720px)').matches) input.focus()
    },
  }
}

function rows(state: State, chat: Chat): Row[] {
  const messages = [...chat.messages.values()].sort((a, b) => a.seq - b.seq)
  const me = state.session?.user.id
  const acked = new Set(messages.filter((m) => m.sender_id === me).map((m) => m.client_msg_id))
  const pending = [...state.pending.values()].filter((p) => p.dialog_id === chat.dialog.id && !acked.has(p.client_msg_id))
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
