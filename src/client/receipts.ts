export type ReceiptType = 'message:delivered' | 'message:read'

/** How long a sent receipt is remembered: a refusal comes back within a round trip. */
const RECENT_MS = 10_000

/**
 * Receipts (`message:delivered`, `message:read`) have no answer of their own, and the `error` frame that
 * refuses one (`rate_limited`: the user's send bucket, or the server's full write queue) does not say which.
 * So the receipts of the last few seconds are remembered, one per type and dialog (the newest: watermarks mean
 * "up to"), and after a refusal they are all sent again once its `retry_after` has passed. A watermark only
 * moves forward, so sending again one the server took changes nothing.
 */
export class ReceiptResend {
  private readonly sent = new Map<string, { type: ReceiptType; dialogId: number; messageId: number; at: number }>()
  private readonly timers = new Map<ReceiptType, ReturnType<typeof setTimeout>>()

  constructor(private readonly resend: (type: ReceiptType, dialogId: number, messageId: number) => void) {}

  /** A receipt went out. */
  sending(type: ReceiptType, dialogId: number, messageId: number): void {
    const now = Date.now()
    for (const [key, entry] of this.sent) if (now - entry.at > RECENT_MS) this.sent.delete(key)
    const key = `${type}:${dialogId}`
    const was = this.sent.get(key)
    this.sent.set(key, { type, dialogId, messageId: Math.max(messageId, was?.messageId ?? 0), at: now })
  }

  /** The server refused a receipt of this type: everything of that type sent lately goes again, once. */
  refused(type: ReceiptType, retryAfterSeconds = 1): void {
    if (this.timers.has(type)) return
    const refusedAt = Date.now()
    const timer = setTimeout(() => {
      this.timers.delete(type)
      for (const entry of [...this.sent.values()])
        if (entry.type === type && refusedAt - entry.at <= RECENT_MS) this.resend(entry.type, entry.dialogId, entry.messageId)
    }, retryAfterSeconds * 1000)
    this.timers.set(type, timer)
  }

  stop(): void {
    for (const timer of this.timers.values()) clearTimeout(timer)
    this.timers.clear()
    this.sent.clear()
  }
}
