import { describe, expect, test } from 'bun:test'
import { RedisClient } from 'bun'
import { APPLY_WAIT_MS } from '../src/cluster/cluster'
import type { Session } from './support/app'
import { eventually } from './support/cli'
import { keepSubscriberDown, lagging } from './support/cluster-inside'
import { clusterEnv, REDIS_URL, redisAvailable } from './support/redis'
import { startServer } from './support/server-process'
import { Client, sendFrame, startLive } from './support/ws'
import { on, peerOf, twoNodes } from './support/two-nodes'

const presenceOf = async (client: Client) => (await client.drain({ presence: true })).filter((f) => f.type === 'presence')

/**
 * What a cluster promises beyond delivery: a change a node answers for (a logout, a block, a new dialog) is
 * in force on every node by the time it answers; last_seen_at moves only with a presence event; a node
 * that cannot hear Redis, or was stalled, still tells the others what they must know and tells its own
 * clients nothing false. Postgres only: a cluster runs on Postgres (see README), and what is tested here
 * is the nodes' protocol, not the dialect.
 */
describe.skipIf(!redisAvailable)('cluster consistency (pg)', () => {
  const nodes = twoNodes('pg', 'consistency')

  const pair = async () => {
    const alice = await nodes.a.t.register()
    const bob = await nodes.b.t.register()
    const { body } = await nodes.a.t.call('POST', '/dialogs', { token: alice.access_token, body: { peer_user_id: bob.user.id } })
    return { alice, bob, dialogId: body.id as number }
  }
  /** Alice and bob with a dialog, alice watching on node A and bob online there; the online event alice got. */
  const watching = async () => {
    const alice = await nodes.a.t.register()
    const bob = await nodes.a.t.register()
    await nodes.a.t.call('POST', '/dialogs', { token: alice.access_token, body: { peer_user_id: bob.user.id } })
    const watcher = await on(nodes.a, alice)
    const bobA = await on(nodes.a, bob)
    const online = await watcher.next('presence')
    expect(online).toMatchObject({ user_id: bob.user.id, online: true })
    return { alice, bob, watcher, bobA, online }
  }

  describe('last_seen_at moves only with a presence event', () => {
    test('a second device opening and closing on the other node leaves peer.last_seen_at at the online event', async () => {
      const { alice, bob, watcher, bobA, online } = await watching()
      await eventually(async () => (await peerOf(nodes.b, alice)).online, 'node b sees bob online', 3_000)
      await Bun.sleep(20)
      const bobB = await on(nodes.b, bob)
      await Bun.sleep(300)
      expect(await presenceOf(watcher)).toEqual([])
      expect(await peerOf(nodes.a, alice)).toMatchObject({ online: true, last_seen_at: online.last_seen_at })
      await bobB.close()
      await Bun.sleep(300)
      expect(await presenceOf(watcher)).toEqual([])
      expect(await peerOf(nodes.a, alice)).toMatchObject({ online: true, last_seen_at: online.last_seen_at })
      await Promise.all([watcher.close(), bobA.close()])
    })

    test('a node shut down gracefully while its user stays online on another leaves peer.last_seen_at alone', async () => {
      const { alice, bob, watcher, bobA, online } = await watching()
      const third = await startLive('pg', clusterEnv(nodes.channel), nodes.database)
      try {
        const bobC = await Client.login(third.base, bob)
        await Bun.sleep(300)
        await third.running.shutdown()
        await bobC.closed
        await Bun.sleep(300)
        expect(await presenceOf(watcher)).toEqual([])
        expect(await peerOf(nodes.a, alice)).toMatchObject({ online: true, last_seen_at: online.last_seen_at })
      } finally {
        await third.close().catch(() => {})
      }
      await Promise.all([watcher.close(), bobA.close()])
    })
  })

  // Node B hears the channel 100 ms late in these: only waiting for it can make the answer true there.
  describe('a change is in force on every node when it is answered', () => {
    test('logout through node A: node B refuses the access token as soon as the 204 is answered', async () => {
      const alice = await nodes.a.t.register()
      // Node B has seen the session live (its cache remembers it).
      expect((await nodes.b.t.call('GET', '/me', { token: alice.access_token })).status).toBe(200)
      const undo = lagging(nodes.b, 100)
      try {
        expect((await nodes.a.t.call('POST', '/auth/logout', { body: { refresh_token: alice.refresh_token } })).status).toBe(204)
        expect((await nodes.b.t.call('GET', '/me', { token: alice.access_token })).status).toBe(401)
      } finally {
        undo()
      }
    })

    test('a dialog opened through node A: its first message, sent through node B, reaches the peer\'s device on B', async () => {
      const alice = await nodes.a.t.register()
      const bob = await nodes.b.t.register()
      const bobB = await on(nodes.b, bob)
      const undo = lagging(nodes.b, 100)
      try {
        const opened = await nodes.a.t.call('POST', '/dialogs', { token: alice.access_token, body: { peer_user_id: bob.user.id } })
        expect(opened.status).toBe(201)
        const sent = await nodes.b.t.call('POST', `/dialogs/${opened.body.id}/messages`, {
          token: alice.access_token,
          body: { client_msg_id: 'first', type: 'text', text: 'hello' },
        })
        expect(sent.status).toBe(201)
        expect((await bobB.next('dialog:new')).dialog).toMatchObject({ id: opened.body.id })
        expect((await bobB.next('message:new')).message).toMatchObject({ id: sent.body.id })
      } finally {
        undo()
        await bobB.close()
      }
    })

    test('a block made through node A: a send through node B after the 204 is refused', async () => {
      const { alice, bob, dialogId } = await pair()
      const aliceA = await on(nodes.a, alice)
      const bobB = await on(nodes.b, bob)
      // Node B has bob's blocks cached (a send reads them).
      bobB.send(sendFrame(dialogId, 'pre'))
      await bobB.next('message:ack')
      await aliceA.next('message:new')
      const undo = lagging(nodes.b, 100)
      try {
        expect((await nodes.a.t.call('PUT', `/users/${bob.user.id}/block`, { token: alice.access_token })).status).toBe(204)
        bobB.send(sendFrame(dialogId, 'post'))
        expect(await bobB.next('error')).toMatchObject({ code: 'blocked' })
        expect((await bobB.drain()).filter((f) => f.type === 'message:ack')).toEqual([])
        await Bun.sleep(300)
        expect((await aliceA.drain()).filter((f) => f.type === 'message:new')).toEqual([])
      } finally {
        undo()
        await Promise.all([aliceA.close(), bobB.close()])
      }
    })
  })

  describe('waiting for the other nodes is bounded', () => {
    /** A node of the release before acknowledgements, as the others see it: it beats (once a minute) and never answers. */
    /**
     * Runs `work` while a node of the release before acknowledgements is in the cluster, as the others see
     * it (it beats once a minute and never answers), with alice signed up on node A.
     */
    const withOldNode = async (work: (old: { bye(): Promise<number> }, alice: Session) => Promise<void>) => {
      const redis = new RedisClient(REDIS_URL)
      const id = `old${Math.random().toString(36).slice(2, 8)}`
      await redis.publish(nodes.channel, `1|B${id} ${Date.now()}\n60000`)
      const old = { bye: () => redis.publish(nodes.channel, `1|X${id} ${Date.now()}\n`) }
      try {
        const alice = await nodes.a.t.register()
        await Bun.sleep(100)
        await work(old, alice)
      } finally {
        await old.bye()
        redis.close()
      }
    }

    test('a node that never acknowledges holds a logout for the wait only, which is counted', () =>
      withOldNode(async (_, alice) => {
        const started = performance.now()
        expect((await nodes.a.t.call('POST', '/auth/logout', { body: { refresh_token: alice.refresh_token } })).status).toBe(204)
        const took = performance.now() - started
        expect(took).toBeGreaterThanOrEqual(APPLY_WAIT_MS - 50)
        expect(took).toBeLessThan(APPLY_WAIT_MS + 1_000)
        const metrics = await (await fetch(`${nodes.a.base.replace('ws:', 'http:')}/metrics`)).text()
        expect(metrics).toMatch(/chat_cluster_unacknowledged_total [1-9]/)
      }))

    test('a node that says goodbye while a logout waits for it counts as done', () =>
      withOldNode(async (old, alice) => {
        const started = performance.now()
        const logout = nodes.a.t.call('POST', '/auth/logout', { body: { refresh_token: alice.refresh_token } })
        await Bun.sleep(200)
        await old.bye()
        expect((await logout).status).toBe(204)
        expect(performance.now() - started).toBeLessThan(APPLY_WAIT_MS / 2)
      }))
  })

  describe('a node that cannot hear Redis still publishes to it', () => {
    // Node A's subscription stays down past three of its heartbeats (100 ms): it has let node B go.
    test('node A\'s subscription down (its publisher up): a message sent through A still reaches node B\'s clients', async () => {
      const { alice, bob, dialogId } = await pair()
      const aliceA = await on(nodes.a, alice)
      const bobB = await on(nodes.b, bob)
      const down = keepSubscriberDown(nodes.a, 1_500)
      await Bun.sleep(800)
      aliceA.send(sendFrame(dialogId, 'while-deaf'))
      const ack = (await aliceA.next('message:ack')).message
      // Node B's own Redis connections are fine: bob is not told to catch up, so this is his only chance.
      expect((await bobB.next('message:new')).message).toEqual(ack)
      await down
      await Promise.all([aliceA.close(), bobB.close()])
    })

    test('a block made while node B cannot hear Redis is in force on B once it hears again', async () => {
      const { alice, bob, dialogId } = await pair()
      const bobB = await on(nodes.b, bob)
      // Node B has bob's blocks cached (a send reads them).
      bobB.send(sendFrame(dialogId, 'pre'))
      await bobB.next('message:ack')
      const down = keepSubscriberDown(nodes.b, 1_500)
      await Bun.sleep(300)
      // Node B never hears of it (nor acknowledges: the answer waits out the bound).
      expect((await nodes.a.t.call('PUT', `/users/${bob.user.id}/block`, { token: alice.access_token })).status).toBe(204)
      await down
      await eventually(() => nodes.b.t.core.hub.clusterJoined(), 'node B reconnected to Redis')
      await Bun.sleep(500)
      bobB.send(sendFrame(dialogId, 'post'))
      expect(await bobB.next('error')).toMatchObject({ code: 'blocked', client_msg_id: 'post' })
      await bobB.close()
    })

    test('a logout while node B cannot hear Redis: once it hears again, B refuses the access token and closes the session\'s socket', async () => {
      const alice = await nodes.a.t.register()
      const me = () => nodes.b.t.call('GET', '/me', { token: alice.access_token })
      // Node B knows the session live (REST answers it from memory), and holds a socket of it.
      expect((await me()).status).toBe(200)
      const onB = await on(nodes.b, alice)
      const down = keepSubscriberDown(nodes.b, 1_500)
      await Bun.sleep(300)
      expect((await nodes.a.t.call('POST', '/auth/logout', { body: { refresh_token: alice.refresh_token } })).status).toBe(204)
      await down
      await eventually(() => nodes.b.t.core.hub.clusterJoined(), 'node B reconnected to Redis')
      // Not at the next periodic check (SESSION_CHECK_MS, not running here): when B hears again.
      expect(await onB.next('error')).toMatchObject({ code: 'unauthorized' })
      expect((await onB.closed).code).toBe(4401)
      expect((await me()).status).toBe(401)
    })

    test('node A\'s subscription down (its publisher up): a logout through A closes the session\'s socket on node B', async () => {
      const alice = await nodes.a.t.register()
      const onB = await on(nodes.b, alice)
      const down = keepSubscriberDown(nodes.a, 1_500)
      await Bun.sleep(800)
      expect((await nodes.a.t.call('POST', '/auth/logout', { body: { refresh_token: alice.refresh_token } })).status).toBe(204)
      expect(await onB.next('error')).toMatchObject({ code: 'unauthorized' })
      expect((await onB.closed).code).toBe(4401)
      await down
    })
  })

  test('a node stalled past three heartbeats tells its own clients nothing about users on other nodes who never changed', async () => {
    const alice = await nodes.a.t.register()
    const carol = await nodes.a.t.register()
    await nodes.a.t.call('POST', '/dialogs', { token: alice.access_token, body: { peer_user_id: carol.user.id } })
    const aliceA = await on(nodes.a, alice)
    const carolA = await on(nodes.a, carol)
    // Told everywhere already (node A published it), so it cannot reach the new node late.
    expect(await aliceA.next('presence')).toMatchObject({ user_id: carol.user.id, online: true })
    const node = await startServer(nodes.database.target, clusterEnv(nodes.channel))
    try {
      // Alice connects once the new node has heard the others' lists (else carol is news to it: "found").
      await Bun.sleep(300)
      const aliceC = await Client.login(`ws://${node.base}`, alice)
      await Bun.sleep(300)
      await aliceC.drain({ presence: true })
      node.proc.kill('SIGSTOP')
      await Bun.sleep(1_000)
      node.proc.kill('SIGCONT')
      await Bun.sleep(1_500)
      // Carol never left: alice, on the stalled node, must not hear otherwise.
      expect((await presenceOf(aliceC)).filter((f) => f.user_id === carol.user.id)).toEqual([])
      await aliceC.close()
    } finally {
      node.proc.kill('SIGCONT')
      node.proc.kill('SIGTERM')
      await node.exited
      await Promise.all([aliceA.close(), carolA.close()])
    }
  })
})

/*
 * A node that has just joined knows no other node until one speaks, which used to make it take itself for
 * alone: it published nothing. On SQLite the first requests are answered within that Redis round trip, so
 * the window is met every time there (on Postgres only sometimes); what is tested is the nodes' protocol.
 */
describe.skipIf(!redisAvailable)('a node that has just joined (sqlite)', () => {
  const nodes = twoNodes('sqlite', 'joining')

  test('a dialog opened through a node the moment it has joined reaches the peer on another node, and so do its messages', async () => {
    const alice = await nodes.a.t.register()
    const bob = await nodes.a.t.register()
    const aliceOnA = await Client.login(nodes.a.base, alice)
    await aliceOnA.drain()
    const c = await startLive('sqlite', clusterEnv(nodes.channel), nodes.database)
    try {
      const opened = await c.t.call('POST', '/dialogs', { token: bob.access_token, body: { peer_user_id: alice.user.id } })
      expect(opened.status).toBe(201)
      const sent = await c.t.call('POST', `/dialogs/${opened.body.id}/messages`, {
        token: bob.access_token,
        body: { client_msg_id: 'first', type: 'text', text: 'hello from the new node' },
      })
      expect(sent.status).toBe(201)
      expect((await aliceOnA.next('dialog:new')).dialog.id).toBe(opened.body.id)
      expect((await aliceOnA.next('message:new')).message.client_msg_id).toBe('first')
    } finally {
      await aliceOnA.close()
      await c.close()
    }
  })
})
