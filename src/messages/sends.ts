/*
 * Sends as the writer takes them, and what is portable about committing them: the outcome of each, the
 * duplicate key, the time rule, and the recipient's watermarks a duplicate's answer needs. How a batch
 * of sends is written is each dialect's own: batch.sqlite.ts, batch.pg.ts.
 */
import type { MessageRecord, Watermarks } from './model'

/** A send as the writer receives it. */
export interface SendInput {
  dialogId: number
  senderId: number
  clientMsgId: string
  type: string
  text: string
  /** An image/file message's upload id and its Message `attachment` as JSON (see uploads/). */
  attachmentId?: number | null
  attachment?: string | null
}

export type SendOutcome =
  | { kind: 'created'; message: MessageRecord }
  | { kind: 'duplicate'; message: MessageRecord; recipient: Watermarks | undefined }
  /** No such dialog, or the sender is not one of its two users: the same answer, `not_found`. */
  | { kind: 'missing' }

export const sendKey = (dialogId: number, senderId: number, clientMsgId: string) => `${dialogId}\u0000${senderId}\u0000${clientMsgId}`

/**
 * A message's time: now, but never before the dialog's last activity, so that within a dialog `created_at`
 * never decreases with `seq` even if the clock steps back (history by time relies on it).
 */
export const createdAtAfter = (lastActivityAt: Date, now: Date) => (lastActivityAt > now ? lastActivityAt : now)

/** Where a send landed, before a duplicate's answer gets the recipient's watermarks. */
export type Placed = { kind: 'missing' } | { kind: 'created'; message: MessageRecord } | { kind: 'duplicate'; message: MessageRecord }

/** The dialogs whose members' watermarks the duplicates' answers need. */
export const duplicateDialogs = (placed: Placed[]) => [...new Set(placed.flatMap((p) => (p.kind === 'duplicate' ? [p.message.dialogId] : [])))]

/** A duplicate's outcome carries the recipient's watermarks, for the original's status in the reply. */
export const withRecipients = (placed: Placed[], marks: (Watermarks & { dialogId: number })[]): SendOutcome[] =>
  placed.map((p) =>
    p.kind === 'duplicate'
      ? { ...p, recipient: marks.find((w) => w.dialogId === p.message.dialogId && w.userId !== p.message.senderId) }
      : p,
  )
