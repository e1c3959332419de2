import { ChatError } from './errors'
import type {
  Dialog,
  DialogListBody,
  HistoryPageBody,
  Message,
  PushSubscriptionBody,
  ReadStateBody,
  SearchPageBody,
  TokenPairBody,
  Upload,
  User,
} from './types'

/**
 * What a login is, as a plain value: store it (the web app keeps it in localStorage) and hand it back to a
 * new client to resume. `access_expires_at` is epoch milliseconds.
 */
export interface Session {
  user: User
  access_token: string
  refresh_token: string
  access_expires_at: number
}

export interface ApiOptions {
  /** http(s)://host:port of the server; '' means the page's own origin (browsers). */
  baseUrl: string
  session?: Session | null
  /** Called whenever the session changes (login, refresh, logout, or ended by the server: null). */
  onSession?: (session: Session | null) => void
  /**
   * Reads the session as stored now, before a refresh: when another tab sharing the storage has already
   * rotated the refresh token, its pair is adopted instead of presenting the old token (which the server
   * would take for theft and end the session).
   */
  loadSession?: () => Session | null
  /**
   * Runs a refresh holding a lock that every tab sharing the stored session also takes, so that two tabs
   * never rotate the same refresh token at once (the second use would end the session). Defaults to the
   * Web Locks API (`navigator.locks`) when `loadSession` is given and the runtime has it; without either,
   * refreshes are coordinated within this client only.
   */
  lock?: RefreshLock
  /**
   * How long a refresh waits for the server's answer before it fails as `network` (default 20 s). It runs
   * holding the cross-tab lock, and a connection that hangs (a half-open socket after a network change)
   * would otherwise stall every tab's calls for good.
   */
  refreshTimeoutMs?: number
  fetch?: FetchLike
}

/** Runs `task` holding the exclusive lock `name`, and resolves with its result. */
export type RefreshLock = <T>(name: string, task: () => Promise<T>) => Promise<T>

type LockManagerLike = { request(name: string, callback: () => Promise<unknown>): Promise<unknown> }

/** The Web Locks API of this runtime (browsers: shared by the tabs and workers of one origin), if any. */
const webLocks = (): RefreshLock | undefined => {
  const locks = (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator?.locks
  if (typeof locks?.request !== 'function') return undefined
  return <T>(name: string, task: () => Promise<T>) => locks.request(name, task) as Promise<T>
}

/** How long a refresh under the cross-tab lock waits for another tab's newer pair to show in storage. */
const STORAGE_SETTLE_MS = 150

const REFRESH_TIMEOUT_MS = 20_000

export type FetchLike = (url: string, init: RequestInit) => Promise<Response>

export type HistoryQuery = {
  limit?: number
  before?: string
  before_id?: number
  after_id?: number
  /** The messages changed (new, edited, deleted, reactions) after this dialog version, ascending by version. */
  changed_after?: number
}

export type SearchQuery = {
  dialogId?: number
  beforeId?: number
  limit?: number
}

/** An attachment to send: an upload of this user's, not yet sent. */
export type OutgoingAttachment = { type: 'image' | 'file'; attachment_id: number }

const toSession = (body: TokenPairBody): Session => ({
  user: body.user,
  access_token: body.access_token,
  refresh_token: body.refresh_token,
  access_expires_at: Date.now() + body.expires_in * 1000,
})

/** Refresh this long before the access token expires: a minute, or a third of a short lifetime. */
const refreshMargin = (session: Session, now = Date.now()) =>
  Math.min(60_000, Math.max(0, (session.access_expires_at - now) / 3))

/** The REST half: auth with token refresh (before expiry, and once on a 401), then typed calls. */
export class Api {
  private current: Session | null
  private refreshing: Promise<Session> | undefined
  private margin = 0
  private readonly fetch: FetchLike
  private readonly lock: RefreshLock | undefined
  readonly baseUrl: string

  constructor(private readonly options: ApiOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '')
    this.current = options.session ?? null
    this.fetch = options.fetch ?? ((url, init) => globalThis.fetch(url, init))
    this.lock = options.lock ?? (options.loadSession ? webLocks() : undefined)
    if (this.current) this.margin = refreshMargin(this.current)
  }

  get session(): Session | null {
    return this.current
  }

  private setSession(session: Session | null): void {
    this.current = session
    if (session) this.margin = refreshMargin(session)
    this.options.onSession?.(session)
  }

  async register(username: string, password: string): Promise<Session> {
    const body = await this.call<TokenPairBody>('POST', '/auth/register', { username, password }, false)
    this.setSession(toSession(body))
    return this.current!
  }

  async login(username: string, password: string): Promise<Session> {
    const body = await this.call<TokenPairBody>('POST', '/auth/login', { username, password }, false)
    this.setSession(toSession(body))
    return this.current!
  }

  /** Ends the session on the server (its refresh token stops working, its sockets close) and forgets it. */
  async logout(): Promise<void> {
    const session = this.current
    if (!session) return
    try {
      await this.call('POST', '/auth/logout', { refresh_token: session.refresh_token }, false)
    } catch (error) {
      // Already ended on the server: forgetting it is all that is left to do.
      if (!(error instanceof ChatError) || error.code !== 'unauthorized') throw error
    } finally {
      this.setSession(null)
    }
  }

  /** When the access token should next be refreshed (epoch ms), or undefined without a session. */
  refreshDueAt(): number | undefined {
    return this.current ? this.current.access_expires_at - this.margin : undefined
  }

  /** A valid access token, refreshed first when it is about to expire. */
  async accessToken(): Promise<string> {
    const session = this.current
    if (!session) throw new ChatError('unauthorized', 'not signed in', 401)
    if (Date.now() < session.access_expires_at - this.margin) return session.access_token
    return (await this.refresh()).access_token
  }

  /**
   * Rotates the token pair; concurrent callers share one rotation (a refresh token works once). A 401
   * means the session is over: it is forgotten and `onSession(null)` tells the caller.
   */
  refresh(): Promise<Session> {
    return (this.refreshing ??= (async () => {
      try {
        const held = this.current
        if (!held) throw new ChatError('unauthorized', 'not signed in', 401)
        // Other tabs of this user refresh under the same lock: once it is ours, the stored pair is the newest.
        if (!this.lock) return await this.rotate()
        return await this.lock(`bun-chat.refresh ${this.baseUrl} ${held.user.id}`, () => this.rotate())
      } finally {
        this.refreshing = undefined
      }
    })())
  }

  /** The refresh itself: adopts the pair another tab stored meanwhile, else presents the refresh token. */
  private async rotate(): Promise<Session> {
    const held = this.current
    // Logged out while waiting for the lock.
    if (!held) throw new ChatError('unauthorized', 'not signed in', 401)
    const stored = this.lock ? await this.storedAfterOthers(held) : this.options.loadSession?.()
    if (stored && stored.refresh_token !== held.refresh_token && stored.user.id === held.user.id) {
      // Another tab has rotated the pair: ours is spent. Still fresh: take it as this client's session.
      if (Date.now() < stored.access_expires_at - refreshMargin(stored)) {
        this.setSession(stored)
        return stored
      }
      this.current = stored
    }
    try {
      const body = await this.send<TokenPairBody>('POST', '/auth/refresh', { refresh_token: this.current!.refresh_token }, undefined, {
        timeoutMs: this.options.refreshTimeoutMs ?? REFRESH_TIMEOUT_MS,
      })
      this.setSession(toSession(body))
    } catch (error) {
      if (error instanceof ChatError && error.status === 401) this.setSession(null)
      throw error
    }
    return this.current!
  }

  /**
   * The stored session, once a pair another tab stored just before it let go of the lock has reached this
   * tab: a browser hands a tab's localStorage writes to the others a moment later, not at once, and
   * presenting the spent token in that moment would end the session. Up to STORAGE_SETTLE_MS.
   */
  private async storedAfterOthers(held: Session): Promise<Session | null | undefined> {
    const deadline = Date.now() + STORAGE_SETTLE_MS
    for (;;) {
      const stored = this.options.loadSession?.()
      if (!stored || stored.refresh_token !== held.refresh_token || Date.now() >= deadline) return stored
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  }

  /** One REST call; authenticated calls refresh first when due, and once more after a 401. */
  async call<T>(method: string, path: string, body?: unknown, auth = true): Promise<T> {
    if (!auth) return this.send<T>(method, path, body)
    const token = await this.accessToken()
    try {
      return await this.send<T>(method, path, body, token)
    } catch (error) {
      if (!(error instanceof ChatError) || error.status !== 401 || !this.current) throw error
      // The token was refused before its time (a server restart with a new secret, clock skew): refresh once.
      if (this.current.access_token === token) await this.refresh()
      return this.send<T>(method, path, body, this.current!.access_token)
    }
  }

  private async send<T>(method: string, path: string, body?: unknown, token?: string, { timeoutMs }: { timeoutMs?: number } = {}): Promise<T> {
    const headers: Record<string, string> = {}
    // FormData (an upload) sets its own multipart content type, boundary included.
    const form = body instanceof FormData
    if (body !== undefined && !form) headers['content-type'] = 'application/json'
    if (token) headers.authorization = `Bearer ${token}`
    let response: Response
    try {
      response = await this.fetch(`${this.baseUrl}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : form ? body : JSON.stringify(body),
        signal: timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs),
      })
    } catch (error) {
      throw new ChatError('network', `cannot reach the server (${error instanceof Error ? error.message : String(error)})`)
    }
    let text: string
    try {
      text = await response.text()
    } catch (error) {
      // The answer's body stopped coming (the connection dropped, or the time ran out while it came).
      throw new ChatError('network', `the answer broke off (${error instanceof Error ? error.message : String(error)})`)
    }
    let parsed: unknown
    try {
      parsed = text ? JSON.parse(text) : undefined
    } catch {
      throw new ChatError(response.ok ? 'network' : 'internal', `unexpected answer (${response.status})`, response.status)
    }
    if (response.ok) return parsed as T
    const error = (parsed as { error?: { code?: string; message?: string; details?: Record<string, unknown> } } | undefined)?.error
    const retryAfter = Number(response.headers.get('retry-after')) || undefined
    throw new ChatError(error?.code ?? 'internal', error?.message ?? `HTTP ${response.status}`, response.status, error?.details, retryAfter)
  }

  // ---- typed routes ----------------------------------------------------------------------------

  me = () => this.call<User>('GET', '/me')
  /** The user with exactly this name (case-insensitive), or null. */
  findUser = async (username: string) =>
    (await this.call<{ users: User[] }>('GET', `/users?username=${encodeURIComponent(username)}`)).users[0] ?? null
  searchUsers = async (prefix: string, limit = 20) =>
    (await this.call<{ users: User[] }>('GET', `/users?q=${encodeURIComponent(prefix)}&limit=${limit}`)).users
  /** A page of the dialog list; `before` + `before_id` (the last dialog's activity time and id) continue after it. */
  dialogs = async (query: { limit?: number; before?: string; before_id?: number } = {}) =>
    (await this.call<DialogListBody>('GET', `/dialogs${qs(query)}`)).dialogs
  dialog = (dialogId: number) => this.call<Dialog>('GET', `/dialogs/${dialogId}`)
  /** Finds or creates the dialog with that user. */
  openDialog = (peerUserId: number) => this.call<Dialog>('POST', '/dialogs', { peer_user_id: peerUserId })
  history = (dialogId: number, query: HistoryQuery = {}) =>
    this.call<HistoryPageBody>('GET', `/dialogs/${dialogId}/messages${qs(query)}`)
  sendMessage = (dialogId: number, clientMsgId: string, text: string, attachment?: OutgoingAttachment) =>
    this.call<Message>('POST', `/dialogs/${dialogId}/messages`, {
      client_msg_id: clientMsgId,
      type: attachment?.type ?? 'text',
      text,
      ...(attachment && { attachment_id: attachment.attachment_id }),
    })
  /** Replaces the text of an own message; answers it with `edited_at` set. */
  editMessage = (dialogId: number, messageId: number, text: string) =>
    this.call<Message>('PATCH', `/dialogs/${dialogId}/messages/${messageId}`, { text })
  /** Deletes an own message for everyone (again: nothing happens). */
  deleteMessage = (dialogId: number, messageId: number) => this.call<void>('DELETE', `/dialogs/${dialogId}/messages/${messageId}`)
  react = (dialogId: number, messageId: number, emoji: string) =>
    this.call<void>('PUT', `/dialogs/${dialogId}/messages/${messageId}/reactions/${encodeURIComponent(emoji)}`)
  unreact = (dialogId: number, messageId: number, emoji: string) =>
    this.call<void>('DELETE', `/dialogs/${dialogId}/messages/${messageId}/reactions/${encodeURIComponent(emoji)}`)
  /** Messages of the caller's dialogs (or one) holding every word of `q`, newest first. */
  search = (q: string, query: SearchQuery = {}) =>
    this.call<SearchPageBody>('GET', `/search/messages${qs({ q, dialog_id: query.dialogId, before_id: query.beforeId, limit: query.limit })}`)
  block = (userId: number) => this.call<void>('PUT', `/users/${userId}/block`)
  unblock = (userId: number) => this.call<void>('DELETE', `/users/${userId}/block`)
  blocked = async () => (await this.call<{ users: User[] }>('GET', '/users/blocked')).users
  /** Uploads a file (multipart, one part named `file`); its content type is decided by the server from the bytes. */
  upload = (file: Blob, name: string) => {
    const form = new FormData()
    form.append('file', file, name)
    return this.call<Upload>('POST', '/uploads', form)
  }
  vapidPublicKey = async () => (await this.call<{ key: string }>('GET', '/push/vapid-public-key', undefined, false)).key
  /** Registers this browser's push subscription for this session (again: nothing new). */
  subscribePush = (subscription: PushSubscriptionBody) => this.call<{ endpoint: string }>('POST', '/push/subscriptions', subscription)
  unsubscribePush = (endpoint: string) => this.call<void>('DELETE', '/push/subscriptions', { endpoint })
  readUpTo = (dialogId: number, lastReadMessageId: number) =>
    this.call<ReadStateBody>('POST', `/dialogs/${dialogId}/read_up_to`, { last_read_message_id: lastReadMessageId })
}

const qs = (query: Record<string, string | number | undefined>) => {
  const entries = Object.entries(query).filter(([, v]) => v !== undefined) as [string, string | number][]
  return entries.length ? `?${entries.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&')}` : ''
}
