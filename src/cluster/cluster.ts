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
   * Users who were online only on a node that stopped or fell silent, last seen `at` that node's goodbye
   * or last heartbeat: a time the node itself sent, so every other node agrees on it.
   */
  lost(userIds: number[], at: Date): void
  /** Users with live connections on this node (announced to a node that just joined). */
  localUsers(): number[]
  /** A session revoked on another node: this node closes its connections. */
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
// node's messages in order.

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
const UP = 'U'
const DOWN = 'D'
const HELLO = 'H'
const BEAT = 'B'
const BYE = 'X'
const BLOCKS = 'K'
/** How long a block change waits for its own message to come back through the channel. */
const ECHO_WAIT_MS = 1_000

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
 * announcements (and from everyone at once when a node joins), forgotten when the node says goodbye or
 * misses three heartbeats.
 */
export class Cluster {
  readonly node = randomBytes(6).toString('hex')
  private readonly nodes = new Map<string, Node>()
  private readonly heartbeat: ReturnType<typeof setInterval>
  /** Users whose last connection here closed, until our own DOWN comes back through the channel. */
  private readonly leaving = new Map<number, () => void>()
  /** Block changes sent, until they come back through the channel. */
  private readonly echoes = new Map<string, () => void>()
  private echoCounter = 0

  private constructor(
    private readonly pub: RedisClient,
    private readonly sub: RedisClient,
    private readonly options: ClusterOptions,
    private readonly peer: ClusterPeer,
    private readonly metrics: Metrics | undefined,
  ) {
    this.heartbeat = setInterval(() => {
      this.send(BEAT, String(options.heartbeatMs))
      this.sweep(Date.now())
    }, options.heartbeatMs)
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
    // Bun reconnects a dropped connection and keeps its listeners, but not the subscription on the
    // server: subscribe again (once: the old listener goes first), and since what was said meanwhile is
    // lost, ask every node to announce its users again.
    sub.onconnect = () => {
      sub
        .unsubscribe(options.channel, listener)
        .catch(() => {})
        .then(() => sub.subscribe(options.channel, listener))
        .then(
          () => cluster.send(HELLO, String(options.heartbeatMs)),
          (error) => logFault('cluster: subscribing again failed', error),
        )
    }
    cluster.send(HELLO, String(options.heartbeatMs))
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
    if (this.nodes.size > 0) this.send(TOPIC, `${topic}\n${frame}`)
  }

  follow(userId: number, dialogId: number, peerId: number): void {
    if (this.nodes.size > 0) this.send(FOLLOW, `${userId},${dialogId},${peerId}`)
  }

  sessionEnded(sessionId: string): void {
    if (this.nodes.size > 0) this.send(SESSION_ENDED, sessionId)
  }

  /**
   * A block between `a` and `b` changed. Resolves once the message has come back through the channel
   * (Redis delivers it to every node in the same pass), so the caller is answered after the other nodes
   * have heard of it, in practice; at most ECHO_WAIT_MS.
   */
  async blocksChanged(a: number, b: number): Promise<void> {
    if (this.nodes.size === 0) return
    const token = String(++this.echoCounter)
    const echoed = new Promise<void>((resolve) => {
      this.echoes.set(token, resolve)
      setTimeout(resolve, ECHO_WAIT_MS).unref()
    })
    if (await this.send(BLOCKS, `${a},${b},${token}`)) await echoed
    this.echoes.delete(token)
  }

  /** The user's first connection on this node opened. */
  online(userId: number): void {
    this.send(UP, String(userId))
  }

  /**
   * The user's last connection on this node closed. `settled` runs once our DOWN has come back through
   * the channel: Redis delivers a channel's messages in one order to everyone, so by then every UP
   * another node published before it has arrived here too, and `isOnlineElsewhere` can be trusted
   * (a device that moved to another node a moment ago is not reported offline).
   */
  offline(userId: number, settled: () => void): void {
    this.leaving.set(userId, settled)
    void this.send(DOWN, String(userId)).then((sent) => {
      if (!sent) this.settle(userId)
    })
  }

  /** Says goodbye (the others let this node's users go at once) and disconnects. */
  async leave(): Promise<void> {
    clearInterval(this.heartbeat)
    // Redis answers in order: once the goodbye is answered, everything published before it is too.
    await this.send(BYE, '')
    this.sub.close()
    this.pub.close()
  }

  /** Resolves false when Redis could not take it. */
  private send(kind: string, payload: string): Promise<boolean> {
    return this.pub.publish(this.options.channel, message(kind, this.node, payload)).then(
      () => true,
      (error) => {
        logFault('cluster: publishing to Redis failed', error)
        return false
      },
    )
  }

  private settle(userId: number): void {
    const settled = this.leaving.get(userId)
    this.leaving.delete(userId)
    settled?.()
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
    if (from === this.node) {
      if (kind === DOWN) this.settle(Number(payload))
      if (kind === BLOCKS) this.echoes.get(payload.split(',')[2]!)?.()
      return
    }
    let node = this.nodes.get(from)
    if (!node) {
      this.nodes.set(from, (node = { lastHeard: 0, lastSaidAt: 0, heartbeatMs: this.options.heartbeatMs, users: new Set() }))
      // A node met for the first time other than by its hello (we joined after its hello, or had let it
      // go while it was only slow): ask everyone to announce their users again.
      if (kind !== HELLO && kind !== BYE) this.send(HELLO, String(this.options.heartbeatMs))
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
      case UP:
        for (const id of payload.split(',')) if (id) node.users.add(Number(id))
        break
      case DOWN:
        node.users.delete(Number(payload))
        break
      case HELLO:
        node.heartbeatMs = Number(payload)
        // Answered even when empty: it is how the new node learns this one exists.
        this.send(UP, this.peer.localUsers().join(','))
        break
      case BEAT:
        node.heartbeatMs = Number(payload)
        break
      case BYE:
        this.forget(from)
        break
    }
  }

  private sweep(now: number): void {
    for (const [id, node] of this.nodes) if (now - node.lastHeard > 3 * node.heartbeatMs) this.forget(id)
  }

  private forget(id: string): void {
    const node = this.nodes.get(id)
    if (!node) return
    this.nodes.delete(id)
    const lost = [...node.users].filter((userId) => !this.isOnlineElsewhere(userId))
    if (lost.length > 0) this.peer.lost(lost, new Date(node.lastSaidAt))
  }
}
