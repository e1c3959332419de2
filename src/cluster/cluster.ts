import { RedisClient } from 'bun'
import { randomBytes } from 'node:crypto'
import type { Config } from '../config'
import type { Metrics } from '../ops/metrics'
import { logFault } from '../log/fault'

/** What a node does with what the other nodes tell it (the realtime hub implements it). */
export interface ClusterPeer {
  /** A frame published on another node, for this node's subscribers of `topic`. */
  deliver(topic: string, frame: string): void
  /** A dialog created on another node: this node's connections of `userId` follow it. */
  followRemote(userId: number, dialogId: number, peerId: number): void
  /**
   * This node's subscription is back after Redis dropped it: what the other nodes said meanwhile is lost.
   * Their users come again with their lists (see UP); dialogs created meanwhile must be followed.
   */
  resubscribed(): void
  /**
   * Users who were online only on a node that stopped or fell silent, or whom a node's list no longer
   * has (this node missed their going), last seen `at` that node's goodbye, last heartbeat or list: a time
   * the node itself sent, so every other node agrees on it.
   */
  lost(userIds: number[], at: Date): void
  /**
   * Users online on no node as far as this one knew, whom a node's list has (this node had let that node
   * go while it was only slow, or missed their coming): their peers here were not told, or told they left.
   * `at` is the time that list was sent.
   */
  found(userIds: number[], at: Date): void
  /** A session revoked on another node: this node forgets it and closes its connections. */
  endSession(sessionId: string): void
  /** A block between two users changed on another node: this node forgets what it knew of it. */
  forgetBlocks(a: number, b: number): void
}

export type ClusterOptions = NonNullable<Config['cluster']>

interface Node {
  lastHeard: number
  /** The node's own clock when it sent its latest message. */
  lastSaidAt: number
  /** Its heartbeat interval, as it says in its hello and beats (ours until it has said). */
  heartbeatMs: number
  users: Set<number>
}

// One Redis channel; each message is `<version>|<kind><node> <sender's clock, ms>\n<payload>`. Frames
// travel as they were encoded for the sockets (no second JSON layer), and one publisher connection keeps a
// node's messages in order; Redis hands the channel's messages to every node in one order.

/**
 * The cluster protocol's version. A node ignores (and counts) messages of any other, so that during a
 * rolling upgrade nodes of two releases never misread each other: a change to a message's meaning takes
 * a new version.
 */
export const CLUSTER_PROTOCOL = '1'
const message = (kind: string, node: string, payload: string) => `${CLUSTER_PROTOCOL}|${kind}${node} ${Date.now()}\n${payload}`
/** A version as a metric label: digits as they are, anything else (no version, garbage) as one value. */
const versionLabel = (version: string) => (/^\d{1,4}$/.test(version) ? version : 'none')
const TOPIC = 'T'
const FOLLOW = 'F'
const SESSION_ENDED = 'S'
/**
 * Users with a live connection on the sender, comma-separated: one whose first connection there opened,
 * or, when the payload starts with a comma, the sender's whole list (it follows its hello, and answers
 * everyone else's), which replaces what the receivers knew of it. Nodes of the release before lists
 * (same protocol version) skip the empty id and add the users, as they always did with the answer to a
 * hello: the two releases still understand each other during a rolling upgrade.
 */
const UP = 'U'
const DOWN = 'D'
const HELLO = 'H'
const BEAT = 'B'
const BYE = 'X'
const BLOCKS = 'K'
/**
 * ASK `<id>` asks every node to answer ACK `<asking node> <id>` once it has handled everything the asker
 * published before: the channel is handled in order, so the ACK says those changes are applied there.
 * Nodes of the release before ACK ignore an unknown kind: the asker stops waiting for them at APPLY_WAIT_MS.
 */
const ASK = 'Q'
const ACK = 'A'
/** How long a node waits for its own message to come back through the channel before going on without. */
const ECHO_WAIT_MS = 1_000
/** How long a change waits for the other nodes to acknowledge it (see `applied`) before going on without. */
export const APPLY_WAIT_MS = 2_000
/** How long a joining node waits for the nodes that heard its hello to answer (see `greet`). */
const JOIN_WAIT_MS = 1_000

export const REDIS_CONNECT_TIMEOUT_MS = 5000

export class RedisUnreachable extends Error {}

/**
 * One connection attempt, bounded, without Bun's reconnect loop (which keeps a refused connection retrying
 * for ~30 s): a node that cannot reach Redis at start says so at once, not after a silent half-minute.
 */
async function reachable(url: string): Promise<void> {
  const probe = new RedisClient(url, { autoReconnect: false, connectionTimeout: REDIS_CONNECT_TIMEOUT_MS })
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    await Promise.race([
      probe.connect(),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('timed out')), REDIS_CONNECT_TIMEOUT_MS))),
    ])
  } catch (error) {
    throw new RedisUnreachable(error instanceof Error ? error.message : String(error))
  } finally {
    clearTimeout(timer)
    probe.close()
  }
}

/**
 * Joins several nodes into one chat service over Redis pub/sub. Each node keeps its own sockets and
 * topics; what one node publishes on a topic is forwarded to the others, which publish it to their own
 * subscribers. Presence is kept per node: which users each other node has, learned from its
 * announcements and from its whole list (which every node sends after its hello and in answer to anyone
 * else's: on joining, on subscribing again after Redis dropped the subscription, on meeting a node again),
 * forgotten when the node says goodbye or misses three heartbeats. A list that differs from what was known
 * is news this node missed: the peers here are told (see `ClusterPeer.lost` and `found`). A change that
 * must be in force everywhere before it is answered (a session ended, a block, a new dialog) waits for
 * every node's acknowledgement, bounded (see `applied`).
 */
export class Cluster {
  readonly node = randomBytes(6).toString('hex')
  private readonly nodes = new Map<string, Node>()
  private readonly heartbeat: ReturnType<typeof setInterval>
  /** Users announced UP and not since DOWN: this node's list, in step with what it published. */
  private readonly mine = new Set<number>()
  /** Messages sent (as published) → who waits for each copy to come back through the channel. */
  private readonly echoes = new Map<string, (() => void)[]>()
  /** Our ASKs by id → the nodes that have not acknowledged yet, and who waits. */
  private readonly asks = new Map<number, { waiting: Set<string>; done: () => void }>()
  private lastAsk = 0
  /** Some other node has spoken since we joined: from then on we may never assume we are alone. */
  private heardOthers = false
  /** Our subscription is in place (false from a drop of the subscriber until it has subscribed again). */
  private listening = false
  private lastTick = Date.now()

  private constructor(
    private readonly pub: RedisClient,
    private readonly sub: RedisClient,
    private readonly options: ClusterOptions,
    private readonly peer: ClusterPeer,
    private readonly metrics: Metrics | undefined,
  ) {
    this.heartbeat = setInterval(() => this.tick(Date.now()), options.heartbeatMs)
    this.heartbeat.unref()
  }

  static async join(options: ClusterOptions, peer: ClusterPeer, metrics?: Metrics): Promise<Cluster> {
    await reachable(options.redisUrl)
    const pub = new RedisClient(options.redisUrl)
    await pub.connect()
    const sub = await pub.duplicate()
    const cluster = new Cluster(pub, sub, options, peer, metrics)
    const listener = (message: string) => cluster.receive(message)
    await sub.subscribe(options.channel, listener)
    cluster.listening = true
    sub.onclose = () => {
      cluster.listening = false
    }
    // Bun reconnects a dropped connection and keeps its listeners, but not the subscription on the
    // server: subscribe again (once: the old listener goes first), and since what was said meanwhile is
    // lost, ask every node for its list again, and let the hub follow the dialogs created meanwhile.
    sub.onconnect = () => {
      cluster.listening = false
      sub
        .unsubscribe(options.channel, listener)
        .catch(() => {})
        .then(() => sub.subscribe(options.channel, listener))
        .then(
          () => {
            cluster.listening = true
            void cluster.hello()
            peer.resubscribed()
          },
          (error) => logFault('cluster: subscribing again failed', error),
        )
    }
    await cluster.greet()
    return cluster
  }

  /**
   * Tells every node that these sessions ended (from outside a node: the `user` CLI command), then says
   * goodbye so the nodes forget the one-off sender at once.
   */
  static async announceSessionsEnded(options: ClusterOptions, sessionIds: string[]): Promise<void> {
    await reachable(options.redisUrl)
    const client = new RedisClient(options.redisUrl, { autoReconnect: false })
    await client.connect()
    const node = `cli${randomBytes(4).toString('hex')}`
    try {
      for (const id of sessionIds) await client.publish(options.channel, message(SESSION_ENDED, node, id))
      await client.publish(options.channel, message(BYE, node, ''))
    } finally {
      client.close()
    }
  }

  /** Both Redis connections up (Bun reconnects them when they drop). */
  get connected(): boolean {
    return this.pub.connected && this.sub.connected
  }

  /** True when some other node has a live connection of the user. */
  isOnlineElsewhere(userId: number): boolean {
    for (const node of this.nodes.values()) if (node.users.has(userId)) return true
    return false
  }

  forward(topic: string, frame: string): void {
    if (!this.alone) this.send(TOPIC, `${topic}\n${frame}`)
  }

  /** Fire and forget: the hub waits for `applied` once it has said everything about the new dialog. */
  follow(userId: number, dialogId: number, peerId: number): void {
    if (!this.alone) this.send(FOLLOW, `${userId},${dialogId},${peerId}`)
  }

  /** Resolves once every node has forgotten the session and closed its sockets (see `applied`). */
  sessionEnded(sessionId: string): Promise<void> {
    if (this.alone) return Promise.resolve()
    void this.send(SESSION_ENDED, sessionId)
    return this.applied()
  }

  /** A block between `a` and `b` changed. Resolves once every node has forgotten it (see `applied`). */
  blocksChanged(a: number, b: number): Promise<void> {
    if (this.alone) return Promise.resolve()
    void this.send(BLOCKS, `${a},${b}`)
    return this.applied()
  }

  /**
   * Resolves once every node known now has applied what this node published before (each answers an ASK
   * after handling what came before it), or after APPLY_WAIT_MS, counted and logged: a node that died, or
   * one of the release before ACK, cannot hold the caller longer. A node let go meanwhile counts as done.
   */
  applied(): Promise<void> {
    if (this.nodes.size === 0) return Promise.resolve()
    const id = ++this.lastAsk
    const waiting = new Set(this.nodes.keys())
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        this.asks.delete(id)
        resolve()
      }
      const timer = setTimeout(() => {
        this.metrics?.clusterUnacknowledged.inc()
        logFault('cluster: nodes did not acknowledge a change in time', new Error(`${waiting.size} silent after ${APPLY_WAIT_MS} ms`))
        done()
      }, APPLY_WAIT_MS)
      this.asks.set(id, { waiting, done })
      void this.send(ASK, String(id)).then((sent) => {
        if (!sent) done()
      })
    })
  }

  /**
   * The user's first connection on this node opened. Resolves once our UP has come back through the
   * channel: every node hears the channel in one order, so by then every UP and DOWN another node
   * published before ours has arrived here too, and `isOnlineElsewhere` says whether the user was online
   * on another node just before. Of two nodes a device moves between, whichever spoke later decides,
   * from an up-to-date view (see `offline`).
   */
  online(userId: number): Promise<void> {
    this.mine.add(userId)
    return this.echoed(UP, String(userId))
  }

  /**
   * The user's last connection on this node closed. Resolves once our DOWN has come back through the
   * channel, as `online` does: a device that moved to another node a moment ago is not reported offline.
   */
  offline(userId: number): Promise<void> {
    this.mine.delete(userId)
    return this.echoed(DOWN, String(userId))
  }

  /** Says goodbye (the others let this node's users go at once) and disconnects. */
  async leave(): Promise<void> {
    clearInterval(this.heartbeat)
    for (const ask of [...this.asks.values()]) ask.done()
    // Redis answers in order: once the goodbye is answered, everything published before it is too.
    await this.send(BYE, '')
    this.sub.close()
    this.pub.close()
  }

  /**
   * True while this node can be sure nobody else hears the channel, so publishing would be wasted: no other
   * node ever spoke, and our subscription is up (were it down, a node that joined meanwhile went unheard).
   */
  private get alone(): boolean {
    return !this.heardOthers && this.listening && this.sub.connected
  }

  /**
   * Beats, and lets go the nodes silent for three of their heartbeats, unless this node was itself stalled
   * (a timer more than two heartbeats late): what the others said meanwhile is still unread, so their
   * silence proves nothing, and they are given a fresh start instead.
   */
  private tick(now: number): void {
    const stalled = now - this.lastTick > 2 * this.options.heartbeatMs
    this.lastTick = now
    void this.send(BEAT, String(this.options.heartbeatMs))
    if (!stalled) return this.sweep(now)
    for (const node of this.nodes.values()) node.lastHeard = now
  }

  /** Resolves false when Redis could not take it. */
  private send(kind: string, payload: string): Promise<boolean> {
    return this.publish(message(kind, this.node, payload))
  }

  private publish(text: string): Promise<boolean> {
    return this.publishCounted(text).then((receivers) => receivers >= 0)
  }

  /**
   * How many subscribers Redis handed it to (-1: Redis could not take it). More than our own subscription
   * means another node hears the channel, though it may not have spoken yet: from then on we are not alone.
   */
  private publishCounted(text: string): Promise<number> {
    return this.pub.publish(this.options.channel, text).then(
      (receivers) => {
        if (receivers > (this.listening ? 1 : 0)) this.heardOthers = true
        return receivers
      },
      (error) => {
        logFault('cluster: publishing to Redis failed', error)
        return -1
      },
    )
  }

  /**
   * Sends, and resolves once the message has come back through the channel; at once when Redis could not
   * take it, and after ECHO_WAIT_MS when it does not come back (our subscription is down).
   */
  private echoed(kind: string, payload: string): Promise<void> {
    const text = message(kind, this.node, payload)
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        const waiting = this.echoes.get(text) ?? []
        const index = waiting.indexOf(done)
        if (index >= 0) waiting.splice(index, 1)
        if (waiting.length === 0) this.echoes.delete(text)
        resolve()
      }
      const timer = setTimeout(done, ECHO_WAIT_MS)
      timer.unref()
      const waiting = this.echoes.get(text)
      if (waiting) waiting.push(done)
      else this.echoes.set(text, [done])
      void this.publish(text).then((sent) => {
        if (!sent) done()
      })
    })
  }

  /**
   * The first hello. When Redis says others heard it, waits (at most JOIN_WAIT_MS) for that many nodes to
   * answer before the node serves: until another node has spoken a node takes itself for alone, publishes
   * nothing and has nobody to wait for in `applied`, so a dialog, a block or a logout made through it at
   * once stayed unknown to the others.
   */
  private async greet(): Promise<void> {
    const others = (await this.hello()) - 1
    const deadline = Date.now() + JOIN_WAIT_MS
    while (this.nodes.size < others && Date.now() < deadline) await Bun.sleep(5)
  }

  /** Asks every node for its list of users (see UP), and gives ours; resolves with how many heard the hello (see publishCounted). */
  private hello(): Promise<number> {
    const heard = this.publishCounted(message(HELLO, this.node, String(this.options.heartbeatMs)))
    this.sendList()
    return heard
  }

  private sendList(): void {
    void this.send(UP, `,${[...this.mine].join(',')}`)
  }

  private receive(versioned: string): void {
    const bar = versioned.indexOf('|')
    const version = bar > 0 && bar <= 4 ? versioned.slice(0, bar) : ''
    if (version !== CLUSTER_PROTOCOL) return void this.metrics?.clusterIgnored.incFor('version', versionLabel(version))
    const message = versioned.slice(bar + 1)
    const newline = message.indexOf('\n')
    const space = message.indexOf(' ')
    if (space < 0 || newline < space) return
    const kind = message[0]
    const from = message.slice(1, space)
    const payload = message.slice(newline + 1)
    if (from === this.node) return void this.echoes.get(versioned)?.[0]?.()
    this.heardOthers = true
    const list = kind === UP && payload.startsWith(',')
    let node = this.nodes.get(from)
    if (!node) {
      this.nodes.set(from, (node = { lastHeard: 0, lastSaidAt: 0, heartbeatMs: this.options.heartbeatMs, users: new Set() }))
      // A node met for the first time other than by its hello or its list (we joined after its hello, or
      // had let it go while it was only slow): ask for its list (everyone answers), and give ours.
      if (kind !== HELLO && kind !== BYE && !list) void this.hello()
    }
    node.lastHeard = Date.now()
    node.lastSaidAt = Number(message.slice(space + 1, newline))
    switch (kind) {
      case TOPIC: {
        this.metrics?.clusterLag.observe(Math.max(0, Date.now() - node.lastSaidAt) / 1000)
        const split = payload.indexOf('\n')
        this.peer.deliver(payload.slice(0, split), payload.slice(split + 1))
        break
      }
      case FOLLOW: {
        const [userId, dialogId, peerId] = payload.split(',').map(Number)
        this.peer.followRemote(userId!, dialogId!, peerId!)
        break
      }
      case SESSION_ENDED:
        this.peer.endSession(payload)
        break
      case BLOCKS: {
        const [a, b] = payload.split(',').map(Number)
        this.peer.forgetBlocks(a!, b!)
        break
      }
      case UP: {
        const ids = payload.split(',').filter((id) => id !== '').map(Number)
        if (list) this.replaceUsers(node, ids)
        else for (const id of ids) node.users.add(id)
        break
      }
      case DOWN:
        node.users.delete(Number(payload))
        break
      case HELLO:
        node.heartbeatMs = Number(payload)
        // Answered even when empty: it is how the new node learns this one exists.
        this.sendList()
        break
      case BEAT:
        node.heartbeatMs = Number(payload)
        break
      case BYE:
        this.forget(from)
        break
      case ASK:
        void this.send(ACK, `${from} ${payload}`)
        break
      case ACK: {
        const [asker, id] = payload.split(' ')
        if (asker === this.node) this.acknowledged(Number(id), from)
        break
      }
    }
  }

  private sweep(now: number): void {
    for (const [id, node] of this.nodes) if (now - node.lastHeard > 3 * node.heartbeatMs) this.forget(id)
  }

  /**
   * A node's whole list: whatever differs from what we knew is news this node missed (our subscription
   * dropped, or we had let the node go while it was only slow), which the peers here never heard either.
   */
  private replaceUsers(node: Node, ids: number[]): void {
    const now = new Set(ids)
    const appeared = ids.filter((userId) => !node.users.has(userId) && !this.isOnlineElsewhere(userId))
    const gone = [...node.users].filter((userId) => !now.has(userId))
    node.users = now
    const lost = gone.filter((userId) => !this.isOnlineElsewhere(userId))
    const at = new Date(node.lastSaidAt)
    if (lost.length > 0) this.peer.lost(lost, at)
    if (appeared.length > 0) this.peer.found(appeared, at)
  }

  private acknowledged(ask: number, from: string): void {
    const waiting = this.asks.get(ask)
    if (waiting?.waiting.delete(from) && waiting.waiting.size === 0) waiting.done()
  }

  private forget(id: string): void {
    const node = this.nodes.get(id)
    if (!node) return
    this.nodes.delete(id)
    for (const ask of this.asks.keys()) this.acknowledged(ask, id)
    const lost = [...node.users].filter((userId) => !this.isOnlineElsewhere(userId))
    if (lost.length > 0) this.peer.lost(lost, new Date(node.lastSaidAt))
  }
}
