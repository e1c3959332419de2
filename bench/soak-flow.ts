/**
 * The soak's load-generator side (a loadgen.ts job): a sender and a receiver connection per dialog, an
 * open loop at a fixed rate, every message answered by `message:delivered`, and connections dropping and
 * coming back all along, each the way the client does it (src/client): its unacknowledged and unsent
 * messages resent after auth:ok with their client_msg_id, then `GET /dialogs` and what its dialog missed
 * fetched with `after_id`. A line per window goes to stdout; at the end every acknowledged message is
 * checked to have reached its receiver, live or caught up.
 */
import { open, ratePacer, type Latency, type Pair } from './loadgen'

export interface SoakJob {
  mode: 'soak'
  ws: string
  http: string
  pairs: Pair[]
  rate: number
  seconds: number
  /** One line of figures per window (a minute in the full soak). */
  windowSeconds: number
  /** Connections that drop and come back per minute, spread evenly over it. */
  reconnectsPerMinute: number
  /** How long a dropped connection stays away: the messages sent meanwhile are fetched on its return. */
  offlineMs: number
}

export interface SoakWindow {
  window: number
  /** Seconds since the load started, at the window's end. */
  at: number
  sendsPerSec: number
  acksPerSec: number
  /** Live message:new frames new to their receiver (what was caught up is counted apart). */
  deliveriesPerSec: number
  ack: Latency
  delivery: Latency
  /** Messages a receiver fetched with after_id after coming back, that it had not had live (window 1: also what the dialogs held before). */
  caughtUp: number
  reconnects: number
  reconnectFailures: number
  errors: Record<string, number>
  /** Connections open at the window's end. */
  open: number
  loadgenRssMiB: number
  /** The load generator's CPU time over the window per second of it (it shares the cores with the server). */
  loadgenCpu: number
}

export interface SoakResult {
  windows: SoakWindow[]
  /** Send→delivery over every live delivery of the first five windows, and of the last five. */
  firstFive: Latency
  lastFive: Latency
  sent: number
  acked: number
  resent: number
  /** Acknowledged messages missing at their receiver after a final after_id fill: should be 0. */
  lost: number
  /** Messages never acknowledged after the load stopped and the connections settled: should be 0. */
  unacked: number
}

/** Same definition as loadgen.ts's latency (the sample at floor(n·p)), sorted natively: a window holds ~10⁵–10⁶ samples. */
function percentiles(samples: number[]): Latency {
  const sorted = Float64Array.from(samples).sort()
  const at = (p: number) => (sorted.length ? Math.round(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]! * 100) / 100 : NaN)
  return { p50: at(0.5), p99: at(0.99) }
}

/** What a connection has of its dialog: everything up to `seq` (message `id`), and what came after a gap. */
class Received {
  seq = 0
  id = 0
  private readonly ahead = new Map<number, number>()
  /** True when the message is new here. */
  add(seq: number, id: number): boolean {
    if (seq <= this.seq || this.ahead.has(seq)) return false
    this.ahead.set(seq, id)
    for (let next = this.ahead.get(this.seq + 1); next !== undefined; next = this.ahead.get(this.seq + 1)) {
      this.ahead.delete(++this.seq)
      this.id = next
    }
    return true
  }
}

interface Connection {
  pair: number
  role: 'sender' | 'receiver'
  token: string
  socket?: WebSocket
  received: Received
  /** A sender's outbox: client_msg_id → the frame, and whether it went out on the current socket. */
  outbox: Map<string, { frame: string; sent: boolean }>
}

interface MessageLike {
  id: number
  seq: number
  client_msg_id: string
}

export async function soakFlow(job: SoakJob): Promise<SoakResult> {
  const prefix = Math.random().toString(36).slice(2, 8)
  // Send times by client_msg_id, removed at the ack (ackAt) and at delivery or catch-up (deliverAt): bounded.
  const ackAt = new Map<string, number>()
  const deliverAt = new Map<string, number>()
  const acked = job.pairs.map(() => 0)
  let window = newWindow()
  let firstFive: number[] = []
  let lastFive: number[] = []
  let counter = 0
  let resent = 0
  let stopped = false

  const senders: Connection[] = job.pairs.map((p, pair) => ({ pair, role: 'sender', token: p.senderToken, received: new Received(), outbox: new Map() }))
  const receivers: Connection[] = job.pairs.map((p, pair) => ({ pair, role: 'receiver', token: p.receiverToken, received: new Received(), outbox: new Map() }))

  const transmit = (c: Connection, id: string, frame: string) => {
    ackAt.set(id, performance.now())
    deliverAt.set(id, performance.now())
    c.socket!.send(frame)
    window.sends++
  }
  const send = (pair: number) => {
    const c = senders[pair]!
    const id = `${prefix}-${counter++}`
    const frame = JSON.stringify({ type: 'message:send', dialog_id: job.pairs[pair]!.dialogId, client_msg_id: id, msg_type: 'text', text: 'benchmark message of typical size' })
    c.outbox.set(id, { frame, sent: c.socket !== undefined })
    if (c.socket) transmit(c, id, frame)
  }

  const onFrame = (c: Connection) => (frame: { type: string; [k: string]: any }) => {
    if (frame.type === 'error') window.errors[frame.code] = (window.errors[frame.code] ?? 0) + 1
    if (frame.type === 'message:ack') {
      const message = frame.message as MessageLike
      c.received.add(message.seq, message.id)
      if (c.outbox.delete(frame.client_msg_id)) acked[c.pair]!++
      const t0 = ackAt.get(frame.client_msg_id)
      if (t0 === undefined) return
      ackAt.delete(frame.client_msg_id)
      window.acks++
      window.ackLat.push(performance.now() - t0)
    } else if (frame.type === 'message:new') {
      const message = frame.message as MessageLike
      if (!c.received.add(message.seq, message.id)) return
      if (!stopped) c.socket?.send(JSON.stringify({ type: 'message:delivered', message_id: message.id }))
      const t0 = deliverAt.get(message.client_msg_id)
      if (t0 === undefined) return
      deliverAt.delete(message.client_msg_id)
      window.deliveries++
      window.delLat.push(performance.now() - t0)
    }
  }

  const get = async (c: Connection, path: string) => {
    const res = await fetch(job.http + path, { headers: { authorization: `Bearer ${c.token}` } })
    if (res.status !== 200) throw new Error(`GET ${path}: ${res.status}`)
    return res.json() as Promise<{ messages: MessageLike[]; has_more: boolean }>
  }
  /** Everything after the connection's last contiguous message, page by page, as the client's fill does. */
  const fill = async (c: Connection) => {
    let fetched = 0
    for (;;) {
      const page = await get(c, `/dialogs/${job.pairs[c.pair]!.dialogId}/messages?after_id=${c.received.id}&limit=100`)
      for (const message of page.messages)
        if (c.received.add(message.seq, message.id) && c.role === 'receiver') {
          fetched++
          deliverAt.delete(message.client_msg_id)
        }
      if (!page.has_more || !page.messages.length) break
    }
    window.caughtUp += fetched
    // One receipt for the lot: the delivered watermark means "up to".
    if (fetched && c.role === 'receiver' && !stopped) c.socket?.send(JSON.stringify({ type: 'message:delivered', message_id: c.received.id }))
  }

  const connect = async (c: Connection) => {
    const socket = await open(job.ws, c.token, onFrame(c))
    if (!(socket instanceof WebSocket)) throw new Error('the soak speaks the JSON wire')
    c.socket = socket
    // Closed by the server (not by the reconnect timer, which unsets c.socket first): counted, and the connection comes back as the client's would.
    socket.addEventListener('close', () => {
      if (c.socket !== socket || stopped) return
      window.errors.closed_by_server = (window.errors.closed_by_server ?? 0) + 1
      c.socket = undefined
      comeBack(c)
    })
    // After auth:ok, as the client does: the outbox first (unacknowledged ones again, with their ids), then the catch-up.
    for (const [id, entry] of c.outbox) {
      if (entry.sent) {
        resent++
        ackAt.delete(id)
        deliverAt.delete(id)
        socket.send(entry.frame)
      } else transmit(c, id, entry.frame)
      entry.sent = true
    }
    await get(c, '/dialogs')
    await fill(c)
  }
  const away = new Set<Promise<void>>()
  /** Back after `offlineMs`, trying again every `offlineMs` until it is. */
  const comeBack = (c: Connection) => {
    const back: Promise<void> = (async () => {
      for (;;) {
        await Bun.sleep(job.offlineMs)
        try {
          await connect(c)
          window.reconnects++
          return
        } catch {
          window.reconnectFailures++
          const half = c.socket
          c.socket = undefined
          half?.close()
        }
      }
    })().finally(() => away.delete(back))
    away.add(back)
  }

  const all = senders.flatMap((s, i) => [s, receivers[i]!])
  for (let i = 0; i < all.length; i += 200) await Promise.all(all.slice(i, i + 200).map(connect))
  // What the dialogs held before the load (the peak's messages, fetched by the first catch-up): the
  // loss check counts from there. Nothing is sent until every connection is up.
  const before = receivers.map((r) => r.received.seq)

  // Reconnects: one every 60 s / reconnectsPerMinute, walking the connections with a stride coprime to
  // their number, so that every one drops in turn and a dialog's two ends rarely drop together.
  const stride = coprimeStride(all.length)
  let next = 0
  const reconnects = job.reconnectsPerMinute > 0 ? setInterval(() => {
    const c = all[(next++ * stride) % all.length]!
    if (!c.socket) return
    const socket = c.socket
    c.socket = undefined
    socket.close(1000, 'soak reconnect')
    comeBack(c)
  }, 60_000 / job.reconnectsPerMinute) : undefined

  const windows: SoakWindow[] = []
  const count = Math.round(job.seconds / job.windowSeconds)
  const pacer = ratePacer(job.rate, job.pairs.length)
  const started = performance.now()
  let windowStarted = started
  let cpuBefore = process.cpuUsage()
  pacer.start(send)
  for (let w = 1; w <= count; w++) {
    await Bun.sleep(Math.max(0, started + w * job.windowSeconds * 1000 - performance.now()))
    const now = performance.now()
    const seconds = (now - windowStarted) / 1000
    const ended = window
    window = newWindow()
    const cpu = process.cpuUsage(cpuBefore)
    cpuBefore = process.cpuUsage()
    windowStarted = now
    if (w <= 5) firstFive = firstFive.concat(ended.delLat)
    if (w > count - 5) lastFive = lastFive.concat(ended.delLat)
    const line: SoakWindow = {
      window: w,
      at: Math.round((now - started) / 1000),
      sendsPerSec: Math.round(ended.sends / seconds),
      acksPerSec: Math.round(ended.acks / seconds),
      deliveriesPerSec: Math.round(ended.deliveries / seconds),
      ack: percentiles(ended.ackLat),
      delivery: percentiles(ended.delLat),
      caughtUp: ended.caughtUp,
      reconnects: ended.reconnects,
      reconnectFailures: ended.reconnectFailures,
      errors: ended.errors,
      open: all.filter((c) => c.socket).length,
      loadgenRssMiB: Math.round(process.memoryUsage.rss() / 2 ** 20),
      loadgenCpu: Math.round((cpu.user + cpu.system) / 1e4 / seconds) / 100,
    }
    windows.push(line)
    console.log(JSON.stringify(line))
  }
  pacer.stop()
  clearInterval(reconnects)
  await Promise.all(away)
  // In-flight sends settle, then every receiver fills what it lacks, as the client does on a seq gap.
  await Bun.sleep(2000)
  stopped = true
  for (let i = 0; i < receivers.length; i += 50) await Promise.all(receivers.slice(i, i + 50).map(fill))
  const lost = receivers.reduce((n, r) => n + Math.max(0, acked[r.pair]! - (r.received.seq - before[r.pair]!)), 0)
  const unacked = senders.reduce((n, s) => n + s.outbox.size, 0)
  for (const c of all) c.socket?.close(1000, 'soak over')
  return {
    windows,
    firstFive: percentiles(firstFive),
    lastFive: percentiles(lastFive),
    sent: counter,
    acked: acked.reduce((a, b) => a + b, 0),
    resent,
    lost,
    unacked,
  }
}

function newWindow() {
  return { sends: 0, acks: 0, deliveries: 0, ackLat: [] as number[], delLat: [] as number[], caughtUp: 0, reconnects: 0, reconnectFailures: 0, errors: {} as Record<string, number> }
}

function coprimeStride(n: number): number {
  const gcd = (a: number, b: number): number => (b ? gcd(b, a % b) : a)
  let stride = Math.floor(n * 0.3845) | 1
  while (gcd(stride, n) !== 1) stride += 2
  return stride
}
