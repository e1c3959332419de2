import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import type { Session } from './support/app'
import { dialects } from './support/databases'
import { Bystanders, CONTRACT_STATUS, nearMiss, RUNS, startScene, type Account, type Target } from './support/fuzz'
import { Client, type Frame } from './support/ws'

/*
 * Property-based attacks on the WebSocket protocol of a real server process (issue #13): every frame type
 * gets near-miss and arbitrary frames, before and after authentication. Every answer is a frame of the
 * protocol (errors with a contract code, never `internal`, never a stack); the only closes are the
 * documented ones (1008 for a garbage flood, 4401 before authentication); the process lives and logs no
 * fault; two other users chatting meanwhile get every send answered 201 and published.
 */

const SERVER_TYPES = new Set(['auth:ok', 'message:ack', 'message:new', 'message:status', 'typing', 'presence', 'dialog:new', 'pong', 'error'])

function expectProtocolFrame(frame: Frame, sent: string): void {
  const context = `${sent} → ${JSON.stringify(frame).slice(0, 300)}`
  expect(SERVER_TYPES.has(frame.type), context).toBe(true)
  if (frame.type !== 'error') return
  expect(Object.keys(CONTRACT_STATUS), context).toContain(frame.code)
  expect(typeof frame.message, context).toBe('string')
  expect(frame.message, context).not.toMatch(/\n\s+at |\.ts:\d+|node_modules/)
}

describe.each(dialects)('WebSocket fuzz on %s', (dialect) => {
  let target: Target
  let me: Account
  let dialogId: number
  let messageId: number
  let bystanders: Bystanders
  const base = () => `ws://${target.base}`

  beforeAll(async () => {
    ;({ target, me, dialogId, messageId, bystanders } = await startScene(dialect))
  }, 30_000)
  afterAll(() => target?.stop())

  /** Valid frames of every type the client may send, as templates for near misses. */
  const templates = () => [
    { type: 'message:send', dialog_id: dialogId, client_msg_id: 'fuzz', msg_type: 'text', text: 'fuzz' },
    { type: 'message:delivered', message_id: messageId, delivered_at: '2026-11-23T10:15:30.123Z' },
    { type: 'message:read', dialog_id: dialogId, last_read_message_id: messageId, read_at: '2026-11-23T10:15:30+05:30' },
    { type: 'typing', dialog_id: dialogId, state: 'start' },
    { type: 'ping' },
    { type: 'auth', access_token: me.token },
  ]

  const frameText = () =>
    fc.oneof(
      { arbitrary: fc.constantFrom(...templates()).chain((t) => nearMiss(t)).map((v) => JSON.stringify(v) ?? 'null'), weight: 6 },
      { arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? 'null'), weight: 1 },
      { arbitrary: fc.record({ type: fc.string({ maxLength: 20 }) }, { requiredKeys: [] }).map((v) => JSON.stringify(v)), weight: 1 },
      { arbitrary: fc.string({ unit: 'binary', maxLength: 60 }), weight: 1 },
    )

  test('authenticated: near-miss and arbitrary frames of every type get protocol frames; only 1008 ever closes', async () => {
    let ws = await Client.login(base(), { access_token: me.token } as Session)
    let closes = 0
    await fc.assert(
      fc.asyncProperty(frameText(), fc.boolean(), async (text, binary) => {
        if (ws.ws.readyState !== WebSocket.OPEN) {
          const { code } = await ws.closed
          expect(code).toBe(1008)
          closes++
          ws = await Client.login(base(), { access_token: me.token } as Session)
        }
        if (binary) ws.ws.send(new TextEncoder().encode(text))
        else ws.send(text)
        try {
          ws.send({ type: 'ping' })
          await ws.next('pong')
        } catch {
          // Closed by the garbage budget: checked on the next run.
        }
        for (const frame of ws.frames.splice(0)) expectProtocolFrame(frame, text)
      }),
      { numRuns: RUNS * 3 },
    )
    // Replies that arrive after their pong (a send's ack, an unknown dialog's not_found) are checked too.
    await Bun.sleep(200)
    for (const frame of ws.frames.splice(0)) expectProtocolFrame(frame, 'late')
    expect(closes).toBeLessThan(RUNS)
    await ws.close()
  }, 60_000)

  test('before authentication: any first frame is either a valid auth (auth:ok) or unauthorized + close 4401', async () => {
    await fc.assert(
      fc.asyncProperty(frameText(), async (text) => {
        const ws = await Client.open(`${base()}/ws`)
        ws.send(text)
        const first = await ws.next()
        expectProtocolFrame(first, text)
        if (first.type === 'auth:ok') {
          expect(JSON.parse(text)).toMatchObject({ type: 'auth', access_token: me.token })
          await ws.close()
          return
        }
        expect({ text, first }).toMatchObject({ first: { type: 'error', code: 'unauthorized' } })
        expect((await ws.closed).code).toBe(4401)
      }),
      { numRuns: RUNS / 2 },
    )
  }, 60_000)

  test('afterwards: the process lives, logged no fault, and the bystanders got every send (201) and every message:new', async () => {
    await target.expectAlive()
    await bystanders.expectAllDelivered()
  })
})
