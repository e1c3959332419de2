import type { Server } from 'bun'
import type { SessionCache } from '../auth/session-cache'
import type { BlockCache } from '../blocks/cache'
import type { Cluster, ClusterPeer } from '../cluster/cluster'
import type { DialogDto } from '../dialogs/model'
import type { DeletedEvent, MessageDto, ReactionsEvent, StatusEvent } from '../messages/model'
import { unauthorized } from '../errors'
import type { Metrics } from '../ops/metrics'
import type { PresenceService } from '../users/presence'
import { Outbox } from './outbox'
import type { Origin, RealtimePort } from './port'
import {
  deletedFrame,
  dialogNewFrame,
  editedFrame,
  newFrame,
  presenceFrame,
  reactionsFrame,
  statusFrame,
  typingFrame,
  type RawFrame,
} from './protocol'
import { closeSocket, CLOSE_TRY_AGAIN_LATER, CLOSE_UNAUTHORIZED, type ConnectionData, type Socket } from './socket'
import { jsonWire, type Wire } from './wire'
import { logFault } from '../log/fault'

const dialogTopic = (id: number) => `dialog:${id}`
const userTopic = (id: number) => `user:${id}`

/** A user's live connections on this node, and the dialogs and peers their presence concerns. */
interface UserEntry {
  sockets: Set<Socket>
  /** Connections whose greeting (auth:ok) has not gone out yet: no event may reach them before it. */
  waiting: Set<Socket>
  /** The peers were told this user is online (and not since that the user left). */
  announced: boolean
  /**
   * The user's last connection closed and its last_seen_at was written, though the peers may not hear of
   * it (a device came back meanwhile): the next device tells them online again, so that the stored time
   * and the last presence event agree.
   */
  left?: boolean
  dialogs: Set<number>
  peers: Set<number>
}

/**
 * All publishing goes through here, on topics `dialog:<id>` and `user:<id>`; in a cluster each publish is
 * also forwarded to the other nodes, which publish it to their own subscribers (see `Cluster`). Each
 * event is encoded once per publish and wire: a wire's subscribers listen on the topic under its prefix
 * (Bun's pub/sub), or, when Bun's pub/sub cannot reach them (long-polling), are kept here in `polled`.
 * Before `attach` (an app without a listening server) publishing does nothing.
 *
 * After each publish the recipients' send buffers are checked: a connection past `slowBytes` is closed
 * with 1013 rather than buffering without bound (Bun's own backpressure close is abrupt: 1006).
 */
export class Hub implements RealtimePort, ClusterPeer {
  private server: Server<ConnectionData> | undefined
  private wires: Wire[] = [jsonWire]
  /** Prefixed topic → subscribers outside Bun's pub/sub. */
  private readonly polled = new Map<string, Set<Socket>>()
  private cluster: Cluster | undefined
  private readonly users = new Map<number, UserEntry>()
  /** dialog id → users with live connections subscribed to it: whose buffers a publish may have grown. */
  private readonly listeners = new Map<number, Set<number>>()
  /** session id → its live connections on this node. */
  private readonly sessions = new Map<string, Set<Socket>>()
  private readonly pending = new Set<Promise<unknown>>()
  /** The latest presence of lost and found users: each waits for the one before (the same user may be both). */
  private lastTold: Promise<void> = Promise.resolve()
  private readonly resubscribedListeners: (() => void)[] = []
  private readonly outbox = new Outbox((ws) => this.guard(ws))
  private stopping = false

  constructor(
    /** The database work presence needs (the hub itself only publishes). */
    private readonly presence: PresenceService,
    private readonly metrics: Metrics,
    private readonly slowBytes: number,
    /** Typing and presence never pass between two users while either blocks the other. */
    private readonly blocks: BlockCache,
    /** Sessions known live for REST: a session ended here or elsewhere is forgotten there too. */
    private readonly sessionCache: SessionCache,
  ) {}

  /** `wires`: every wire the server speaks; each publish is encoded once for each that has subscribers. */
  attach(server: Server<ConnectionData>, wires: Wire[] = [jsonWire]): void {
    this.server = server
    this.wires = wires
  }

  /** A subscriber Bun's pub/sub cannot reach (a long-polling session): publishes reach it through `send`. */
  addPolled(topic: string, ws: Socket): void {
    let sockets = this.polled.get(topic)
    if (!sockets) this.polled.set(topic, (sockets = new Set()))
    sockets.add(ws)
  }

  removePolled(topic: string, ws: Socket): void {
    const sockets = this.polled.get(topic)
    if (sockets?.delete(ws) && sockets.size === 0) this.polled.delete(topic)
  }

  join(cluster: Cluster): void {
    this.cluster = cluster
  }

  /**
   * Leaves the cluster, if any (after closeAll: the other nodes then tell this node's users' peers). Work
   * still in flight goes first: a last connection's close waits for the cluster before storing last_seen_at.
   */
  async leave(): Promise<void> {
    await Promise.all(this.pending)
    // Detached first: what is published while the goodbye goes out stays on this node.
    const cluster = this.cluster
    this.cluster = undefined
    await cluster?.leave()
  }

  /**
   * A reply that settles together with others (an ack): they leave in one write per connection (see Outbox).
   * `frame` is ours (counted by type), written by the connection's wire as the answer to `request`.
   */
  replyLater(ws: Socket, frame: string, request?: RawFrame): void {
    this.metrics.frameOut(frame)
    this.outbox.push(ws, ws.data.wire.answer(frame, request))
  }

  /** A wire's own confirmation of a frame (a Socket.IO ack `{ok: true}`), in order with the replies. */
  confirmLater(ws: Socket, text: string): void {
    this.outbox.push(ws, text)
  }

  /**
   * Sends the waiting replies now. Called before a writer batch commits and before another node's event
   * is published, so that nothing a reply's message caused (a receipt's status, say) reaches a connection
   * before the reply.
   */
  flushReplies(): void {
    this.outbox.flush()
  }

  isOnline(userId: number): boolean {
    return this.isOnlineHere(userId) || (this.cluster?.isOnlineElsewhere(userId) ?? false)
  }

  messageNew(message: MessageDto, origin?: Origin): void {
    this.toDialog(message.dialog_id, newFrame(message), origin)
  }

  status(event: StatusEvent, origin?: Origin): void {
    this.toDialog(event.dialog_id, statusFrame(event), origin)
  }

  messageEdited(message: MessageDto): void {
    this.toDialog(message.dialog_id, editedFrame(message), undefined)
  }

  messageDeleted(event: DeletedEvent): void {
    this.toDialog(event.dialog_id, deletedFrame(event), undefined)
  }

  reactions(event: ReactionsEvent): void {
    this.toDialog(event.dialog_id, reactionsFrame(event), undefined)
  }

  /**
   * Subscribes both members' live connections to the new dialog, then sends each member its own view;
   * resolves once every node has done both, so that whoever is answered about the dialog can send into it
   * through any node, and the members' connections everywhere get it.
   */
  async dialogNew(dialogId: number, views: { userId: number; dialog: DialogDto }[]): Promise<void> {
    for (const { userId, dialog } of views) {
      const entry = this.users.get(userId)
      if (entry) this.follow(entry, userId, [dialogId], [dialog.peer.id])
      this.cluster?.follow(userId, dialogId, dialog.peer.id)
    }
    for (const { userId, dialog } of views) this.toUser(userId, dialogNewFrame(dialog))
    await this.cluster?.applied()
  }

  /** Typing goes to the peer's connections only (the typist's own devices have no use for it), unless blocked. */
  typing(dialogId: number, userId: number, peerId: number, state: 'start' | 'stop'): void | Promise<void> {
    const send = (blocked: boolean) => {
      if (!blocked) this.toUser(peerId, typingFrame(dialogId, userId, state))
    }
    const blocked = this.blocks.between(userId, peerId)
    return typeof blocked === 'boolean' ? send(blocked) : blocked.then(send)
  }

  async blocksChanged(a: number, b: number): Promise<void> {
    this.blocks.forget(a, b)
    await this.cluster?.blocksChanged(a, b)
  }

  presenceTo(userId: number, about: number, online: boolean, lastSeenAt: Date | null): void {
    this.toUser(userId, presenceFrame(about, online, lastSeenAt))
  }

  forgetBlocks(a: number, b: number): void {
    this.blocks.forget(a, b)
  }

  /**
   * Registers an authenticated connection: sends it `greeting` (auth:ok, answering `request` if it came by
   * a frame; `beforeGreeting` first, in the same tick), then subscribes it to its user
   * topic and every dialog of the user. The user's first connection records last_seen_at and tells the
   * peers it is online (in a cluster, both only when no other node has the user: see Cluster.online). False
   * when the connection closed while this ran.
   */
  async connect(ws: Socket, userId: number, greeting: string, request?: RawFrame, beforeGreeting?: () => void): Promise<boolean> {
    let entry = this.users.get(userId)
    if (!entry) this.users.set(userId, (entry = { sockets: new Set(), waiting: new Set(), announced: false, dialogs: new Set(), peers: new Set() }))
    // In the entry now, so a dialog created during the load below is followed for it too (and subscribed
    // once it is greeted).
    entry.sockets.add(ws)
    entry.waiting.add(ws)
    const sessionId = ws.data.sessionId
    if (sessionId !== undefined) {
      let sockets = this.sessions.get(sessionId)
      if (!sockets) this.sessions.set(sessionId, (sockets = new Set()))
      sockets.add(ws)
    }
    const [links] = await Promise.all([
      this.presence.links(userId),
      // Loaded now, so the presence below needs no read of its own.
      this.blocks.of(userId),
    ])
    if (!entry.sockets.has(ws)) return false
    // Decided now, not before the load: a device that opened first may have closed during it, unannounced.
    const first = !entry.announced || entry.left === true
    entry.announced = true
    entry.left = false
    const now = new Date()
    const cluster = this.cluster
    if (first && !cluster) await this.presence.seen([userId], now)
    if (!entry.sockets.has(ws)) return false
    // Announced before the greeting, so a client that sees auth:ok and closes its device on another node
    // is not reported offline there (see Cluster.offline).
    const announced = first ? cluster?.online(userId) : undefined
    // The greeting goes out before any subscription, in the same tick, so it is the first frame the
    // client sees. What was published before it was committed before it: a client catches up after
    // the greeting (GET /dialogs, ?after_id=) and misses nothing.
    beforeGreeting?.()
    ws.send(ws.data.wire.answer(greeting, request))
    this.metrics.frameOut(greeting)
    entry.waiting.delete(ws)
    ws.subscribe(ws.data.wire.prefix + userTopic(userId))
    // Every live connection of the user follows the same dialogs (subscribing twice is harmless), those
    // followed while this one was loaded included.
    this.follow(entry, userId, links.dialogs, links.peers)
    for (const dialogId of entry.dialogs) ws.subscribe(ws.data.wire.prefix + dialogTopic(dialogId))
    if (!first) return true
    if (!cluster || !announced) {
      this.toPeers(userId, entry, presenceFrame(userId, true, now))
      return true
    }
    // Stored only with the event: a device joining the user's others on another node moves nothing.
    this.track(
      announced.then(async () => {
        if (cluster.isOnlineElsewhere(userId)) return
        await this.presence.seen([userId], now).catch((error) => logFault('storing last_seen_at failed', error))
        this.toPeers(userId, entry, presenceFrame(userId, true, now))
      }),
    )
    return true
  }

  /**
   * Forgets a closed connection. When it was the user's last, last_seen_at is stored first and the peers
   * are told after, unless the user came back meanwhile (then they never saw the user leave); in a cluster
   * both only once no other node has the user either.
   */
  disconnect(ws: Socket): void {
    const sessionId = ws.data.sessionId
    const ofSession = sessionId === undefined ? undefined : this.sessions.get(sessionId)
    if (ofSession?.delete(ws) && ofSession.size === 0) this.sessions.delete(sessionId!)
    const userId = ws.data.userId
    const entry = userId === undefined ? undefined : this.users.get(userId)
    if (userId === undefined || !entry?.sockets.delete(ws)) return
    entry.waiting.delete(ws)
    if (entry.sockets.size > 0 || this.stopping) return
    // Never greeted, never told online: there is nothing to tell or store.
    if (!entry.announced) return this.forget(userId, entry)
    const at = new Date()
    const seen = () => this.presence.seen([userId], at).catch((error) => logFault('storing last_seen_at failed', error))
    const tell = () => {
      if (!this.isOnline(userId)) this.toPeers(userId, entry, presenceFrame(userId, false, at))
    }
    const cluster = this.cluster
    if (!cluster) {
      entry.left = true
      return this.track(
        seen().then(() => {
          if (entry.sockets.size > 0 || this.users.get(userId) !== entry) return
          this.forget(userId, entry)
          tell()
        }),
      )
    }
    this.forget(userId, entry)
    this.track(
      cluster.offline(userId).then(async () => {
        if (this.isOnline(userId)) return
        await seen()
        tell()
      }),
    )
  }

  /**
   * Shutdown: closes every connection with `code` and records everyone still online only here as last seen
   * now (peers are not told: their connections to this node are closing too; those online on another node
   * stay online).
   */
  async closeAll(code: number, reason: string): Promise<void> {
    this.stopping = true
    this.outbox.flush()
    const online = [...this.users]
      .filter(([id, e]) => e.sockets.size > 0 && !this.cluster?.isOnlineElsewhere(id))
      .map(([id]) => id)
    for (const entry of this.users.values()) for (const ws of entry.sockets) closeSocket(ws, code, reason)
    await Promise.all(this.pending)
    if (online.length > 0) {
      const now = new Date()
      await this.presence.seen(online, now).catch((error) => logFault('storing last_seen_at failed', error))
    }
  }

  /** Closes a connection whose unsent data passed the limit: a slow consumer must not hold the others' memory. */
  guard(ws: Socket): void {
    if (ws.getBufferedAmount() > this.slowBytes && !ws.data.closing) {
      this.metrics.wsClosedSlow.inc()
      closeSocket(ws, CLOSE_TRY_AGAIN_LATER, 'slow consumer: reconnect and catch up with after_id')
    }
  }

  /** A user with no connection left: no longer a listener of its dialogs. */
  private forget(userId: number, entry: UserEntry): void {
    this.users.delete(userId)
    for (const dialogId of entry.dialogs) {
      const listening = this.listeners.get(dialogId)
      listening?.delete(userId)
      if (listening?.size === 0) this.listeners.delete(dialogId)
    }
  }

  private follow(entry: UserEntry, userId: number, dialogIds: number[], peerIds: number[]): void {
    for (const dialogId of dialogIds) {
      entry.dialogs.add(dialogId)
      let listening = this.listeners.get(dialogId)
      if (!listening) this.listeners.set(dialogId, (listening = new Set()))
      listening.add(userId)
      for (const ws of entry.sockets) if (!entry.waiting.has(ws)) ws.subscribe(ws.data.wire.prefix + dialogTopic(dialogId))
    }
    for (const peerId of peerIds) entry.peers.add(peerId)
  }

  /** Everyone on the dialog; with an origin connection (still open), everyone but it (Bun's ws.publish skips the sender). */
  private toDialog(dialogId: number, frame: string, origin: Origin | undefined): void {
    if (!this.server) return
    const topic = dialogTopic(dialogId)
    const from = origin as Socket | undefined
    this.publish(topic, frame, from && from.readyState === 1 && from.data?.userId !== undefined ? from : undefined)
    this.guardDialog(dialogId)
    this.cluster?.forward(topic, frame)
  }

  private toUser(userId: number, frame: string): void {
    if (!this.server) return
    this.publish(userTopic(userId), frame)
    this.guardUser(userId)
    this.cluster?.forward(userTopic(userId), frame)
  }

  /**
   * To the topic's subscribers on every wire that has some (but `from`), encoded once per wire. Counted
   * once per publish, by our frame's type, whichever wires it went out on.
   */
  private publish(topic: string, frame: string, from?: Socket): void {
    const server = this.server!
    this.metrics.frameOut(frame)
    for (const wire of this.wires) {
      const target = wire.prefix + topic
      const polled = this.polled.get(target)
      if (!polled && server.subscriberCount(target) === 0) continue
      const text = wire.event(frame)
      // Bun's ws.publish skips the sender.
      if (from?.data.wire === wire) from.publish(target, text)
      else server.publish(target, text)
      if (polled) for (const ws of polled) if (ws !== from) ws.send(text)
    }
  }

  async sessionEnded(sessionId: string): Promise<void> {
    this.endSession(sessionId)
    await this.cluster?.sessionEnded(sessionId)
  }

  /** Closes this node's connections of a revoked session, as an authentication failure. */
  endSession(sessionId: string): void {
    this.sessionCache.forget(sessionId)
    this.outbox.flush()
    for (const ws of this.sessions.get(sessionId) ?? []) {
      if (ws.data.closing) continue
      ws.send(ws.data.wire.failure(unauthorized('session ended'), undefined))
      closeSocket(ws, CLOSE_UNAUTHORIZED, 'session ended')
    }
  }

  /** Login sessions with a live connection on this node (checked for revocation by ops/session-check). */
  liveSessions(): string[] {
    return [...this.sessions.keys()]
  }

  /** True without a cluster, or while this node's Redis connections are up. */
  clusterJoined(): boolean {
    return this.cluster?.connected ?? true
  }

  /** Another node's publish, for this node's subscribers only. */
  deliver(topic: string, frame: string): void {
    if (!this.server) return
    this.outbox.flush()
    this.publish(topic, frame)
    const id = Number(topic.slice(topic.indexOf(':') + 1))
    if (topic.startsWith('dialog:')) this.guardDialog(id)
    else this.guardUser(id)
  }

  followRemote(userId: number, dialogId: number, peerId: number): void {
    const entry = this.users.get(userId)
    if (entry) this.follow(entry, userId, [dialogId], [peerId])
  }

  /** Called each time this node's subscription is back (see `resubscribed`). */
  onResubscribed(listener: () => void): void {
    this.resubscribedListeners.push(listener)
  }

  /**
   * What this node missed while its subscription was down: dialogs created on other nodes (their FOLLOW
   * lost) are followed now, blocks and sessions are read again, and the listeners (the sessions' check:
   * sockets of a session ended meanwhile are closed) are told.
   */
  resubscribed(): void {
    // Blocks changed and sessions ended elsewhere meanwhile were announced to no one here.
    this.blocks.forgetAll()
    this.sessionCache.forgetAll()
    for (const listener of this.resubscribedListeners) listener()
    for (const [userId, entry] of this.users) {
      if (entry.sockets.size === 0) continue
      this.track(
        this.presence
          .links(userId)
          .then((links) => {
            if (this.users.get(userId) !== entry) return
            const missed = links.dialogs.filter((id) => !entry.dialogs.has(id))
            this.follow(entry, userId, missed, links.peers)
          })
          .catch((error) => logFault('following dialogs after a Redis drop failed', error)),
      )
    }
  }

  /**
   * Users whose node went away while they were online only there (or who left unheard while this node's
   * subscription was down): each node tells the peers connected to it (from the database, since only the
   * lost node knew whom to tell), so every peer hears it once.
   */
  lost(userIds: number[], at: Date): void {
    const gone = userIds.filter((id) => !this.isOnlineHere(id))
    if (gone.length > 0 && !this.stopping) this.tellPeersHere(gone, false, at)
  }

  /**
   * Users online again as far as this node knows, whose peers here were told they left (their node was let
   * go while only slow) or missed their coming (this node's subscription was down): told as `lost` is.
   */
  found(userIds: number[], at: Date): void {
    const back = userIds.filter((id) => !this.isOnlineHere(id))
    // Nobody here to tell: a node that just joined hears every node's users this way.
    if (back.length > 0 && !this.stopping && this.users.size > 0) this.tellPeersHere(back, true, at)
  }

  /**
   * Stores `at` as the users' last_seen_at and tells their peers connected here, but those in a block with
   * them, that they are `online` — unless that is no longer so when the database has answered.
   */
  private tellPeersHere(userIds: number[], online: boolean, at: Date): void {
    const told = this.lastTold.then(async () => {
      const peers = await this.presence.seenBy(userIds, at)
      for (const [userId, peerIds] of peers) {
        if (this.isOnline(userId) !== online) continue
        const frame = presenceFrame(userId, online, at)
        const blocked = await this.blocks.of(userId)
        for (const peerId of peerIds) if (!blocked.has(peerId)) this.deliver(userTopic(peerId), frame)
      }
    })
    this.lastTold = told.catch((error) => logFault(`telling peers of ${online ? 'found' : 'lost'} users failed`, error))
    this.track(this.lastTold)
  }

  private isOnlineHere(userId: number): boolean {
    return (this.users.get(userId)?.sockets.size ?? 0) > 0
  }

  private guardDialog(dialogId: number): void {
    const listening = this.listeners.get(dialogId)
    if (listening) for (const userId of listening) this.guardUser(userId)
  }

  /** The user's presence to its peers, except those in a block with it. */
  private toPeers(userId: number, entry: UserEntry, frame: string): void {
    const send = (blocked: Set<number>) => {
      for (const peerId of entry.peers) if (!blocked.has(peerId)) this.toUser(peerId, frame)
    }
    const blocked = this.blocks.of(userId)
    if (blocked instanceof Set) send(blocked)
    else this.track(blocked.then(send).catch((error) => logFault('reading blocks for presence failed', error)))
  }

  private guardUser(userId: number): void {
    const entry = this.users.get(userId)
    if (entry) for (const ws of entry.sockets) this.guard(ws)
  }

  private track(work: Promise<unknown>): void {
    this.pending.add(work)
    void work.finally(() => this.pending.delete(work))
  }
}
