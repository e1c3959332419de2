import { charCount, MAX_CLIENT_MSG_ID_CHARS, MAX_TEXT_CHARS, textTooLong } from '../shared/text'
import { ChatError } from './errors'
import { backoffDelay, type Backoff } from './socket'
import type { OutgoingAttachment } from './api'
import type { Message } from './types'

/** `discarded`: given up by `discard()` (or the end of the session); no longer pending nor saved. */
export type PendingState = 'queued' | 'sending' | 'sent' | 'failed' | 'discarded'

/** A message handed to `send()`: shown at once, settled by the server's ack (or a per-message error). */
export interface PendingMessage {
  readonly client_msg_id: string
  readonly dialog_id: number
  /** The text, or an attachment's caption. */
  readonly text: string
  /** An image or file being sent (an upload of this user's). */
  readonly attachment?: OutgoingAttachment
  readonly created_at: string
  state: PendingState
  /** The stored message, once acknowledged. */
  message?: Message
  /** Why it failed (`state: 'failed'`); `retry()` sends it again with the same client_msg_id. */
  error?: ChatError
  /** Resolves with the stored message on `message:ack`; rejects with a ChatError that is not worth retrying. */
  readonly sent: Promise<Message>
}

interface Entry extends PendingMessage {
  resolve(message: Message): void
  reject(error: ChatError): void
  timer?: ReturnType<typeof setTimeout>
  /** Transient refusals in a row (internal, unavailable): the backoff of the next try. */
  refusals?: number
}

/** How a message refused for a passing reason (`internal`, `unavailable`) is tried again on one connection. */
const RETRY: Backoff = { initialMs: 1_000, maxMs: 30_000 }

/** What to store of an unacknowledged message to send it after a restart of the app (`ChatClient.outbox`). */
export type SavedMessage = Pick<PendingMessage, 'client_msg_id' | 'dialog_id' | 'text' | 'created_at' | 'attachment'>

/** Errors that say the message itself will never be accepted as it is; anything else is retried. */
const FINAL = new Set(['validation_failed', 'not_found', 'blocked', 'forbidden', 'bad_request', 'payload_too_large'])

/**
 * What the server would refuse whatever the retries: failed here, at once. Sent, a text far over the bound
 * would exceed the server's frame limit, which closes the connection (1009) instead of answering: the outbox
 * would resend it after every reconnect, and nothing behind it would ever go out.
 */
function refusal(text: string, clientMsgId: string): ChatError | undefined {
  if (textTooLong(text))
    return new ChatError('validation_failed', `text: at most ${MAX_TEXT_CHARS} characters`, 0, { field: 'text' })
  const idChars = charCount(clientMsgId, MAX_CLIENT_MSG_ID_CHARS)
  if (idChars === 0 || idChars > MAX_CLIENT_MSG_ID_CHARS)
    return new ChatError('validation_failed', `client_msg_id: 1–${MAX_CLIENT_MSG_ID_CHARS} characters`, 0, { field: 'client_msg_id' })
  return undefined
}

/** A client-chosen id: time plus randomness (crypto.getRandomValues works outside secure contexts too). */
export function newClientMsgId(): string {
  const bytes = new Uint8Array(8)
  globalThis.crypto.getRandomValues(bytes)
  return `${Date.now().toString(36)}-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`
}

/**
 * Unacknowledged sends, in the order written. Each is transmitted when the connection is up and again after
 * every reconnect with the same client_msg_id: the server answers a repeat with the original, so a message
 * is stored once however many times it went out.
 */
export class Outbox {
  private readonly entries = new Map<string, Entry>()

  constructor(
    /** Puts the frame on the wire; false when there is no authenticated connection right now. */
    private readonly transmit: (entry: PendingMessage) => boolean,
    private readonly changed: (entry: PendingMessage) => void,
  ) {}

  add(
    dialogId: number,
    text: string,
    clientMsgId = newClientMsgId(),
    createdAt = new Date().toISOString(),
    attachment?: OutgoingAttachment,
  ): PendingMessage {
    const existing = this.entries.get(clientMsgId)
    if (existing) return existing
    let resolve!: (message: Message) => void
    let reject!: (error: ChatError) => void
    const sent = new Promise<Message>((res, rej) => {
      resolve = res
      reject = rej
    })
    // A caller that never awaits `sent` should not get an unhandled rejection for a message shown as failed.
    sent.catch(() => {})
    const entry: Entry = { client_msg_id: clientMsgId, dialog_id: dialogId, text, attachment, created_at: createdAt, state: 'queued', sent, resolve, reject }
    this.entries.set(clientMsgId, entry)
    const refused = refusal(text, clientMsgId)
    if (refused) {
      entry.error = refused
      this.set(entry, 'failed')
      reject(refused)
      return entry
    }
    this.changed(entry)
    this.flushOne(entry)
    return entry
  }

  /** Everything still waiting for its ack, oldest first. */
  pending(): PendingMessage[] {
    return [...this.entries.values()]
  }

  /** The messages worth keeping across an app restart: not acknowledged and not failed. */
  saved(): SavedMessage[] {
    return this.pending()
      .filter((p) => p.state !== 'failed')
      .map(({ client_msg_id, dialog_id, text, created_at, attachment }) => ({ client_msg_id, dialog_id, text, created_at, attachment }))
  }

  /**
   * After (re)authentication: send every message not yet acknowledged, in order; one waiting out a passing
   * refusal goes now too (a new connection is what it waited for), one waiting out a rate limit waits on.
   */
  flush(): void {
    for (const entry of this.entries.values()) {
      if (entry.state === 'failed') continue
      if (entry.timer && entry.error?.code !== 'rate_limited') {
        clearTimeout(entry.timer)
        entry.timer = undefined
      }
      if (!entry.timer) this.flushOne(entry)
    }
  }

  /** The connection went down: whatever was on the wire goes again after the reconnect. */
  disconnected(): void {
    for (const entry of this.entries.values()) if (entry.state === 'sending') this.set(entry, 'queued')
  }

  ack(clientMsgId: string, message: Message): PendingMessage | undefined {
    const entry = this.entries.get(clientMsgId)
    if (!entry || entry.dialog_id !== message.dialog_id) return undefined
    clearTimeout(entry.timer)
    this.entries.delete(clientMsgId)
    entry.message = message
    entry.error = undefined
    this.set(entry, 'sent')
    entry.resolve(message)
    return entry
  }

  /** An `error` frame naming one of ours: final errors fail it, `rate_limited` waits its retry, others a backoff (or the next connection). */
  failed(clientMsgId: string, error: ChatError): void {
    const entry = this.entries.get(clientMsgId)
    if (!entry) return
    entry.error = error
    if (FINAL.has(error.code)) {
      this.set(entry, 'failed')
      entry.reject(error)
      return
    }
    this.set(entry, 'queued')
    // A rate limit waits the server's retry_after; anything else passing (internal, unavailable) a growing
    // backoff, so that a connection that stays up does not hold it for good. Its dialog's later messages
    // wait behind it (flushOne).
    let wait = (error.retryAfter ?? 1) * 1000
    if (error.code !== 'rate_limited') {
      wait = backoffDelay(entry.refusals ?? 0, RETRY)
      entry.refusals = (entry.refusals ?? 0) + 1
    }
    entry.timer = setTimeout(() => {
      entry.timer = undefined
      // It, and what its dialog held back behind it meanwhile, go out in the order written.
      for (const next of this.entries.values()) if (next.dialog_id === entry.dialog_id && next.state === 'queued' && !next.timer) this.flushOne(next)
    }, wait)
  }

  /** Sends a failed message again, same client_msg_id; its `sent` promise stays settled, so a new one is made. */
  retry(clientMsgId: string): PendingMessage | undefined {
    const entry = this.entries.get(clientMsgId)
    if (!entry || entry.state !== 'failed') return entry
    this.entries.delete(clientMsgId)
    return this.add(entry.dialog_id, entry.text, clientMsgId, undefined, entry.attachment)
  }

  /** Gives up on a message that has not been acknowledged. */
  discard(clientMsgId: string): void {
    const entry = this.entries.get(clientMsgId)
    if (!entry) return
    clearTimeout(entry.timer)
    this.entries.delete(clientMsgId)
    if (entry.state !== 'failed') entry.reject(new ChatError('cancelled', 'discarded before it was acknowledged'))
    // Reported, so that an app storing saved() on each change drops it too.
    this.set(entry, 'discarded')
  }

  clear(): void {
    for (const id of [...this.entries.keys()]) this.discard(id)
  }

  /** Sends it, unless an older message of its dialog waits for a retry: it would be stored before that one. */
  private flushOne(entry: Entry): void {
    for (const older of this.entries.values()) {
      if (older === entry) break
      if (older.timer && older.dialog_id === entry.dialog_id) return
    }
    if (this.transmit(entry)) this.set(entry, 'sending')
  }

  private set(entry: Entry, state: PendingState): void {
    entry.state = state
    this.changed(entry)
  }
}
