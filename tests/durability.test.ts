import { afterEach, describe, expect, test } from 'bun:test'
import { uniqueName } from './support/app'
import { dialects, freshDatabase, type FreshDatabase } from './support/databases'
import { connect, http, startServer, type ServerProcess } from './support/server-process'

interface Sender {
  token: string
  userId: number
  dialogId: number
}

type Stored = { id: number; seq: number; client_msg_id: string; sender_id: number }

async function setup(base: string, dialogs: number): Promise<Sender[]> {
  const senders: Sender[] = []
  for (let i = 0; i < dialogs; i++) {
    const [a, b] = await Promise.all(
      [0, 1].map(() =>
        http(base, 'POST', '/auth/register', { username: uniqueName('crash'), password: 'password-123' }).then((r) => r.body),
      ),
    )
    const dialog = await http(base, 'POST', '/dialogs', { peer_user_id: b.user.id }, a.access_token)
    senders.push({ token: a.access_token, userId: a.user.id, dialogId: dialog.body.id })
    senders.push({ token: b.access_token, userId: b.user.id, dialogId: dialog.body.id })
  }
  return senders
}

/** Every message of a dialog, read back through after_id paging as a reconnecting client would. */
async function allMessages(base: string, sender: Sender): Promise<Stored[]> {
  const out: Stored[] = []
  let after = 0
  for (;;) {
    const page = await http(base, 'GET', `/dialogs/${sender.dialogId}/messages?after_id=${after}&limit=100`, undefined, sender.token)
    out.push(...page.body.messages)
    if (!page.body.has_more) return out
    after = out[out.length - 1]!.id
  }
}

function expectGapless(messages: Stored[]) {
  expect(messages.map((m) => m.seq)).toEqual(messages.map((_, i) => i + 1))
}

/** Keeps `inFlight` sends outstanding on each connection until stopped; records what was acknowledged. */
async function load(base: string, senders: Sender[], inFlight: number) {
  const sent = new Map<string, Sender>()
  const acked = new Set<string>()
  let stopped = false
  const sockets = await Promise.all(
    senders.map(async (sender) => {
      let n = 0
      const next = (ws: WebSocket) => {
        if (stopped || ws.readyState !== WebSocket.OPEN) return
        const id = `u${sender.userId}-${n++}`
        sent.set(id, sender)
        ws.send(JSON.stringify({ type: 'message:send', dialog_id: sender.dialogId, client_msg_id: id, msg_type: 'text', text: id }))
      }
      const ws: WebSocket = await connect(base, sender.token, (frame) => {
        if (frame.type === 'message:ack') {
          acked.add(frame.client_msg_id)
          next(ws)
        }
      })
      for (let i = 0; i < inFlight; i++) next(ws)
      return ws
    }),
  )
  return {
    sent,
    acked,
    sockets,
    stop: () => {
      stopped = true
    },
  }
}

async function waitFor(condition: () => boolean, ms: number) {
  const deadline = Date.now() + ms
  while (!condition() && Date.now() < deadline) await Bun.sleep(10)
}

describe.each(dialects)('durability on %s', (dialect) => {
  let fresh: FreshDatabase | undefined
  let server: ServerProcess | undefined
  afterEach(async () => {
    server?.proc.kill('SIGKILL')
    await server?.exited
    await fresh?.drop()
  })

  test('kill -9 under load: every ack survives exactly once, seq has no gaps, retries create at most once', async () => {
    fresh = await freshDatabase(dialect)
    server = await startServer(fresh.target)
    const senders = await setup(server.base, 8)
    const run = await load(server.base, senders, 16)
    // Killed at an arbitrary point of a steady load, not at a quiet moment.
    await waitFor(() => run.acked.size >= 1500 + Math.floor(Math.random() * 500), 20_000)
    server.proc.kill('SIGKILL')
    await server.exited
    run.stop()
    expect(run.acked.size).toBeGreaterThanOrEqual(1500)

    server = await startServer(fresh.target)
    const byDialog = new Map(senders.map((s) => [s.dialogId, s]))
    const stored = new Map<string, Stored>()
    for (const sender of byDialog.values()) {
      const messages = await allMessages(server.base, sender)
      expectGapless(messages)
      for (const m of messages) {
        expect(stored.has(m.client_msg_id)).toBe(false)
        stored.set(m.client_msg_id, m)
      }
    }
    for (const id of run.acked) expect(stored.has(id)).toBe(true)

    // The client retries everything it sent but never saw acknowledged, with the same client_msg_id.
    const unacked = [...run.sent].filter(([id]) => !run.acked.has(id))
    expect(unacked.length).toBeGreaterThan(0)
    for (const [id, sender] of unacked) {
      const retry = await http(server.base, 'POST', `/dialogs/${sender.dialogId}/messages`, { client_msg_id: id, type: 'text', text: id }, sender.token)
      expect(retry.status).toBe(stored.has(id) ? 200 : 201)
    }
    let total = 0
    for (const sender of byDialog.values()) {
      const messages = await allMessages(server.base, sender)
      expectGapless(messages)
      expect(new Set(messages.map((m) => m.client_msg_id)).size).toBe(messages.length)
      total += messages.length
    }
    expect(total).toBe(run.sent.size)
  }, 60_000)

  test('SIGTERM: what was received is committed and acknowledged, sockets close with 1001, exit 0', async () => {
    fresh = await freshDatabase(dialect)
    server = await startServer(fresh.target)
    const senders = await setup(server.base, 2)
    const run = await load(server.base, senders, 32)
    const closes = run.sockets.map((ws) => new Promise<number>((resolve) => ws.addEventListener('close', (e) => resolve(e.code))))
    await waitFor(() => run.acked.size >= 200, 10_000)
    server.proc.kill('SIGTERM')
    expect(await server.exited).toBe(0)
    run.stop()
    expect(await Promise.all(closes)).toEqual(run.sockets.map(() => 1001))

    server = await startServer(fresh.target)
    const stored = new Set<string>()
    for (const sender of [senders[0]!, senders[2]!]) for (const m of await allMessages(server.base, sender)) stored.add(m.client_msg_id)
    for (const id of run.acked) expect(stored.has(id)).toBe(true)
    for (const id of stored) expect(run.sent.has(id)).toBe(true)
  }, 60_000)
})
