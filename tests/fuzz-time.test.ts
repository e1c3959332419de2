import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import { AppError } from '../src/errors'
import { parseInstant } from '../src/shared/time'
import type { Session } from './support/app'
import { dialects } from './support/databases'
import {
  Bystanders,
  encode,
  expectContractAnswer,
  formatStamp,
  RUNS,
  stampParts,
  startScene,
  timestamp,
  type Account,
  type StampParts,
  type Target,
} from './support/fuzz'
import { Client, type Frame } from './support/ws'

/*
 * Timestamps across the whole ISO 8601 four-digit range, with offsets (issue #13, item 1): the parser agrees
 * with an independent model of what is valid, and the server answers every timestamp input (REST bodies,
 * queries, WebSocket receipts) with 200 or 422 as the model says, never a 500, while other users' sends in
 * the same write batches all commit, answer 201 and are published.
 */

const isLeap = (y: number) => y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0)
const daysIn = (y: number, m: number) => [31, isLeap(y) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]!
const FIRST = Date.parse('0001-01-01T00:00:00.000Z')
const LAST = Date.parse('9999-12-31T23:59:59.999Z')

/** The instant the parts name (ms since the epoch), or undefined when they name none we accept. */
function model(p: StampParts): number | undefined {
  if (p.separator === ' ') return undefined
  if (p.month < 1 || p.month > 12 || p.day < 1 || p.day > daysIn(p.year, p.month)) return undefined
  if (p.hour > 23 || p.minute > 59 || (p.second ?? 0) > 59) return undefined
  const offsetMinutes = p.offset === null ? 0 : p.offset.form === 'hours' ? 0 : p.offset.minutes
  if (p.offset && (p.offset.hours > 23 || offsetMinutes > 59)) return undefined
  const local = new Date(0)
  // setUTCFullYear, unlike Date.UTC, takes years 0–99 as they are.
  local.setUTCFullYear(p.year, p.month - 1, p.day)
  local.setUTCHours(p.hour, p.minute, p.second ?? 0, p.fraction === null || p.second === null ? 0 : Number(p.fraction.padEnd(3, '0').slice(0, 3)))
  const offsetMs = p.offset === null ? 0 : (p.offset.sign === '+' ? 1 : -1) * (p.offset.hours * 60 + offsetMinutes) * 60_000
  const utc = local.getTime() - offsetMs
  return utc >= FIRST && utc <= LAST ? utc : undefined
}

const parsed = (value: string): number | undefined => {
  try {
    return parseInstant('at', value).getTime()
  } catch (error) {
    expect(error).toBeInstanceOf(AppError)
    expect((error as AppError).code).toBe('validation_failed')
    return undefined
  }
}

test('the parser accepts exactly the ISO 8601 date-times with an offset in years 0001–9999 (UTC), at the instant they name', () => {
  fc.assert(
    fc.property(stampParts, (p) => {
      expect(parsed(formatStamp(p)), formatStamp(p)).toBe(model(p))
    }),
    { numRuns: 10_000 },
  )
  // Other spellings never throw anything but a validation error.
  fc.assert(fc.property(fc.oneof(timestamp, fc.string({ unit: 'binary', maxLength: 40 })), (value) => void parsed(value)), { numRuns: 5_000 })
})

type Channel = 'read_up_to' | 'dialogs?before' | 'messages?before' | 'message:delivered' | 'message:read'

describe.each(dialects)('timestamps through the server on %s', (dialect) => {
  let target: Target
  let me: Account
  let dialogId: number
  let messageId: number
  let bystanders: Bystanders
  let ws: Client

  const connectWs = () => Client.login(`ws://${target.base}`, { access_token: me.token } as Session)

  beforeAll(async () => {
    ;({ target, me, dialogId, messageId, bystanders } = await startScene(dialect))
    ws = await connectWs()
  }, 30_000)
  afterAll(() => target?.stop())

  /** 200 / no error frame, or 422 / validation_failed naming the field; anything else fails. */
  async function submit(channel: Channel, at: string): Promise<'ok' | 'invalid'> {
    const base = `http://${target.base}`
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${me.token}` }
    if (channel === 'read_up_to' || channel === 'dialogs?before' || channel === 'messages?before') {
      const res =
        channel === 'read_up_to'
          ? await fetch(`${base}/dialogs/${dialogId}/read_up_to`, { method: 'POST', headers, body: JSON.stringify({ last_read_message_id: messageId, read_at: at }) })
          : await fetch(`${base}${channel === 'dialogs?before' ? '/dialogs' : `/dialogs/${dialogId}/messages`}?before=${encode(at)}`, { headers })
      const text = await res.text()
      expectContractAnswer(`${channel} ${at}`, res.status, res.headers.get('content-type'), text)
      if (res.status === 200) return 'ok'
      expect({ at, status: res.status, body: JSON.parse(text) }).toMatchObject({
        status: 422,
        body: { error: { code: 'validation_failed', details: { field: channel === 'read_up_to' ? 'read_at' : 'before' } } },
      })
      return 'invalid'
    }
    if (ws.ws.readyState !== WebSocket.OPEN) ws = await connectWs()
    const field = channel === 'message:read' ? 'read_at' : 'delivered_at'
    ws.send(channel === 'message:read' ? { type: channel, dialog_id: dialogId, last_read_message_id: messageId, read_at: at } : { type: channel, message_id: messageId, delivered_at: at })
    let frames: Frame[]
    try {
      frames = await ws.drain()
    } catch {
      // Invalid frames spend the connection's budget (#13 item 11): its error frame came, then 1008.
      expect((await ws.closed).code).toBe(1008)
      frames = ws.frames.splice(0)
    }
    const errors = frames.filter((f) => f.type === 'error')
    if (errors.length === 0) return 'ok'
    expect({ at, errors }).toMatchObject({ errors: [{ code: 'validation_failed', details: { field }, frame_type: channel }] })
    return 'invalid'
  }

  test('every timestamp input answers as the model says (200 or 422), never 500; other users\' sends all commit and are published', async () => {
    const channel = fc.constantFrom<Channel>('read_up_to', 'dialogs?before', 'messages?before', 'message:delivered', 'message:read')
    await fc.assert(
      fc.asyncProperty(channel, stampParts, async (channel, p) => {
        const at = formatStamp(p)
        expect({ at, answer: await submit(channel, at) }).toEqual({ at, answer: model(p) === undefined ? 'invalid' : 'ok' })
      }),
      { numRuns: RUNS * 2 },
    )
    // Other spellings: either answer, never a fault.
    await fc.assert(fc.asyncProperty(channel, timestamp, async (channel, at) => void (await submit(channel, at))), { numRuns: RUNS / 2 })
    await target.expectAlive()
    await bystanders.expectAllDelivered()
  }, 60_000)
})
