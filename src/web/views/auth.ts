import { h, text } from '../dom'
import type { State } from '../store'

export interface AuthActions {
  login(username: string, password: string): void
  register(username: string, password: string): void
}

/** Sign in / sign up: one form, two buttons (Enter logs in). */
export function authView(actions: AuthActions) {
  const username = h('input', { id: 'username', name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' })
  const password = h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true })
  const alert = h('p', { role: 'alert', class: 'alert', hidden: true })
  const login = h('button', { type: 'submit', value: 'login', class: 'primary' }, 'Log in')
  const register = h('button', { type: 'submit', value: 'register' }, 'Sign up')
  const form = h(
    'form',
    {
      class: 'auth-form',
      onsubmit: (event: Event) => {
        event.preventDefault()
        const submitter = (event as SubmitEvent).submitter as HTMLButtonElement | null
        const act = submitter?.value === 'register' ? actions.register : actions.login
        act(username.value.trim(), password.value)
      },
    },
    h('h1', {}, 'Chat'),
    h('p', { class: 'muted' }, 'Log in, or pick a name and a password to sign up.'),
    h('label', { for: 'username' }, 'Username'),
    username,
    h('label', { for: 'password' }, 'Password'),
    password,
    alert,
    h('div', { class: 'row' }, login, register),
  )
  const element = h('main', { class: 'auth' }, form)
  return {
    element,
    update(state: State) {
      alert.hidden = !state.alert
      text(alert, state.alert ?? '')
      login.disabled = register.disabled = state.busy
    },
    /** Shown again (after a log out): no password left in the field. */
    shown() {
      password.value = ''
      username.focus()
    },
  }
}
