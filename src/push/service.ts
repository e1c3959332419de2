import type { PushConfig } from '../config'
import { AppError } from '../errors'
import { messageById } from '../messages/history'
import type { MessageDto } from '../messages/model'
import type { Metrics } from '../ops/metrics'
import type { Db } from '../storage/database'
import { checkEndpoint, checkKeys, checkSerialised, MAX_SUBSCRIPTIONS_PER_USER, previewOf, type PushPayload } from './model'
import { BoundedQueue } from './queue'
import { sendPush, VapidSigner, type Outcome } from './sender'
import { PUBLIC_EGRESS } from './egress'
import { deleteGone, deleteSubscription, liveSubscriptions, saveSubscription, stillSubscribed, usernames, type SubscriptionRecord } from './store'
import { Lru } from '../shared/lru'
import { logFault, logWarning } from '../log/fault'

/** The contract's TTL: a push the browser has not fetched within a day is of no use. */
export const PUSH_TTL_SECONDS = 86_400
const BACKOFF_FIRST_MS = 1_000
const BACKOFF_MAX_MS = 15 * 60_000
/** New messages whose subscriptions are looked up together, in one read. */
const FAN_OUT_BATCH = 256

/** True while either user blocks the other: nothing is pushed between them. */
export type BlockedPredicate = (a: number, b: number) => boolean | Promise<boolean>

/** What a push needs of a message; the preview is cut when queued, so a full queue holds no whole texts. */
interface Committed {
  dialogId: number
  messageId: number
  seq: number
  senderId: number
  preview: string
  /** When the message's TTL runs out (ms). */
  deadline: number
}

type Job =
  | { kind: 'message'; message: Committed; recipientId: number; at: number }
  | { kind: 'delivery'; sub: SubscriptionRecord; senderId: number; payload: PushPayload; deadline: number; attempt: number; at: number }

export interface PushOptions {
  /** Whether a user has a live connection on any node (the hub knows, for the whole cluster). */
  isOnline(userId: number): boolean
  blocked?: BlockedPredicate
}

/**
 * Web Push: subscriptions (per login session) and the worker that pushes new messages to recipients with
 * no live connection. `messageNew` only enqueues, so the write path never waits on a push service; the
 * worker runs beside it with at most `concurrency` requests in flight, from a bounded queue.
 */
export class PushService {
  private readonly queue: BoundedQueue<Job>
  private readonly vapid: VapidSigner
  /**
   * Asked before each push: true while either user blocks the other. Always false until blocking exists;
   * then createCore wires the blocking service's answer here.
   */
  blocked: BlockedPredicate
  private inFlight = 0
  private pumpScheduled = false
  private readonly warned = new Lru<string, number>(1_000)
  private readonly running = new Set<Promise<void>>()
  private readonly stopping = new AbortController()

  constructor(
    private readonly db: Db,
    private readonly config: PushConfig & { production: boolean },
    private readonly metrics: Metrics,
    private readonly options: PushOptions,
  ) {
    this.vapid = new VapidSigner({ publicKey: config.vapidPublicKey, privateKey: config.vapidPrivateKey, subject: config.vapidSubject })
    this.blocked = options.blocked ?? (() => false)
    this.queue = new BoundedQueue<Job>(
      config.queueMax,
      () => metrics.pushFailed.inc({ reason: 'queue_full' }),
      (depth) => metrics.pushQueueDepth.set(depth),
      () => this.schedule(),
    )
  }

  get publicKey(): string {
    return this.vapid.keys.publicKey
  }

  async subscribe(
    principal: { userId: number; sessionId: string },
    body: { endpoint: string; keys: { p256dh: string; auth: string } },
  ): Promise<{ created: boolean }> {
    checkEndpoint(body.endpoint, this.config.production)
    checkKeys(body.keys)
    const saved = await this.db.tx((s) =>
      saveSubscription(
        s,
        { ...principal, endpoint: body.endpoint, p256dh: body.keys.p256dh, auth: body.keys.auth, now: new Date() },
        MAX_SUBSCRIPTIONS_PER_USER,
      ),
    )
    if (saved === 'full')
      throw new AppError('validation_failed', `at most ${MAX_SUBSCRIPTIONS_PER_USER} push subscriptions per user; delete one first`, {
        field: 'endpoint',
        limit: MAX_SUBSCRIPTIONS_PER_USER,
      })
    return saved
  }

  async unsubscribe(userId: number, endpoint: string): Promise<void> {
    checkSerialised(endpoint)
    await this.db.tx((s) => deleteSubscription(s, userId, endpoint))
  }

  /**
   * A message was committed and published: when its recipient has no live connection anywhere, it is
   * queued for a push. Returns at once; the work happens in the worker.
   */
  messageNew(message: MessageDto, recipientId: number): void {
    if (this.stopping.signal.aborted || this.options.isOnline(recipientId)) return
    const committed: Committed = {
      dialogId: message.dialog_id,
      messageId: message.id,
      seq: message.seq,
      senderId: message.sender_id,
      preview: this.config.preview ? previewOf(message.text) : '',
      deadline: Date.parse(message.created_at) + PUSH_TTL_SECONDS * 1000,
    }
    this.queue.push({ kind: 'message', message: committed, recipientId, at: Date.now() })
  }

  /** Shutdown: what is queued is dropped (pushes are best effort) and requests in flight are cancelled. */
  async stop(): Promise<void> {
    this.stopping.abort()
    this.queue.clear()
    await Promise.all(this.running)
  }

  /**
   * The worker runs on a later turn of the event loop, never inside the caller: on SQLite a read is
   * synchronous, and a send's ack must not wait for the lookup of its recipient's subscriptions.
   */
  private schedule(): void {
    if (this.pumpScheduled) return
    this.pumpScheduled = true
    setImmediate(() => {
      this.pumpScheduled = false
      this.pump()
    })
  }

  private pump(): void {
    while (this.inFlight < this.config.concurrency && !this.stopping.signal.aborted) {
      const job = this.queue.take()
      if (!job) return
      const batch = [job]
      if (job.kind === 'message') {
        let next: Job | undefined
        while (batch.length < FAN_OUT_BATCH && (next = this.queue.take((j) => j.kind === 'message'))) batch.push(next)
      }
      this.run(job.kind === 'message' ? this.fanOut(batch as Extract<Job, { kind: 'message' }>[]) : this.deliver(job))
    }
  }

  private run(work: Promise<void>): void {
    this.inFlight++
    const tracked = work
      .catch((error) => {
        if (!this.stopping.signal.aborted) logFault('push worker failed', error)
      })
      .finally(() => {
        this.inFlight--
        this.running.delete(tracked)
        this.schedule()
      })
    this.running.add(tracked)
  }

  /** Looks up the recipients' live subscriptions (one read for the batch) and queues one delivery each. */
  private async fanOut(jobs: Extract<Job, { kind: 'message' }>[]): Promise<void> {
    const now = new Date()
    const subs = await this.db.read((s) => liveSubscriptions(s, [...new Set(jobs.map((j) => j.recipientId))], now))
    if (subs.length === 0 || this.stopping.signal.aborted) return
    const byUser = Map.groupBy(subs, (sub) => sub.userId)
    const wanted = jobs.filter((j) => byUser.has(j.recipientId))
    const names = await this.db.read((s) => usernames(s, [...new Set(wanted.map((j) => j.message.senderId))]))
    for (const { message, recipientId, at } of wanted) {
      if (await this.blocked(message.senderId, recipientId)) continue
      const payload: PushPayload = {
        type: 'message:new',
        dialog_id: message.dialogId,
        message_id: message.messageId,
        seq: message.seq,
        sender: { id: message.senderId, username: names.get(message.senderId) ?? '' },
        preview: message.preview,
      }
      for (const sub of byUser.get(recipientId)!)
        this.queue.push({ kind: 'delivery', sub, senderId: message.senderId, payload, deadline: message.deadline, attempt: 0, at })
    }
  }

  /** Once a minute per push service and status at most: a key mismatch (401/403) would refuse every push. */
  private warnRejected(origin: string, status: number): void {
    const key = `${origin} ${status}`
    const now = Date.now()
    if ((this.warned.get(key) ?? 0) > now - 60_000) return
    this.warned.set(key, now)
    logWarning('push: a push service refused a push (a 401/403 usually means the VAPID keys changed since the browser subscribed)', {
      origin,
      status,
    })
  }

  private async deliver(job: Extract<Job, { kind: 'delivery' }>): Promise<void> {
    const left = job.deadline - Date.now()
    if (left <= 0) return this.metrics.pushFailed.inc({ reason: 'expired' })
    // Asked again before every attempt (a retry waits seconds to minutes, the queue may be long): a push
    // queued for a subscription that has since ended (a logout, the browser taken over by another
    // account) would show one account's message to the next, and a block placed meanwhile holds too.
    if (!(await this.db.read((s) => stillSubscribed(s, job.sub, new Date()))) || (await this.blocked(job.senderId, job.sub.userId)))
      return this.metrics.pushFailed.inc({ reason: 'ended' })
    // And the message as it is now: deleted for everyone, it is not pushed; edited, the preview is its new text.
    const message = await this.db.read((s) => messageById(s, job.payload.message_id))
    if (!message || message.deleted) return this.metrics.pushFailed.inc({ reason: 'deleted' })
    const payload = JSON.stringify({ ...job.payload, preview: this.config.preview ? previewOf(message.text) : '' })
    const signal = AbortSignal.any([this.stopping.signal, AbortSignal.timeout(this.config.timeoutMs)])
    // The push service keeps it only until the message's day is over, retries included.
    const egress = this.config.production ? PUBLIC_EGRESS : undefined
    const outcome: Outcome = await sendPush(this.vapid, job.sub, payload, Math.ceil(left / 1000), signal, egress)
    if (this.stopping.signal.aborted) return
    switch (outcome.kind) {
      case 'sent':
        this.metrics.pushSent.inc()
        return
      // An endpoint whose host resolves into our own network is no push service's, and a retry would only probe
      // it again: deleted as a gone one is (the web app subscribes again when next opened).
      case 'internal':
      case 'gone':
        this.metrics.pushFailed.inc({ reason: 'gone' })
        await this.db.tx((s) => deleteGone(s, job.sub.id, job.sub.endpoint))
        return
      case 'rejected':
        this.metrics.pushFailed.inc({ reason: 'rejected' })
        this.warnRejected(new URL(job.sub.endpoint).origin, outcome.status)
        return
      case 'retry': {
        const backoff = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** job.attempt) * (0.8 + Math.random() * 0.4)
        const wait = outcome.afterMs ?? backoff
        if (Date.now() + wait >= job.deadline) return this.metrics.pushFailed.inc({ reason: 'expired' })
        this.metrics.pushRetries.inc({ reason: outcome.reason })
        this.queue.later({ ...job, attempt: job.attempt + 1 }, wait)
      }
    }
  }
}
