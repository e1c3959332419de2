import { attr, h, keyed, text } from '../dom'
import { shortWhen } from '../format'
import { chatList, type Chat, type State } from '../store'

export interface SidebarActions {
  startChat(username: string): void
  open(dialogId: number): void
  logout(): void
}

/** Who is signed in, the connection's status, "Find user", and the chat list (newest activity first). */
export function sidebarView(actions: SidebarActions) {
  const me = h('strong', { class: 'me' })
  const status = h('p', { role: 'status', class: 'status' })
  const find = h('input', { id: 'find-user', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false', placeholder: 'exact username', required: true })
  const alert = h('p', { role: 'alert', class: 'alert', hidden: true })
  const list = h('ul', { 'aria-label': 'Chats', class: 'chats' })
  const empty = h('p', { class: 'muted empty' }, 'No chats yet. Find someone by their username to start one.')
  const element = h(
    'aside',
    { class: 'sidebar' },
    h(
      'header',
      { class: 'bar' },
      h('span', { class: 'avatar small', 'aria-hidden': 'true' }),
      me,
      h('button', { type: 'button', class: 'link', onclick: () => actions.logout() }, 'Log out'),
    ),
    h(
      'form',
      {
        class: 'find',
        onsubmit: (event: Event) => {
          event.preventDefault()
          actions.startChat(find.value.trim())
        },
      },
      h('label', { for: 'find-user', class: 'sr-only' }, 'Find user'),
      find,
      h('button', { type: 'submit' }, 'Start chat'),
    ),
    alert,
    list,
    empty,
  )

  const createItem = () => {
    const button = h('button', { type: 'button', class: 'chat' })
    button.append(
      h('span', { class: 'avatar', 'aria-hidden': 'true' }),
      h('span', { class: 'who' }, h('span', {}, h('span', { class: 'name' }), h('span', { class: 'sr-only presence-word' })), h('span', { class: 'preview' })),
      h('span', { class: 'side' }, h('time', { class: 'when' }), h('span', { class: 'badge' })),
    )
    return h('li', {}, button)
  }

  const updateItem = (state: State) => (li: HTMLElement, chat: Chat) => {
    const { dialog } = chat
    const button = li.firstElementChild as HTMLButtonElement
    button.onclick = () => actions.open(dialog.id)
    attr(button, 'aria-current', state.openId === dialog.id ? 'true' : null)
    const avatar = button.querySelector('.avatar')!
    text(avatar, dialog.peer.username.slice(0, 1).toUpperCase())
    attr(avatar, 'data-online', dialog.peer.online)
    text(button.querySelector('.name')!, dialog.peer.username)
    text(button.querySelector('.presence-word')!, dialog.peer.online ? ' (online)' : '')
    const last = dialog.last_message
    const mine = last && last.sender_id === state.session?.user.id
    text(button.querySelector('.preview')!, chat.peerTyping ? 'typing…' : last ? `${mine ? 'You: ' : ''}${last.text}` : dialog.peer.online ? 'online' : '')
    const when = button.querySelector('time')!
    const at = last?.created_at ?? dialog.created_at
    attr(when, 'datetime', at)
    text(when, shortWhen(new Date(at)))
    const badge = button.querySelector('.badge') as HTMLElement
    badge.hidden = dialog.unread_count === 0
    text(badge, dialog.unread_count ? String(dialog.unread_count) : '')
    attr(badge, 'aria-label', dialog.unread_count ? `${dialog.unread_count} unread` : null)
  }

  return {
    element,
    /** Shown over either pane (on a phone only one is visible). */
    status,
    update(state: State) {
      text(me, state.session?.user.username ?? '')
      text(element.querySelector('.avatar.small')!, (state.session?.user.username ?? '?').slice(0, 1).toUpperCase())
      text(status, statusText(state))
      alert.hidden = !state.alert
      text(alert, state.alert ?? '')
      const chats = chatList(state)
      keyed(list, chats, (chat) => String(chat.dialog.id), createItem, updateItem(state))
      empty.hidden = chats.length > 0 || state.connection !== 'live'
    },
    clearFind: () => (find.value = ''),
  }
}

function statusText(state: State): string {
  switch (state.connection) {
    case 'live':
    case 'closed':
      return ''
    case 'catching_up':
      return 'Updating…'
    default:
      return state.wasLive ? 'Reconnecting…' : 'Connecting…'
  }
}
