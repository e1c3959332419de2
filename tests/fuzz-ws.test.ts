import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import type { Session } from './support/app'
import { dialects } from './support/databases'
import { Bystanders, CONTRACT_STATUS, nearMiss, RUNS, sendText, startScene, uploadFile, type Account, type Target } from './support/fuzz'
import { Client, type Frame } from './support/ws'

/*
 * Property-based attacks on the WebSocket protocol of a real server process (issue #13): every frame type
 * (edit, delete and attachment sends included) gets near-miss and arbitrary frames, before and after
 * authentication, on the JSON wire and as Socket.IO packets. Every answer is a frame of the
 * protocol (errors with a contract code, never `internal`, never a stack); the only closes are the
 * documented ones (1008 for a garbage flood, 4401 before authentication); the process lives and logs no
 * fault; two other users chatting meanwhile get every send answered 201 and published.
 */

const SERVER_TYPES = new Set([
  'auth:ok', 'message:ack', 'message:new', 'message:status', 'message:edited', 'message:deleted', 'message:reactions',
  'typing', 'presence', 'dialog:new', 'pong', 'error',
])

/** An error's body (a frame, a Socket.IO error event or an ack's `error`): a contract code, a message, no stack. */
function expectContractError(error: Frame, context: string): void {
  expect(Object.keys(CONTRACT_STATUS), context).toContain(error.code)
  expect(typeof error.message, context).toBe('string')
  expect(error.message, context).not.toMatch(/\n\s+at |\.ts:\d+|node_modules/)
}

function expectProtocolFrame(frame: Frame, sent: string): void {
  const context = `${sent} → ${JSON.stringify(frame).slice(0, 300)}`
  expect(SERVER_TYPES.has(frame.type), context).toBe(true)
  if (frame.type === 'error') expectContractError(frame, context)
}

/**
 * A Socket.IO connection spoken by hand over a WebSocket (Engine.IO v4 packets as they are on the wire),
 * so that the fuzz can send what no client library would.
 */
class RawSocketIo {
  readonly packets: string[] = []
  readonly closed: Promise<void>
  private waiter: (() => void) | undefined
  private nextAck = 1_000_000_000

  private constructor(readonly ws: WebSocket) {
    ws.addEventListener('message', (e) => {
      const packet = String(e.data)
      // Engine.IO's heartbeat is answered at once, as every client does.
      if (packet === '2') ws.send('3')
      else this.packets.push(packet)
      this.waiter?.()
    })
    this.closed = new Promise((resolve) => ws.addEventListener('close', () => (resolve(), this.waiter?.())))
  }

  /** Open: the Engine.IO open packet received, nothing said yet. */
  static async open(base: string): Promise<RawSocketIo> {
    const io = new RawSocketIo(new WebSocket(`${base}/socket.io/?EIO=4&transport=websocket`))
    expect(await io.take((p) => p.startsWith('0{'))).toContain('"sid"')
    return io
  }

  /** Open, CONNECT with the token in its auth payload, auth:ok received. */
  static async login(base: string, token: string): Promise<RawSocketIo> {
    const io = await RawSocketIo.open(base)
    io.ws.send(`40${JSON.stringify({ access_token: token })}`)
    await io.take((p) => p.startsWith('40{'))
    await io.take((p) => p.startsWith('42["auth:ok"'))
    return io
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN
  }

  /** The first packet `match` accepts, taken from the queue; rejects after 3 s or on close. */
  async take(match: (packet: string) => boolean): Promise<string> {
    const deadline = Date.now() + 3_000
    for (;;) {
      const index = this.packets.findIndex(match)
      if (index >= 0) return this.packets.splice(index, 1)[0]!
      if (this.ws.readyState >= WebSocket.CLOSING) throw new Error(`closed; have ${JSON.stringify(this.packets)}`)
      if (Date.now() > deadline) throw new Error(`no such packet within 3 s; have ${JSON.stringify(this.packets)}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100)
        this.waiter = () => (clearTimeout(timer), resolve())
      })
    }
  }

  /** A ping with an ack callback, answered once everything sent before it was handled (in order). */
  async settle(): Promise<void> {
    const id = this.nextAck++
    this.ws.send(`42${id}["ping"]`)
    expect(await this.take((p) => p.startsWith(`43${id}[`))).toBe(`43${id}[{}]`)
  }
}

/**
 * What the server may send on a Socket.IO connection: Engine.IO message packets holding a CONNECT
 * answer, a DISCONNECT, an event of the contract or an ack (the event's payload, `{}`, `{ok: true}` or
 * `{error}`); errors with a contract code.
 */
function expectSocketIoPacket(packet: string, sent: string): void {
  const context = `${sent} → ${packet.slice(0, 300)}`
  const [, type, rest] = /^4([0-4])(.*)$/s.exec(packet) ?? []
  expect(type, context).toBeDefined()
  if (type === '1') return void expect(rest, context).toBe('')
  if (type === '0') return void expect(JSON.parse(rest!), context).toMatchObject({ sid: expect.any(String) })
  if (type === '4') {
    const [, , body] = /^(\/[^,]*,)?(\{.*\})$/s.exec(rest!) ?? []
    return void expect(typeof JSON.parse(body ?? 'null')?.message, context).toBe('string')
  }
  if (type === '2') {
    const [name, payload, ...more] = JSON.parse(rest!) as [string, Frame]
    expect(SERVER_TYPES.has(name) && more.length === 0 && typeof payload === 'object', context).toBe(true)
    if (name === 'error') expectContractError(payload, context)
    return
  }
  const [, id, args] = /^(\d+)(\[.*\])$/s.exec(rest!) ?? []
  expect(Number.isSafeInteger(Number(id)), context).toBe(true)
  const [answer, ...more] = JSON.parse(args!) as [Frame]
  expect(more.length === 0 && typeof answer === 'object' && answer !== null, context).toBe(true)
  if ('error' in answer) expectContractError(answer.error, context)
}

describe.each(dialects)('WebSocket fuzz on %s', (dialect) => {
  let target: Target
  let me: Account
  let dialogId: number
  let messageId: number
  let ownMessageId: number
  /** My messages the fuzz may delete. */
  let doomed: number[]
  let uploadId: number
  let bystanders: Bystanders
  const base = () => `ws://${target.base}`

  beforeAll(async () => {
    ;({ target, me, dialogId, messageId, ownMessageId, bystanders } = await startScene(dialect))
    doomed = await Promise.all([0, 1, 2].map((i) => sendText(target.base, me, dialogId, `doomed-${i}`)))
    uploadId = await uploadFile(target.base, me, [{ name: 'file', filename: 'fuzz.txt', data: 'attached by the fuzz' }])
  }, 30_000)
  afterAll(() => target?.stop())

  /** Valid frames of every type the client may send, as templates for near misses. */
  const templates = () => [
    { type: 'message:send', dialog_id: dialogId, client_msg_id: 'fuzz', msg_type: 'text', text: 'fuzz' },
    // Attached once: later sends of it are refused (422), or acked as the first when the client_msg_id repeats.
    { type: 'message:send', dialog_id: dialogId, client_msg_id: 'fuzz-file', msg_type: 'file', attachment_id: uploadId, text: 'caption' },
    { type: 'message:edit', message_id: ownMessageId, text: 'edited by the fuzz' },
    { type: 'message:edit', message_id: messageId, text: 'not mine to edit' },
    ...doomed.map((id) => ({ type: 'message:delete', message_id: id })),
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

  /** Socket.IO packets: events named by the frame types (with or without an ack id), and packets of every other kind. */
  const socketIoText = () => {
    const ackId = fc.option(fc.oneof(fc.nat(1_000_000), fc.constantFrom(0, 2 ** 31, 2 ** 53 + 1, 1e21)), { freq: 2 })
    const event = fc
      .tuple(
        fc.constantFrom(...templates()).chain(({ type, ...payload }) =>
          fc.oneof(
            // emit(type, payload), the payload a near miss
            { arbitrary: nearMiss(payload).map((p) => [type, p]), weight: 4 },
            // send({type, …}): the `message` event
            { arbitrary: nearMiss({ type, ...payload }).map((p) => ['message', p]), weight: 2 },
            // odd argument lists
            { arbitrary: fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 3 }).map((rest) => [type, ...rest]), weight: 1 },
          ),
        ),
        ackId,
      )
      .map(([args, id]) => `42${id ?? ''}${JSON.stringify(args)}`)
    return fc.oneof(
      { arbitrary: event, weight: 8 },
      // Every Engine.IO and Socket.IO packet type, with junk after it; namespaces other than "/".
      { arbitrary: fc.tuple(fc.constantFrom('0', '2', '3', '5', '6', '40', '42', '43', '44', '45', '46', '47', '4', '40/admin,', '42/admin,', '451-', '43x'), fc.string({ maxLength: 30 })).map(([a, b]) => a + b), weight: 3 },
      { arbitrary: fc.jsonValue({ maxDepth: 2 }).map((v) => `42${JSON.stringify(v) ?? ''}`), weight: 1 },
      { arbitrary: fc.string({ unit: 'binary', maxLength: 40 }), weight: 1 },
      // Ending the session: Engine.IO close, Socket.IO DISCONNECT.
      { arbitrary: fc.constantFrom('1', '41'), weight: 1 },
    )
  }

  test('Socket.IO: near-miss events, acks and packets of every kind get Socket.IO packets of the contract; only a close asked for, or a server DISCONNECT, ends the socket', async () => {
    const base = () => `ws://${target.base}`
    let io = await RawSocketIo.login(base(), me.token)
    let reconnects = 0
    await fc.assert(
      fc.asyncProperty(socketIoText(), fc.boolean(), async (text, binary) => {
        if (!io.open) {
          io = await RawSocketIo.login(base(), me.token)
          reconnects++
        }
        io.ws.send(binary ? new TextEncoder().encode(text) : text)
        // A close or DISCONNECT asked for, or text that is no Engine.IO packet at all (the session ends, as the
        // protocol's reference server has it; binary frames are Socket.IO attachments, ignored).
        const asked = text === '1' || text.startsWith('41') || (!binary && text !== '' && !/^[0-6b]/.test(text))
        try {
          await io.settle()
        } catch (error) {
          // Closed: by the client's own close or DISCONNECT, or by the server after telling Socket.IO so
          // (the invalid-frame budget); anything else is a fault.
          await io.closed
          if (!asked && !io.packets.includes('41')) throw error
        }
        for (const packet of io.packets.splice(0)) expectSocketIoPacket(packet, text)
      }),
      { numRuns: RUNS * 3 },
    )
    await Bun.sleep(200)
    for (const packet of io.packets.splice(0)) expectSocketIoPacket(packet, 'late')
    expect(reconnects).toBeLessThan(RUNS * 2)
    io.ws.close()
  }, 60_000)

  /** The first packet: anything, or a CONNECT whose auth payload is a near miss of mine. */
  const connectFirst = () =>
    fc.oneof(
      { arbitrary: socketIoText(), weight: 3 },
      { arbitrary: fc.constantFrom({ access_token: me.token }, { token: me.token }).chain((auth) => nearMiss(auth)).map((v) => `40${JSON.stringify(v) ?? ''}`), weight: 1 },
    )

  /** Whether a first packet authenticates me: a CONNECT to "/" whose auth payload carries my token (access_token first, else token). */
  const authenticates = (text: string) => {
    if (!text.startsWith('40{')) return false
    try {
      const auth = JSON.parse(text.slice(2)) as Frame
      const token = typeof auth.access_token === 'string' ? auth.access_token : auth.token
      return token === me.token
    } catch {
      return false
    }
  }

  test('Socket.IO before authentication: whatever comes first, nothing but auth:ok for my own token, CONNECT answers and unauthorized', async () => {
    await fc.assert(
      fc.asyncProperty(connectFirst(), async (text) => {
        const io = await RawSocketIo.open(`ws://${target.base}`)
        io.ws.send(text)
        // Then a CONNECT without a token (ignored when one is under way) and an event: the event is what
        // an unauthenticated socket must not get answered.
        io.ws.send('40')
        io.ws.send('421["ping"]')
        const answer = await io.take((p) => p.startsWith('431[') || p === '41').catch(() => 'closed')
        const context = `${text} → ${answer} ${JSON.stringify(io.packets)}`
        const mine = authenticates(text)
        if (answer.startsWith('431[')) {
          // Answered: pong for a socket my token authenticated, else unauthorized through the callback.
          const [reply] = JSON.parse(answer.slice(3)) as [Frame]
          expect({ context, reply }).toEqual({ context, reply: mine ? {} : { error: expect.objectContaining({ code: 'unauthorized' }) } })
        }
        for (const packet of io.packets.splice(0)) {
          expectSocketIoPacket(packet, text)
          if (packet.startsWith('42[') && !packet.startsWith('42["error"')) expect({ context, packet, mine }).toMatchObject({ packet: expect.stringMatching(/^42\["auth:ok"/), mine: true })
          // A packet that is none: bad_request (and the socket stays unauthenticated); any frame: unauthorized.
          if (packet.startsWith('42["error"')) expect(['unauthorized', 'bad_request'], context).toContain(JSON.parse(packet.slice(2))[1].code)
        }
        io.ws.close()
      }),
      { numRuns: RUNS / 2 },
    )
  }, 60_000)

  test('afterwards: the process lives, logged no fault, and the bystanders got every send (201) and every message:new', async () => {
    await target.expectAlive()
    await bystanders.expectAllDelivered()
  })
})
