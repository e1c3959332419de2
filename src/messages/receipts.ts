/*
 * Receipts (delivered/read watermark moves) as the writer takes them, and what is portable about applying
 * them: folding a batch's marks per member and handing each mark its outcome. How the moves are written
 * is each dialect's own: batch.sqlite.ts, batch.pg.ts.
 */

export interface MemberProgress {
  lastReadMessageId: number
  readAt: Date | null
  lastDeliveredMessageId: number
  deliveredAt: Date | null
}

/** A member's watermark move, as the writer receives it: `read` moves read and delivered, else delivered only. */
export interface MarkInput {
  dialogId: number
  userId: number
  messageId: number
  at: Date
  read: boolean
}

/** The member's state after the batch; `readMoved`/`deliveredMoved` on the mark that moved it, if any. */
export type MarkOutcome = MemberProgress & { readMoved: boolean; deliveredMoved: boolean; unread: number }

/** A member's marks of one batch, folded: the highest read mark (if any) and the highest mark of all. */
export interface Folded {
  read?: MarkInput
  delivered: MarkInput
}

export function fold(marks: MarkInput[]): Folded[] {
  const members = new Map<string, Folded>()
  for (const mark of marks) {
    const key = `${mark.dialogId}:${mark.userId}`
    const member = members.get(key)
    if (!member) members.set(key, { read: mark.read ? mark : undefined, delivered: mark })
    else {
      if (mark.read && (!member.read || mark.messageId > member.read.messageId)) member.read = mark
      if (mark.messageId > member.delivered.messageId) member.delivered = mark
    }
  }
  return [...members.values()]
}

/** Each mark gets its member's state; only the marks that carried a member's move say it moved. */
export function outcomesOf(marks: MarkInput[], folded: Folded[], after: MarkOutcome[]): MarkOutcome[] {
  const state = new Map<string, MarkOutcome>()
  const movedBy = new Map<MarkInput, { read: boolean; delivered: boolean }>()
  folded.forEach(({ read, delivered }, i) => {
    const member = after[i]!
    state.set(`${delivered.dialogId}:${delivered.userId}`, member)
    if (read) movedBy.set(read, { read: member.readMoved, delivered: false })
    movedBy.set(delivered, { read: movedBy.get(delivered)?.read ?? false, delivered: member.deliveredMoved })
  })
  return marks.map((mark) => {
    const moved = movedBy.get(mark)
    return { ...state.get(`${mark.dialogId}:${mark.userId}`)!, readMoved: moved?.read ?? false, deliveredMoved: moved?.delivered ?? false }
  })
}

