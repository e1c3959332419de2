import { afterEach, describe, expect, test } from 'bun:test'
import { ChatClient, type ClientEvent } from 'bun-chat/client'
import { Server, signedUp, suiteServer, until } from './support/chat-clients'

/*
 * The client's state machine under reconnects and races, against the real server process. Races
 * are forced by holding chosen REST answers of the client (its documented `fetch` option, which passes every
 * request to the real fetch) until a live frame has arrived.
 */

const T = 30_000

/** Holds the answers (or the requests) whose URL matches, while armed, until opened. */
class Gate {
  private match: ((url: string) => boolean) | undefined
  private before = false
  private opened!: () => void
  private gate: Promise<void> = Promise.resolve()
  held = 0
  arm(match: (url: string) => boolean, { before = false } = {}) {
    this.match = match
    this.before = before
    this.held = 0
    this.gate = new Promise((resolve) => (this.opened = resolve))
  }
  open() {
    this.match = undefined
    this.opened()
  }
  fetch = async (url: string, init: RequestInit): Promise<Response> => {
    const hold = this.match?.(url) ?? false
    if (hold && this.before) {
      this.held++
      await this.gate
    }
    const response = await fetch(url, init)
    if (hold && !this.before) {
      this.held++
      await this.gate
    }
    return response
  }
}


const clients: ChatClient[] = []
afterEach(() => {
  for (const client of clients.splice(0)) client.close()
})

async function person(server: Server, options: { connect?: boolean } = {}) {
  const gate = new Gate()
  const signed = await signedUp(server, { fetch: gate.fetch, connect: options.connect })
  clients.push(signed.client)
  return { ...signed, gate }
}

async function pair(server: Server) {
  const alice = await person(server)
  const bob = await person(server)
  const dialog = (await alice.client.openDialogWith(bob.name))!
  await until('bob follows the dialog', () => bob.events.some((e) => e.type === 'dialog' && e.dialog.id === dialog.id))
  return { alice, bob, dialogId: dialog.id }
}

/** A message as an app holds it after applying the client's events in order (message, changed, deleted). */
function shown(events: ClientEvent[], messageId: number): { text: string; deleted: boolean } | undefined {
  let current: { text: string; deleted: boolean } | undefined
  for (const e of events) {
    if ((e.type === 'message' || e.type === 'changed') && e.message.id === messageId) current = { text: e.message.text, deleted: e.message.deleted }
    if (e.type === 'deleted' && e.message_id === messageId) current = { text: '', deleted: true }
  }
  return current
}

const isDialogList = (url: string) => /\/dialogs(\?|$)/.test(url)

describe('client state machine under reconnects and races', () => {
  const suite = suiteServer()

  test('an edit made while away is caught up even when a live reaction arrives during the catch-up', async () => {
    const { alice, bob, dialogId } = await pair(suite.server)
    const first = await alice.client.send(dialogId, 'first').sent
    const second = await alice.client.send(dialogId, 'second').sent
    await until('bob has both', () => bob.texts(dialogId).length === 2)
    bob.client.close()
    await alice.client.edit(dialogId, first.id, 'first, edited while bob was away')

    // Bob comes back; while his catch-up fetches the dialog list, alice reacts (live) to another message.
    bob.gate.arm(isDialogList)
    bob.client.connect()
    await until('bob catching up, the dialog list held', () => bob.gate.held > 0 && bob.client.state === 'catching_up')
    await alice.client.react(dialogId, second.id, '👍')
    await until('bob gets the live reaction', () => bob.events.some((e) => e.type === 'reactions' && e.message_id === second.id))
    bob.gate.open()
    await until('bob live', () => bob.client.state === 'live')
    await Bun.sleep(300)

    // Expected: the edit made while away reaches bob (a `changed` with the new text). Actual: never.
    expect(shown(bob.events, first.id)?.text).toBe('first, edited while bob was away')
  }, T)

  test('a catch-up answer older than a live deletion does not bring the deleted message back', async () => {
    const { alice, bob, dialogId } = await pair(suite.server)
    const message = await alice.client.send(dialogId, 'draft').sent
    await until('bob has it', () => bob.texts(dialogId).length === 1)
    bob.client.close()
    await alice.client.edit(dialogId, message.id, 'edited while bob was away')

    // Bob's changed_after answer is computed (before the deletion) but reaches him after the live deletion.
    bob.gate.arm((url) => url.includes('changed_after='))
    bob.client.connect()
    await until('the changed_after answer held', () => bob.gate.held > 0)
    await alice.client.remove(dialogId, message.id)
    await until('bob gets the live deletion', () => bob.events.some((e) => e.type === 'deleted' && e.message_id === message.id))
    bob.gate.open()
    await until('bob live', () => bob.client.state === 'live')
    await Bun.sleep(300)

    // Expected: deleted. Actual: a `changed` with the older, undeleted copy comes after the `deleted`.
    expect(shown(bob.events, message.id)).toEqual({ text: '', deleted: true })
  }, T)

  test('a catch-up answer older than a live edit does not overwrite it', async () => {
    const { alice, bob, dialogId } = await pair(suite.server)
    const message = await alice.client.send(dialogId, 'v1').sent
    await until('bob has it', () => bob.texts(dialogId).length === 1)
    bob.client.close()
    await alice.client.edit(dialogId, message.id, 'v2')

    bob.gate.arm((url) => url.includes('changed_after='))
    bob.client.connect()
    await until('the changed_after answer held', () => bob.gate.held > 0)
    await alice.client.edit(dialogId, message.id, 'v3')
    await until('bob gets the live edit', () => bob.events.some((e) => e.type === 'changed' && e.message.text === 'v3'))
    bob.gate.open()
    await until('bob live', () => bob.client.state === 'live')
    await Bun.sleep(300)

    // Expected: v3 (the newest). Actual: the stale v2 from the catch-up is reported after v3.
    expect(shown(bob.events, message.id)?.text).toBe('v3')
  }, T)

  test('close() during a catch-up: no message events after close()', async () => {
    const { alice, bob, dialogId } = await pair(suite.server)
    bob.client.close()
    for (const text of ['a', 'b', 'c']) await alice.client.send(dialogId, text).sent
    bob.gate.arm((url) => url.includes('after_id='))
    bob.client.connect()
    await until('bob catching up, the fill held', () => bob.gate.held > 0)
    bob.client.close()
    const at = bob.events.length
    bob.gate.open()
    await Bun.sleep(500)

    // Expected: a closed client reports nothing. Actual: the abandoned catch-up reports a, b, c.
    expect(bob.events.slice(at).filter((e) => e.type === 'message' || e.type === 'error' || e.type === 'dialog').map((e) => e.type)).toEqual([])
  }, T)

  test('logout() during a catch-up: the signed-out account reports no messages or errors afterwards', async () => {
    const { alice, bob, dialogId } = await pair(suite.server)
    bob.client.close()
    for (const text of ['private 1', 'private 2']) await alice.client.send(dialogId, text).sent
    bob.gate.arm((url) => url.includes('after_id='))
    bob.client.connect()
    await until('bob catching up, the fill held', () => bob.gate.held > 0)
    await bob.client.logout()
    expect(bob.client.session).toBeNull()
    const at = bob.events.length
    bob.gate.open()
    await Bun.sleep(500)

    // Expected: nothing after the logout. Actual: the old account's messages arrive as `message` events.
    expect(bob.events.slice(at).filter((e) => e.type === 'message' || e.type === 'error').map((e) => e.type)).toEqual([])
  }, T)

  test('a dialog created while a catch-up is in flight is reported as created once', async () => {
    const bob = await person(suite.server)
    const carol = await person(suite.server)
    bob.client.close()
    // Bob reconnects; his dialog list request waits, and is made only after carol has opened a dialog with him.
    bob.gate.arm(isDialogList, { before: true })
    bob.client.connect()
    await until('bob catching up, the dialog list held', () => bob.gate.held > 0 && bob.client.state === 'catching_up')
    const dialog = (await carol.client.openDialogWith(bob.name))!
    await until('bob gets dialog:new', () => bob.events.some((e) => e.type === 'dialog' && e.dialog.id === dialog.id))
    bob.gate.open()
    await until('bob live', () => bob.client.state === 'live')
    await Bun.sleep(200)

    const created = bob.events.filter((e) => e.type === 'dialog' && e.dialog.id === dialog.id && e.created)
    // Expected: one `created: true`. Actual: two (dialog:new, then the catch-up's list).
    expect(created.length).toBe(1)
  }, T)

  test('close() then connect(): a peer shown typing before close() stops being shown typing', async () => {
    const { alice, bob, dialogId } = await pair(suite.server)
    const bobId = bob.client.user!.id
    bob.client.typing(dialogId)
    await until('alice sees bob typing', () => alice.events.some((e) => e.type === 'typing' && e.user_id === bobId && e.typing))
    alice.client.close()
    alice.client.connect()
    await until('alice live', () => alice.client.state === 'live')
    await bob.client.send(dialogId, 'done typing').sent
    await until('alice has the message', () => alice.texts(dialogId).includes('done typing'))
    // Past the 6 s expiry of a `start`, and past bob's own `stop` (3 s idle, or the send).
    await Bun.sleep(6_500)

    const last = alice.events.filter((e) => e.type === 'typing' && e.user_id === bobId).at(-1)
    // Expected: typing false (by stop, message, or expiry). Actual: the last word is still typing: true.
    expect(last?.type === 'typing' && last.typing).toBe(false)
  }, T)
})
