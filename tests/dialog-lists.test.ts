import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'bun:test'
import { ChatClient, type Session as ClientSession } from 'bun-chat/client'
import { setLastSeen } from '../src/users/store'
import { createTestApp, expectContractError, uniqueName, type Session, type TestApp } from './support/app'
import { dialects, freshDatabase, type FreshDatabase } from './support/databases'
import { http, startServer, type ServerProcess } from './support/server-process'
import { twoApps } from './support/two-apps'

/**
 * A dialog list, once read, is used again while the user's dialogsStamp is unchanged, and on SQLite without
 * reading even that while this process reported no change to the user's dialogs or peers (DialogService.list,
 * LocalChanges): every change the list shows must still show at once, whether the node answering made it or
 * another did. Two apps on one database stand for two nodes (no cluster channel: the stamp is in the
 * database; on SQLite the other's commits move data_version).
 */
describe.each(dialects)('dialog lists kept between changes on %s', (dialect) => {
  let a: TestApp, b: TestApp, alice: Session, bob: Session, dialogId: number, close: () => Promise<void>
  beforeEach(async () => void ({ a, b, alice, bob, dialogId, close } = await twoApps(dialect)))
  afterEach(() => close())

  const list = async () => {
    const res = await a.call('GET', '/dialogs', { token: alice.access_token })
    expect(res.status).toBe(200)
    return res.body.dialogs as any[]
  }
  const one = async () => (await list()).find((d) => d.id === dialogId)
  const send = async (on: TestApp, who: Session, id: string, text: string) =>
    (await on.call('POST', `/dialogs/${dialogId}/messages`, { token: who.access_token, body: { client_msg_id: id, type: 'text', text } })).body

  test.each(['this node', 'the other node'])('messages, edits, reactions, deletes, reads both ways, last seen and new dialogs show on the next read, made by %s', async (which) => {
    const on = which === 'this node' ? a : b
    expect(await one()).toMatchObject({ last_message: null, unread_count: 0 })
    expect(await list()).toEqual(await list())

    const first = await send(on, bob, 'l1', 'hello')
    expect(await one()).toMatchObject({ last_message: { id: first.id, text: 'hello', status: 'sent' }, unread_count: 1 })
    const second = await send(on, bob, 'l2', 'again')
    expect(await one()).toMatchObject({ last_message: { id: second.id }, unread_count: 2 })

    expect((await on.call('PATCH', `/dialogs/${dialogId}/messages/${second.id}`, { token: bob.access_token, body: { text: 'once more' } })).status).toBe(200)
    expect((await one()).last_message.text).toBe('once more')
    expect((await on.call('PUT', `/dialogs/${dialogId}/messages/${second.id}/reactions/${encodeURIComponent('🎉')}`, { token: bob.access_token })).status).toBe(204)
    expect((await one()).last_message.reactions).toEqual([{ emoji: '🎉', user_ids: [bob.user.id] }])

    // Delivered first, so that the reads below move the read watermarks alone.
    await on.core.messages.delivered(alice.user.id, second.id, new Date())
    expect((await one()).last_message).toMatchObject({ id: second.id, status: 'delivered' })
    expect((await on.call('POST', `/dialogs/${dialogId}/read_up_to`, { token: alice.access_token, body: { last_read_message_id: first.id } })).status).toBe(200)
    expect(await one()).toMatchObject({ unread_count: 1, last_read_message_id: first.id })

    const mine = await send(on, alice, 'l3', 'mine')
    expect((await one()).last_message).toMatchObject({ id: mine.id, status: 'sent' })
    await on.core.messages.delivered(bob.user.id, mine.id, new Date())
    expect(await one()).toMatchObject({ last_message: { id: mine.id, status: 'delivered' }, peer_last_delivered_message_id: mine.id })
    expect((await on.call('POST', `/dialogs/${dialogId}/read_up_to`, { token: bob.access_token, body: { last_read_message_id: mine.id } })).status).toBe(200)
    expect(await one()).toMatchObject({ last_message: { id: mine.id, status: 'read' }, peer_last_read_message_id: mine.id })

    expect((await on.call('DELETE', `/dialogs/${dialogId}/messages/${mine.id}`, { token: alice.access_token })).status).toBe(204)
    expect((await one()).last_message).toMatchObject({ id: mine.id, deleted: true, text: '' })

    const seen = new Date(Date.now() - 1000)
    await on.core.presence.seen([bob.user.id], seen)
    expect((await one()).peer.last_seen_at).toBe(seen.toISOString())

    const carol = await on.register()
    const opened = await on.call('POST', '/dialogs', { token: carol.access_token, body: { peer_user_id: alice.user.id } })
    expect((await list()).map((d) => d.id)).toEqual([opened.body.id, dialogId])
  })

  test('a change no service reported (written straight to the database by this node) shows within two seconds', async () => {
    expect((await one()).peer.last_seen_at).toBeNull()
    const seen = new Date(Date.now() - 5000)
    await a.db.tx((s) => setLastSeen(s, [bob.user.id], seen))
    // LocalChanges trusts a quiet list for at most TRUST_MS (2 s) before checking the database again.
    await Bun.sleep(2100)
    expect((await one()).peer.last_seen_at).toBe(seen.toISOString())
  })
})

/** A dialog's activity time, as the list orders by it: its last message's time, else its creation time. */
const activityOf = (d: { created_at: string; last_message: { created_at: string } | null }) => d.last_message?.created_at ?? d.created_at
/** The list's order: activity time, newest first, then dialog id, highest first. */
const listOrder = (a: any, b: any) => (activityOf(b) === activityOf(a) ? b.id - a.id : activityOf(b) < activityOf(a) ? -1 : 1)

/**
 * The writer stamps one time on a whole batch of sends, so a burst of sends into many dialogs gives them one
 * activity time. A page boundary inside such a tie must skip nothing: the list is ordered by (activity time,
 * dialog id), and `before` + `before_id` is a cursor in that order (an extension beyond the contract).
 */
describe.each(dialects)('dialog list pages across tied activity times on %s', (dialect) => {
  let app: TestApp, me: Session
  /** The dialogs of one burst (all with one activity time), and the whole list as one page. */
  let tied: number[], all: any[], tie: string
  // A batch waits 1 s for more, so the burst below is one batch (one created_at) even on a loaded machine.
  beforeAll(async () => {
    app = await createTestApp(dialect, { WRITER_BATCH_WAIT_MS: '1000' })
    me = await app.register()
    const open = async () => {
      const peer = await app.register()
      return (await app.call('POST', '/dialogs', { token: me.access_token, body: { peer_user_id: peer.user.id } })).body.id as number
    }
    const quiet = [await open(), await open()]
    tied = []
    for (let i = 0; i < 10; i++) tied.push(await open())
    const later = [await open(), await open()]
    const send = (dialogId: number, id: string) =>
      app.call('POST', `/dialogs/${dialogId}/messages`, { token: me.access_token, body: { client_msg_id: id, type: 'text', text: 'hi' } })
    const burst = await Promise.all(tied.map((d) => send(d, 'burst')))
    expect(burst.map((r) => r.status)).toEqual(tied.map(() => 201))
    tie = burst[0]!.body.created_at
    expect(new Set(burst.map((r) => r.body.created_at))).toEqual(new Set([tie]))
    for (const d of later) await send(d, 'later')
    all = (await app.call('GET', '/dialogs?limit=100', { token: me.access_token })).body.dialogs
    expect(all.length).toBe(quiet.length + tied.length + later.length)
  }, 30_000)
  afterAll(() => app.close())

  const page = async (query: string) => {
    const res = await app.call('GET', `/dialogs?${query}`, { token: me.access_token })
    expect(res.status).toBe(200)
    return res.body.dialogs as any[]
  }
  const cursorOf = (d: any) => `before=${encodeURIComponent(activityOf(d))}&before_id=${d.id}`

  test('paging with a limit smaller than the tie gives every dialog exactly once, in order', async () => {
    // The order: activity time, then dialog id, both descending.
    expect(all.map((d) => d.id)).toEqual([...all].sort(listOrder).map((d) => d.id))
    expect(all.filter((d) => activityOf(d) === tie).map((d) => d.id)).toEqual([...tied].sort((a, b) => b - a))
    // `before` alone first (kept lists must not answer the cursor's pages with it): strictly older, the whole tie left out.
    expect((await page(`limit=3&before=${encodeURIComponent(tie)}`)).map((d) => d.id)).toEqual(all.filter((d) => activityOf(d) < tie).slice(0, 3).map((d) => d.id))
    for (const limit of [1, 3, 4]) {
      const seen: number[] = []
      let query = `limit=${limit}`
      for (let pages = 0; pages < 100; pages++) {
        const got = await page(query)
        seen.push(...got.map((d) => d.id))
        if (got.length < limit) break
        query = `limit=${limit}&${cursorOf(got.at(-1))}`
      }
      expect(seen).toEqual(all.map((d) => d.id))
    }
  })

  test('a cursor inside the tie starts right after its dialog', async () => {
    const at = all.findIndex((d) => d.id === tied[4])
    expect((await page(`limit=100&${cursorOf(all[at])}`)).map((d) => d.id)).toEqual(all.slice(at + 1).map((d) => d.id))
    // A dialog id past every dialog's: the whole tie follows.
    const first = all.findIndex((d) => activityOf(d) === tie)
    expect((await page(`limit=100&before=${encodeURIComponent(tie)}&before_id=2147483647`)).map((d) => d.id)).toEqual(all.slice(first).map((d) => d.id))
    // A time a fraction of a millisecond after the tie: every dialog of the tie is before it, whatever before_id says.
    const justAfter = tie.replace('Z', '1Z')
    expect((await page(`limit=100&before=${encodeURIComponent(justAfter)}&before_id=1`)).map((d) => d.id)).toEqual(all.slice(first).map((d) => d.id))
  })

  test('before_id needs before, and is a dialog id', async () => {
    const get = (query: string) => app.call('GET', `/dialogs?${query}`, { token: me.access_token })
    expectContractError(await get(`before_id=${tied[0]}`), 422, 'validation_failed', 'before_id')
    expectContractError(await get(`limit=5&before_id=${tied[0]}`), 422, 'validation_failed', 'before_id')
    for (const bad of ['0', '-1', '01', '1.5', 'x', '2147483648', ''])
      expectContractError(await get(`before=${encodeURIComponent(tie)}&before_id=${bad}`), 422, 'validation_failed', 'before_id')
    expectContractError(await get(`before=yesterday&before_id=${tied[0]}`), 422, 'validation_failed', 'before')
  })
})

/**
 * The reviewer's reproduction: a user with 101 dialogs (one more than the client's page) sends one message
 * into each in one burst, so all 101 share one activity time; a fresh client's dialogs() must return all of
 * them. The real server process and the real client library.
 */
describe.each(dialects)('the client library after a one-burst send into 101 dialogs on %s', (dialect) => {
  let fresh: FreshDatabase, server: ServerProcess
  beforeAll(async () => {
    fresh = await freshDatabase(dialect)
    server = await startServer(fresh.target, { WRITER_BATCH_WAIT_MS: '1000' })
  }, 30_000)
  afterAll(async () => {
    server.proc.kill('SIGKILL')
    await server.exited
    await fresh.drop()
  }, 30_000)

  test('dialogs() returns every one of the 101 dialogs, once each', async () => {
    const password = 'correct horse battery'
    const name = uniqueName('u')
    let session: ClientSession | null = null
    const sender = new ChatClient({ baseUrl: `http://${server.base}`, onSession: (s) => void (session = s) })
    const reader = new ChatClient({ baseUrl: `http://${server.base}` })
    try {
      await sender.register(name, password)
      const token = session!.access_token
      const ids: number[] = []
      for (let i = 0; i < 101; i++) {
        const peer = await http(server.base, 'POST', '/auth/register', { username: uniqueName('p'), password })
        ids.push((await http(server.base, 'POST', '/dialogs', { peer_user_id: peer.body.user.id }, token)).body.id)
      }
      sender.connect()
      for (const deadline = Date.now() + 10_000; sender.state !== 'live'; await Bun.sleep(10))
        if (Date.now() > deadline) throw new Error('the sender never went live')
      const sent = await Promise.all(ids.map((id) => sender.send(id, 'hello').sent))
      // One batch: one time for all 101, so the client's first page of 100 ends inside the tie.
      expect(new Set(sent.map((m) => m.created_at)).size).toBe(1)

      await reader.login(name, password)
      const listed = await reader.dialogs()
      expect(listed.length).toBe(101)
      expect(new Set(listed.map((d) => d.id))).toEqual(new Set(ids))
      expect(listed.map((d) => d.id)).toEqual([...ids].sort((a, b) => b - a))
    } finally {
      sender.close()
      reader.close()
    }
  }, 60_000)
})
