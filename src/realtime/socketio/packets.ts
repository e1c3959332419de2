import { AppError, errorBody } from '../../errors'
import { parseJson } from '../../shared/json'
import { errorFrame, type RawFrame } from '../protocol'
import type { Wire } from '../wire'

/*
 * Socket.IO v5 packets, as carried in Engine.IO `message` packets (type 4): `<type>[<n>-][<nsp>,][<ack id>][JSON]`.
 * Only namespace "/" is served, so the namespace is written only in a CONNECT_ERROR for another one.
 */

export const CONNECT = '0'
export const DISCONNECT = '1'
export const EVENT = '2'
export const ACK = '3'
export const CONNECT_ERROR = '4'
export const BINARY_EVENT = '5'
export const BINARY_ACK = '6'

export interface Packet {
  type: string
  nsp: string
  id: number | undefined
  data: unknown
}

/** One Socket.IO packet (the text after Engine.IO's `4`); undefined when it is not one. */
export function parsePacket(text: string): Packet | undefined {
  const type = text[0]
  if (type === undefined || type < CONNECT || type > BINARY_ACK) return undefined
  let i = 1
  if (type === BINARY_EVENT || type === BINARY_ACK) {
    const dash = text.indexOf('-', i)
    if (dash < 0) return undefined
    i = dash + 1
  }
  let nsp = '/'
  if (text[i] === '/') {
    const comma = text.indexOf(',', i)
    nsp = comma < 0 ? text.slice(i) : text.slice(i, comma)
    i = comma < 0 ? text.length : comma + 1
  }
  let digits = i
  while (digits < text.length && text.charCodeAt(digits) >= 48 && text.charCodeAt(digits) <= 57) digits++
  const id = digits > i ? Number(text.slice(i, digits)) : undefined
  // An id past 2^53 would be answered under another number, which no client would match.
  if (id !== undefined && !Number.isSafeInteger(id)) return undefined
  let data: unknown
  if (digits < text.length) {
    try {
      data = parseJson(text.slice(digits))
    } catch {
      return undefined
    }
  }
  return { type, nsp, id, data }
}

/**
 * An event packet's arguments as a client frame: `emit("message:send", {…})` is the frame
 * `{type: "message:send", …}`; `send({type, …})` (the `message` event) is the frame itself.
 */
export function frameOf(data: unknown): RawFrame | AppError {
  if (!Array.isArray(data) || typeof data[0] !== 'string') return new AppError('bad_request', 'an event needs a name')
  const [name, payload] = data as [string, unknown]
  if (payload !== undefined && (payload === null || typeof payload !== 'object' || Array.isArray(payload)))
    return new AppError('bad_request', "an event's payload must be an object")
  if (name === 'message') {
    const frame = (payload ?? {}) as RawFrame
    return typeof frame.type === 'string' ? frame : new AppError('bad_request', 'frame has no string "type"', { field: 'type' })
  }
  // The payload was parsed for this packet alone: it becomes the frame, without a copy.
  const frame = (payload ?? {}) as RawFrame
  frame.type = name
  return frame
}

const TYPE_FIRST = '{"type":"'

/**
 * A frame (`{"type":"x",…}`) as its type and the JSON of the rest, without parsing it: every frame we
 * encode starts with its type, so the rest is a slice. (Any other shape is parsed, as a fallback.)
 */
function split(frame: string): [name: string, payload: string] {
  if (frame.startsWith(TYPE_FIRST)) {
    const end = frame.indexOf('"', TYPE_FIRST.length)
    const name = frame.slice(TYPE_FIRST.length, end)
    // `}` or `,"a":1}` follows the type.
    if (!name.includes('\\')) return [name, end + 2 === frame.length ? '{}' : `{${frame.slice(end + 2)}`]
  }
  const { type, ...payload } = JSON.parse(frame) as RawFrame
  return [String(type), JSON.stringify(payload)]
}

/** An event packet's arguments: `["x",{…}]`. */
function eventArgs(frame: string): string {
  const [name, payload] = split(frame)
  return `[${JSON.stringify(name)},${payload}]`
}

/** Client frames sent with an ack callback → its id; taken (deleted) by the one answer the frame gets. */
const acks = new WeakMap<RawFrame, number>()

export function expectsAck(frame: RawFrame, id: number): void {
  acks.set(frame, id)
}

function takeAck(frame: RawFrame | undefined): number | undefined {
  if (frame === undefined) return undefined
  const id = acks.get(frame)
  if (id !== undefined) acks.delete(frame)
  return id
}

/** Engine.IO message packets holding Socket.IO packets of namespace "/". */
export const socketIoWire: Wire = {
  prefix: 'io:',
  event: (frame) => `4${EVENT}${eventArgs(frame)}`,
  answer(frame, request) {
    const id = takeAck(request)
    return id === undefined ? this.event(frame) : `4${ACK}${id}[${split(frame)[1]}]`
  },
  failure(error, request) {
    const id = takeAck(request)
    if (id === undefined) return this.event(errorFrame(error, request))
    const { error: body } = errorBody(error)
    // As the JSON wire's error frame: when to try again (REST says it in Retry-After).
    return `4${ACK}${id}[${JSON.stringify({ error: error.retryAfter === undefined ? body : { ...body, retry_after: error.retryAfter } })}]`
  },
  done(request, event) {
    const id = takeAck(request)
    if (id === undefined) return undefined
    return `4${ACK}${id}[${event === undefined ? '{"ok":true}' : split(event)[1]}]`
  },
}

export const connectPacket = (sid: string) => `4${CONNECT}{"sid":"${sid}"}`
export const connectErrorPacket = (nsp: string, message: string, data?: unknown) =>
  `4${CONNECT_ERROR}${nsp === '/' ? '' : `${nsp},`}${JSON.stringify(data === undefined ? { message } : { message, data })}`
export const DISCONNECT_PACKET = `4${DISCONNECT}`
