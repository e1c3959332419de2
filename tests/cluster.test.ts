import { describe, expect, test } from 'bun:test'
import type { Session } from './support/app'
import { dialects, freshDatabase } from './support/databases'
import { RedisClient } from 'bun'
import { eventually } from './support/cli'
import { keepSubscriberDown, lagging } from './support/cluster-inside'
import { clusterEnv, REDIS_URL, redisAvailable } from './support/redis'
import { startServer } from './support/server-process'
import { Client, sendFrame, type LiveServer } from './support/ws'
import { on, peerOf, twoNodes } from './support/two-nodes'

const peerOnline = async (node: LiveServer, session: Session) => (await peerOf(node, session)).online

/** Two nodes on one database, joined over Redis: each client talks to the node it connected to. */
describe.skipIf(!redisAvailable).each(dialects)('cluster of two nodes on %s', (dialect) => {
  const nodes = twoNodes(dialect, 'cluster')

  test('a dialog opened on one node reaches the peer on the other, and then its messages, receipts and typing do', async () => {
    const alice = await nodes.a.t.register()
    const bob = await nodes.b.t.register()
    const [alice1, alice2, bob1] = await Promise.all([on(nodes.a, alice), on(nodes.b, alice), on(nodes.b, bob)])

    const opened = await nodes.a.t.call('POST', '/dialogs', { token: alice.access_token, body: { peer_user_id: bob.user.id } })
    expect(opened.status).toBe(201)
    const dialogId = opened.body.id
    expect((await bob1.next('dialog:new')).dialog).toMatchObject({ id: dialogId, peer: { id: alice.user.id } })
    expect((await alice2.next('dialog:new')).dialog).toMatchObject({ id: dialogId, peer: { id: bob.user.id } })

    // Sent on node A: the ack to the sender there; message:new to the peer and the sender's other device on B.
    alice1.send(sendFrame(dialogId, 'x-1', 'across'))
    const ack = await alice1.next('message:ack')
    expect(ack.message).toMatchObject({ dialog_id: dialogId, seq: 1, text: 'across' })
    expect(await bob1.next('message:new')).toEqual({ type: 'message:new', message: ack.message })
    expect(await alice2.next('message:new')).toEqual({ type: 'message:new', message: ack.message })
    expect((await alice1.drain()).filter((f) => f.type === 'message:new')).toEqual([])

    // Sent on node B, answered the other way.
    bob1.send(sendFrame(dialogId, 'y-1', 'back'))
    const reply = await bob1.next('message:ack')
    expect(reply.message.seq).toBe(2)
    expect((await alice1.next('message:new')).message).toEqual(reply.message)

    bob1.send({ type: 'message:read', dialog_id: dialogId, last_read_message_id: ack.message.id })
    expect(await alice1.next('message:status')).toMatchObject({ dialog_id: dialogId, message_id: ack.message.id, status: 'read' })

    bob1.send({ type: 'typing', dialog_id: dialogId, state: 'start' })
    expect(await alice1.next('typing')).toEqual({ type: 'typing', dialog_id: dialogId, user_id: bob.user.id, state: 'start' })
    await Promise.all([alice1.close(), alice2.close(), bob1.close()])
  })

  test('a session revoked through one node closes its connections on the other', async () => {
    const alice = await nodes.a.t.register()
    const onB = await on(nodes.b, alice)
    expect((await nodes.a.t.call('POST', '/auth/logout', { body: { refresh_token: alice.refresh_token } })).status).toBe(204)
    expect(await onB.next('error')).toMatchObject({ code: 'unauthorized' })
    expect((await onB.closed).code).toBe(4401)
  })

  test('presence counts connections on every node: online with the first anywhere, offline with the last', async () => {
    const alice = await nodes.a.t.register()
    const bob = await nodes.b.t.register()
    await nodes.a.t.call('POST', '/dialogs', { token: alice.access_token, body: { peer_user_id: bob.user.id } })
    const watcher = await on(nodes.a, alice)

    const bobOnB = await on(nodes.b, bob)
    expect(await watcher.next('presence')).toMatchObject({ user_id: bob.user.id, online: true })
    expect(await peerOnline(nodes.a, alice)).toBe(true)

    // A second device on the other node, then the first closes: still online, nobody is told otherwise.
    const bobOnA = await on(nodes.a, bob)
    await bobOnB.close()
    await Bun.sleep(200)
    expect(await peerOnline(nodes.a, alice)).toBe(true)
    expect((await watcher.drain({ presence: true })).filter((f) => f.online === false)).toEqual([])

    await bobOnA.close()
    expect(await watcher.next('presence')).toMatchObject({ user_id: bob.user.id, online: false })
    expect(await peerOnline(nodes.a, alice)).toBe(false)
    expect(await peerOnline(nodes.b, alice)).toBe(false)
    await watcher.close()
  })

  test('when Redis drops the nodes\' subscriptions, they subscribe again and messages cross once more', async () => {
    const alice = await nodes.a.t.register()
    const bob = await nodes.b.t.register()
    const { body: opened } = await nodes.a.t.call('POST', '/dialogs', { token: alice.access_token, body: { peer_user_id: bob.user.id } })
    const [aliceWs, bobWs] = await Promise.all([on(nodes.a, alice), on(nodes.b, bob)])
    const admin = new RedisClient(REDIS_URL)
    await admin.send('CLIENT', ['KILL', 'TYPE', 'pubsub'])
    admin.close()
    // Until the subscription is back, what is said is lost (clients catch up with after_id): keep sending.
    let n = 0
    let received: Record<string, any> | undefined
    const deadline = Date.now() + 8_000
    while (!received && Date.now() < deadline) {
      aliceWs.send(sendFrame(opened.id, `again-${n++}`))
      await aliceWs.next('message:ack')
      received = await bobWs.next('message:new', 250).catch(() => undefined)
    }
    expect(received?.message.dialog_id).toBe(opened.id)
    // Subscribed once again, not twice: each message arrives once.
    aliceWs.send(sendFrame(opened.id, 'once'))
    aliceWs.send(sendFrame(opened.id, 'last'))
    const texts: string[] = []
    while (texts.at(-1) !== 'text of last') texts.push((await bobWs.next('message:new')).message.text)
    expect(texts.filter((t) => t === 'text of once')).toHaveLength(1)
    expect(await peerOnline(nodes.a, alice)).toBe(true)
    await Promise.all([aliceWs.close(), bobWs.close()])
  })

  test('a message of another cluster protocol version (or of none) is ignored and counted, so nodes of two releases never misread each other', async () => {
    const alice = await nodes.a.t.register()
    const onA = await on(nodes.a, alice)
    const redis = new RedisClient(REDIS_URL)
    const typing = (text: string) => `user:${alice.user.id}\n{"type":"typing","dialog_id":1,"user_id":2,"state":"${text}"}`
    try {
      // A node of a later release (version 2), and one from before versions: both would forward a frame.
      await redis.publish(nodes.channel, `2|Tfuture ${Date.now()}\n${typing('v2')}`)
      await redis.publish(nodes.channel, `Told ${Date.now()}\n${typing('none')}`)
      // The same message in this release's version is delivered: the two before it were not.
      await redis.publish(nodes.channel, `1|Tcurrent ${Date.now()}\n${typing('v1')}`)
      expect(await onA.next('typing')).toMatchObject({ state: 'v1' })
      expect((await onA.drain()).filter((f) => f.type === 'typing')).toEqual([])
      const metrics = await (await fetch(`${nodes.a.base.replace('ws:', 'http:')}/metrics`)).text()
      expect(metrics).toContain('chat_cluster_messages_ignored_total{version="2"} 1')
      expect(metrics).toContain('chat_cluster_messages_ignored_total{version="none"} 1')
    } finally {
      redis.close()
      await onA.close()
    }
  })

  test('a node killed with SIGKILL: after three missed heartbeats the others tell its users\' peers they are offline', async () => {
    const alice = await nodes.a.t.register()
    const bob = await nodes.a.t.register()
    await nodes.a.t.call('POST', '/dialogs', { token: alice.access_token, body: { peer_user_id: bob.user.id } })
    const watcher = await on(nodes.a, alice)

    const node = await startServer(nodes.database.target, clusterEnv(nodes.channel))
    const bobThere = await Client.login(`ws://${node.base}`, bob)
    expect(await watcher.next('presence')).toMatchObject({ user_id: bob.user.id, online: true })
    // Node b hears of it over its own Redis subscription, which may come a moment after node a's.
    await eventually(() => peerOnline(nodes.b, alice), 'node b to see bob online', 2_000)

    node.proc.kill('SIGKILL')
    await node.exited
    const offline = await watcher.next('presence', 5_000)
    expect(offline).toMatchObject({ user_id: bob.user.id, online: false })
    expect(await peerOf(nodes.a, alice)).toMatchObject({ online: false, last_seen_at: offline.last_seen_at })
    await Promise.all([watcher.close(), bobThere.closed])
  })

  test('a node stopped with SIGTERM says goodbye: its users\' peers hear at once, not after the heartbeats', async () => {
    const alice = await nodes.a.t.register()
    const bob = await nodes.a.t.register()
    await nodes.a.t.call('POST', '/dialogs', { token: alice.access_token, body: { peer_user_id: bob.user.id } })
    const watcher = await on(nodes.a, alice)
    // Heartbeats of a minute: only the goodbye can explain a quick offline.
    const node = await startServer(nodes.database.target, clusterEnv(nodes.channel, 60_000))
    const bobThere = await Client.login(`ws://${node.base}`, bob)
    expect(await watcher.next('presence')).toMatchObject({ user_id: bob.user.id, online: true })

    node.proc.kill('SIGTERM')
    expect(await node.exited).toBe(0)
    expect(await watcher.next('presence', 2_000)).toMatchObject({ user_id: bob.user.id, online: false })
    await Promise.all([watcher.close(), bobThere.closed])
  })

  test('a node that stalls past three heartbeats and comes back: its users\' peers, told they went offline, are told they are online again', async () => {
    const alice = await nodes.a.t.register()
    const bob = await nodes.a.t.register()
    await nodes.a.t.call('POST', '/dialogs', { token: alice.access_token, body: { peer_user_id: bob.user.id } })
    const watcher = await on(nodes.a, alice)
    const node = await startServer(nodes.database.target, clusterEnv(nodes.channel))
    try {
      const bobThere = await Client.login(`ws://${node.base}`, bob)
      expect(await watcher.next('presence')).toMatchObject({ user_id: bob.user.id, online: true })
      // Its event loop stalls (a long GC pause, a VM frozen): let go after three heartbeats, like a dead one.
      node.proc.kill('SIGSTOP')
      expect(await watcher.next('presence', 3_000)).toMatchObject({ user_id: bob.user.id, online: false })
      node.proc.kill('SIGCONT')
      // Heard again, it is asked for its list (HELLO), which has bob: his peers here hear he is back.
      const back = await watcher.next('presence', 3_000)
      expect(back).toMatchObject({ user_id: bob.user.id, online: true })
      expect(await peerOf(nodes.a, alice)).toMatchObject({ online: true, last_seen_at: back.last_seen_at })
      expect((await watcher.drain({ presence: true })).filter((f) => f.user_id === bob.user.id)).toEqual([])
      await Promise.all([watcher.close(), bobThere.close()])
    } finally {
      node.proc.kill('SIGCONT')
      node.proc.kill('SIGTERM')
      await node.exited
    }
  })

  test('a device closing on one node while another opens on the other: the peers are left knowing the user is online', async () => {
    const alice = await nodes.a.t.register()
    const bob = await nodes.a.t.register()
    await nodes.a.t.call('POST', '/dialogs', { token: alice.access_token, body: { peer_user_id: bob.user.id } })
    const watcher = await on(nodes.a, alice)
    const old = await on(nodes.a, bob)
    expect(await watcher.next('presence')).toMatchObject({ user_id: bob.user.id, online: true })
    await eventually(() => peerOnline(nodes.b, alice), 'node b to see bob online', 2_000)
    // Node b hears the channel 100 ms late (a busy event loop, a slower link), in the same order: when bob
    // opens there, it still believes him online on node a, which has meanwhile told his peers he left.
    const undo = lagging(nodes.b, 100)
    try {
      await old.close()
      await Bun.sleep(30)
      const fresh = await on(nodes.b, bob)
      await Bun.sleep(500)
      expect(await peerOnline(nodes.a, alice)).toBe(true)
      expect(await peerOnline(nodes.b, alice)).toBe(true)
      // Whichever node spoke later (here b) decides, once its own word came back through the channel.
      const presence = (await watcher.drain({ presence: true })).filter((f) => f.user_id === bob.user.id)
      expect(presence.at(-1)).toMatchObject({ online: true })
      await fresh.close()
    } finally {
      undo()
      await watcher.close()
    }
  })
})

describe.skipIf(!redisAvailable).each(dialects)('cluster on %s: a node whose Redis subscription drops for a moment', (dialect) => {
  // Heartbeats of 2 s: a node lets the other go only after 6 s of silence, so what it knew before a Redis
  // drop of a second outlives the drop, and only the way back can set it right.
  const nodes = twoNodes(dialect, 'blip', 2_000)

  test('a user who left meanwhile: the node asks for every node\'s list when back, and tells the peers it has', async () => {
    const alice = await nodes.a.t.register()
    const bob = await nodes.b.t.register()
    await nodes.a.t.call('POST', '/dialogs', { token: alice.access_token, body: { peer_user_id: bob.user.id } })
    const watcher = await on(nodes.a, alice)
    const bobWs = await on(nodes.b, bob)
    expect(await watcher.next('presence')).toMatchObject({ user_id: bob.user.id, online: true })

    const down = keepSubscriberDown(nodes.a, 800)
    await Bun.sleep(50)
    await bobWs.close()
    await down
    // Node b kept beating, so node a would never let its stale view of b go: b's list sets it right, well
    // before three heartbeats.
    const offline = await watcher.next('presence', 3_000)
    expect(offline).toMatchObject({ user_id: bob.user.id, online: false })
    expect(nodes.a.t.core.hub.clusterJoined()).toBe(true)
    expect(await peerOf(nodes.a, alice)).toMatchObject({ online: false, last_seen_at: offline.last_seen_at })
    expect(await peerOnline(nodes.b, alice)).toBe(false)
    await watcher.close()
  })

  test('a dialog created meanwhile on the other node: once back, the node follows it for the connections it has', async () => {
    const alice = await nodes.a.t.register()
    const bob = await nodes.b.t.register()
    const aliceWs = await on(nodes.a, alice)
    const bobWs = await on(nodes.b, bob)
    const down = keepSubscriberDown(nodes.a, 800)
    await Bun.sleep(50)
    const opened = await nodes.b.t.call('POST', '/dialogs', { token: bob.access_token, body: { peer_user_id: alice.user.id } })
    expect(opened.status).toBe(201)
    await down
    // Until node a has subscribed again and read the dialog, what is said is lost (clients catch up with
    // after_id): keep sending.
    let n = 0
    let received: Record<string, any> | undefined
    const deadline = Date.now() + 5_000
    while (!received && Date.now() < deadline) {
      bobWs.send(sendFrame(opened.body.id, `after-blip-${n++}`))
      await bobWs.next('message:ack')
      received = await aliceWs.next('message:new', 250).catch(() => undefined)
    }
    expect(received?.message).toMatchObject({ dialog_id: opened.body.id, sender_id: bob.user.id })
    await Promise.all([aliceWs.close(), bobWs.close()])
  })
})

describe.skipIf(!redisAvailable)('two processes sharing one port (REUSE_PORT)', () => {
  test('both start on the same port, and every pair talks whichever node the kernel gave each connection', async () => {
    const database = await freshDatabase('sqlite')
    const probe = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
    const port = String(probe.port)
    probe.stop(true)
    const env = { ...clusterEnv(`chat-test:reuse:${process.pid}:${Math.random()}`), PORT: port, REUSE_PORT: 'true' }
    const nodes = [await startServer(database.target, env), await startServer(database.target, env)]
    try {
      expect(nodes.map((n) => n.base)).toEqual([`127.0.0.1:${port}`, `127.0.0.1:${port}`])
      const base = `127.0.0.1:${port}`
      const register = async (name: string) =>
        (await fetch(`http://${base}/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: name, password: 'correct horse battery' }) })).json() as Promise<Session>
      for (let i = 0; i < 8; i++) {
        const [alice, bob] = await Promise.all([register(`reuse_a${i}_${process.pid}`), register(`reuse_b${i}_${process.pid}`)])
        const [aliceWs, bobWs] = await Promise.all([Client.login(`ws://${base}`, alice), Client.login(`ws://${base}`, bob)])
        const opened = await fetch(`http://${base}/dialogs`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${alice.access_token}` },
          body: JSON.stringify({ peer_user_id: bob.user.id }),
        })
        const { id: dialogId } = (await opened.json()) as { id: number }
        await bobWs.next('dialog:new')
        aliceWs.send(sendFrame(dialogId, 'hi'))
        const ack = await aliceWs.next('message:ack')
        expect(await bobWs.next('message:new')).toEqual({ type: 'message:new', message: ack.message })
        await Promise.all([aliceWs.close(), bobWs.close()])
      }
    } finally {
      for (const node of nodes) node.proc.kill('SIGTERM')
      await Promise.all(nodes.map((n) => n.exited))
      await database.drop()
    }
  })
})
