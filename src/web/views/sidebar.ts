import { attr, h, keyed, text } from '../dom'
import type { Message } from '../../client'
import { shortWhen } from '../format'
import { chatList, summary, type Chat, type State } from '../store'

export interface SidebarActions {
  startChat(username: string): void
  open(dialogId: number): void
  logout(): void
  search(query: string): void
  openResult(message: Message): void
  /** The next page of older hits, after those shown. */
  moreResults(): void
  enablePush(): void
  dismissAlert(): void
}

/** Who is signed in, the connection's status, "Find user", and the chat list (newest activity first). */
export function sidebarView(actions: SidebarActions) {
  const me = h('strong', { class: 'me' })
  const status = h('p', { role: 'status', class: 'status' })
  const find = h('input', { id: 'find-user', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false', placeholder: 'exact username', required: true })
  const alertText = h('span', {})
  const alert = h(
    'div',
    { role: 'alert', class: 'alert toast', hidden: true },
    alertText,
    h('button', { type: 'button', class: 'link', 'aria-label': 'Dismiss', onclick: () => actions.dismissAlert() }, '✕'),
  )
  const notify = h('button', { type: 'button', class: 'link notify', hidden: true, onclick: () => actions.enablePush() }, 'Notify me')
  const query = h('input', { id: 'search', type: 'text', autocomplete: 'off', placeholder: 'Search messages', enterkeyhint: 'search' })
  const results = h('ul', { 'aria-label': 'Search results', class: 'results', hidden: true })
  const more = h('button', { type: 'button', class: 'link more', hidden: true, onclick: () => actions.moreResults() }, 'More results')
  const noResults = h('p', { class: 'muted empty', hidden: true }, 'No messages found.')
  let searchTimer: ReturnType<typeof setTimeout> | undefined
  /*
   * The search box is shown on demand: its name, "Search messages", contains "Message", so while shown
   * a non-exact lookup of the composer ("Message") finds two textboxes.
   */
  const toggle = h('button', { type: 'button', class: 'link', 'aria-expanded': 'false', 'aria-controls': 'search-form' }, 'Search')
  const closeSearch = () => {
    clearTimeout(searchTimer)
    query.value = ''
    actions.search('')
  }
  query.addEventListener('input', () => {
    clearTimeout(searchTimer)
    searchTimer = setTimeout(() => actions.search(query.value.trim()), 250)
  })
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
    h('div', { class: 'tools' }, toggle, notify),
    h(
      'form',
      {
        class: 'find search',
        id: 'search-form',
        role: 'search',
        hidden: true,
        onsubmit: (event: Event) => {
          event.preventDefault()
          clearTimeout(searchTimer)
          actions.search(query.value.trim())
        },
      },
      h('label', { for: 'search', class: 'sr-only' }, 'Search messages'),
      query,
    ),
    results,
    more,
    noResults,
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
    list,
    empty,
  )

  const searchForm = element.querySelector('#search-form') as HTMLFormElement
  toggle.addEventListener('click', () => {
    const open = searchForm.hidden
    searchForm.hidden = !open
    attr(toggle, 'aria-expanded', open)
    if (open) query.focus()
    else closeSearch()
  })
  query.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape') return
    closeSearch()
    searchForm.hidden = true
    attr(toggle, 'aria-expanded', false)
    toggle.focus()
  })

  const createItem = () => {
    const button = h('button', { type: 'button', class: 'chat' })
    button.append(
      h('span', { class: 'avatar', 'aria-hidden': 'true' }),
      h('span', { class: 'who' }, h('span', { class: 'line' }, h('span', { class: 'name' }), h('span', { class: 'sr-only presence-word' })), h('span', { class: 'preview', dir: 'auto' })),
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
    // A long name is cut with an ellipsis (style.css): the whole of it on hover.
    attr(button.querySelector('.name')!, 'title', dialog.peer.username)
    text(button.querySelector('.presence-word')!, dialog.peer.online ? ' (online)' : '')
    const last = dialog.last_message
    const mine = last && last.sender_id === state.session?.user.id
    text(button.querySelector('.preview')!, chat.peerTyping ? 'typing…' : last ? `${mine ? 'You: ' : ''}${summary(last)}` : dialog.peer.online ? 'online' : '')
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
    alert,
    update(state: State) {
      text(me, state.session?.user.username ?? '')
      text(element.querySelector('.avatar.small')!, (state.session?.user.username ?? '?').slice(0, 1).toUpperCase())
      text(status, statusText(state))
      alert.hidden = !state.alert
      text(alertText, state.alert ?? '')
      notify.hidden = state.push === 'unsupported' || state.push === 'on'
      attr(notify, 'disabled', state.push === 'busy')
      const found = state.search.results
      // The last page added with the keyboard on "More results": the focus goes on to the first hit added, not to the page.
      const firstAdded = !state.search.hasMore && document.activeElement === more ? results.children.length : null
      more.hidden = !found?.length || !state.search.hasMore
      results.hidden = !found?.length
      noResults.hidden = !found || found.length > 0
      keyed(
        results,
        found ?? [],
        (m) => String(m.id),
        () => h('li', {}, h('button', { type: 'button', class: 'chat result' }, h('span', { class: 'who' }, h('span', { class: 'name' }), h('span', { class: 'preview', dir: 'auto' })), h('time', { class: 'when' }))),
        (li, message) => {
          const button = li.firstElementChild as HTMLButtonElement
          button.onclick = () => actions.openResult(message)
          const chat = state.chats.get(message.dialog_id)
          const sender = message.sender_id === state.session?.user.id ? 'You' : (chat?.dialog.peer.username ?? '')
          text(button.querySelector('.name')!, chat ? `${chat.dialog.peer.username}` : 'Chat')
          text(button.querySelector('.preview')!, `${sender}: ${summary(message)}`)
          const when = button.querySelector('time')!
          attr(when, 'datetime', message.created_at)
          text(when, shortWhen(new Date(message.created_at)))
        },
      )
      if (firstAdded !== null) ((results.children[firstAdded] ?? results.lastElementChild)?.firstElementChild as HTMLElement | null | undefined)?.focus()
      // A result was opened: the search is done.
      if (!state.search.query && !searchForm.hidden && document.activeElement !== query) {
        query.value = ''
        searchForm.hidden = true
        attr(toggle, 'aria-expanded', false)
      }
      const chats = chatList(state)
      keyed(list, chats, (chat) => String(chat.dialog.id), createItem, updateItem(state))
      empty.hidden = chats.length > 0 || state.connection !== 'live'
    },
    clearFind: () => (find.value = ''),
    /** Signed out: the next user finds nothing the last one typed. */
    reset() {
      clearTimeout(searchTimer)
      find.value = ''
      query.value = ''
      searchForm.hidden = true
      attr(toggle, 'aria-expanded', false)
    },
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
