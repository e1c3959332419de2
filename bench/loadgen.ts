import { openSocketIo, type FrameSocket } from './socketio-client'
import { soakFlow, type SoakJob } from './soak-flow'

/**
 * The load generator: runs one job (read from the JSON file named on the command line) in its own
 * process and prints one JSON result line. Every run is bounded in time and stops by itself.
 */
export interface Pair {
  dialogId: number
  senderToken: string
  receiverToken: string
}

export type Job =
  /** `receipts`: every receiver answers each message:new with message:delivered, as a real client does. */
  | { mode: 'closed'; ws: string; pairs: Pair[]; inFlight: number; seconds: number; receipts?: boolean }
  | { mode: 'open'; ws: string; pairs: Pair[]; rate: number; seconds: number }
  | { mode: 'fanout'; ws: string; dialogId: number; senderToken: string; deviceTokens: string[]; inFlight: number; seconds: number }
  | { mode: 'connect'; ws: string; tokens: string[]; count: number; holdSeconds: number }
  | { mode: 'http'; base: string; paths: string[]; token?: string; concurrency: number; seconds: number }
  | SoakJob

export interface Latency {
  p50: number
  p99: number
}

export interface FlowResult {
  sent: number
  acksPerSec: number
  deliveriesPerSec: number
  ack: Latency
  delivery: Latency
  errors: number
}

const percentile = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]! : NaN)
export const latency = (samples: number[]): Latency => {
  const sorted = samples.sort((a, b) => a - b)
  return { p50: round(percentile(sorted, 0.5)), p99: round(percentile(sorted, 0.99)) }
}
const round = (n: number) => Math.round(n * 100) / 100

/** A URL with EIO=4 speaks Socket.IO (see socketio-client.ts); any other, our JSON frames. */
export function open(url: string, token: string, onFrame: (frame: { type: string; [k: string]: any }) => void): Promise<FrameSocket> {
  if (url.includes('EIO=4')) return openSocketIo(url, token, onFrame)
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    const timer = setTimeout(() => reject(new Error('connect timeout')), 30_000)
    ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', access_token: token }))
    ws.onerror = () => reject(new Error(`websocket error on ${url}`))
    ws.onmessage = (event) => {
      const frame = JSON.parse(String(event.data))
      if (frame.type === 'auth:ok') {
        clearTimeout(timer)
        ws.onmessage = (e) => onFrame(JSON.parse(String(e.data)))
        resolve(ws)
      } else reject(new Error(`auth failed: ${event.data}`))
    }
  })
}

/** When each sender sends: closed loop (on each ack) or open loop (at a fixed rate). */
export interface Pacer {
  start(send: (i: number) => void): void
  acked(send: (i: number) => void, i: number): void
  stop(): void
}

/** A sender and a receiver connection per dialog; measures acks and deliveries after a 10 % warm-up. */
async function flow(ws: string, pairs: Pair[], seconds: number, pacer: Pacer, receipts = false): Promise<FlowResult> {
  const sentAt = new Map<string, number>()
  const ackLat: number[] = []
  const delLat: number[] = []
  let acks = 0
  let deliveries = 0
  let errors = 0
  let measuring = false
  let stopped = false
  let counter = 0
  const senders: FrameSocket[] = []
  // Unique per run: a reused client_msg_id would be answered as a duplicate and not delivered.
  const prefix = Math.random().toString(36).slice(2, 8)
  const send = (i: number) => {
    const id = `${prefix}-${counter++}`
    sentAt.set(id, performance.now())
    senders[i]!.send(
      JSON.stringify({ type: 'message:send', dialog_id: pairs[i]!.dialogId, client_msg_id: id, msg_type: 'text', text: 'benchmark message of typical size' }),
    )
  }
  const receivers: FrameSocket[] = []
  await Promise.all(
    pairs.map(async (p, i) => {
      receivers[i] = await open(ws, p.receiverToken, (frame) => {
        if (frame.type === 'error') errors++
        if (frame.type !== 'message:new') return
        if (receipts && !stopped) receivers[i]!.send(JSON.stringify({ type: 'message:delivered', message_id: frame.message.id }))
        const t0 = sentAt.get(frame.message.client_msg_id)
        if (t0 === undefined || !measuring) return
        deliveries++
        delLat.push(performance.now() - t0)
      })
    }),
  )
  await Promise.all(
    pairs.map(async (p, i) => {
      senders[i] = await open(ws, p.senderToken, (frame) => {
        if (frame.type === 'error') errors++
        if (frame.type !== 'message:ack') return
        const t0 = sentAt.get(frame.client_msg_id)
        if (t0 !== undefined && measuring) {
          acks++
          ackLat.push(performance.now() - t0)
        }
        if (!stopped) pacer.acked(send, i)
      })
    }),
  )
  pacer.start(send)
  await Bun.sleep(seconds * 100)
  measuring = true
  const started = performance.now()
  await Bun.sleep(seconds * 1000)
  const elapsed = (performance.now() - started) / 1000
  measuring = false
  stopped = true
  pacer.stop()
  return {
    sent: counter,
    acksPerSec: Math.round(acks / elapsed),
    deliveriesPerSec: Math.round(deliveries / elapsed),
    ack: latency(ackLat),
    delivery: latency(delLat),
    errors,
  }
}

async function run(job: Job): Promise<unknown> {
  switch (job.mode) {
    case 'closed':
      return flow(job.ws, job.pairs, job.seconds, {
        start: (send) => job.pairs.forEach((_, i) => Array.from({ length: job.inFlight }, () => send(i))),
        acked: (send, i) => send(i),
        stop: () => {},
      }, job.receipts)
    case 'open':
      return flow(job.ws, job.pairs, job.seconds, ratePacer(job.rate, job.pairs.length))
    case 'fanout':
      return fanout(job)
    case 'connect':
      return connectMany(job)
    case 'http':
      return http(job)
    case 'soak':
      return soakFlow(job)
  }
}

/** Open loop: `rate` sends a second, round-robin over `senders`, whatever the acks do. */
export function ratePacer(rate: number, senders: number): Pacer {
  let timer: ReturnType<typeof setInterval> | undefined
  return {
    start: (send) => {
      // Ticks of 5 ms. What is owed follows the clock, not the tick count: a late tick sends what the rate
      // asked for meanwhile, so the load is the rate stated (timers slip, and counting ticks sent about 4 % less).
      const started = performance.now()
      let sent = 0
      timer = setInterval(() => {
        const owed = Math.floor(((performance.now() - started) / 1000) * rate)
        for (; sent < owed; sent++) send(sent % senders)
      }, 5)
    },
    acked: () => {},
    stop: () => clearInterval(timer),
  }
}

async function fanout(job: Extract<Job, { mode: 'fanout' }>) {
  let deliveries = 0
  let measuring = false
  const delLat: number[] = []
  const sentAt = new Map<string, number>()
  for (let i = 0; i < job.deviceTokens.length; i += 200)
    await Promise.all(
      job.deviceTokens.slice(i, i + 200).map((token) =>
        open(job.ws, token, (frame) => {
          if (frame.type !== 'message:new' || !measuring) return
          deliveries++
          const t0 = sentAt.get(frame.message.client_msg_id)
          if (t0 !== undefined) delLat.push(performance.now() - t0)
        }),
      ),
    )
  let counter = 0
  let running = true
  const sender = await open(job.ws, job.senderToken, (frame) => {
    if (frame.type === 'message:ack' && running) send()
  })
  const prefix = Math.random().toString(36).slice(2, 8)
  const send = () => {
    const id = `${prefix}-${counter++}`
    sentAt.set(id, performance.now())
    sender.send(JSON.stringify({ type: 'message:send', dialog_id: job.dialogId, client_msg_id: id, msg_type: 'text', text: 'fan-out message' }))
  }
  for (let k = 0; k < job.inFlight; k++) send()
  await Bun.sleep(job.seconds * 100)
  measuring = true
  const started = performance.now()
  await Bun.sleep(job.seconds * 1000)
  measuring = false
  running = false
  const elapsed = (performance.now() - started) / 1000
  return { devices: job.deviceTokens.length, deliveriesPerSec: Math.round(deliveries / elapsed), delivery: latency(delLat) }
}

/** Opens `count` authenticated idle connections (tokens reused round-robin), reports, and holds them a while. */
async function connectMany(job: Extract<Job, { mode: 'connect' }>) {
  const started = performance.now()
  const sockets: FrameSocket[] = []
  let failed = 0
  for (let i = 0; i < job.count; i += 250)
    await Promise.all(
      Array.from({ length: Math.min(250, job.count - i) }, (_, k) =>
        open(job.ws, job.tokens[(i + k) % job.tokens.length]!, () => {}).then(
          (ws) => void sockets.push(ws),
          () => void failed++,
        ),
      ),
    )
  const report = { connected: sockets.length, failed, seconds: round((performance.now() - started) / 1000) }
  // The first line, while the connections are held open for the server's memory to be read.
  console.log(JSON.stringify(report))
  await Bun.sleep(job.holdSeconds * 1000)
  return report
}

async function http(job: Extract<Job, { mode: 'http' }>) {
  const headers = job.token ? { authorization: `Bearer ${job.token}` } : undefined
  const results: Record<string, { requestsPerSec: number; p50: number; p99: number; errors: number }> = {}
  for (const path of job.paths) {
    const lat: number[] = []
    let errors = 0
    const deadline = performance.now() + job.seconds * 1000
    const started = performance.now()
    await Promise.all(
      Array.from({ length: job.concurrency }, async () => {
        while (performance.now() < deadline) {
          const t0 = performance.now()
          const res = await fetch(job.base + path, { headers })
          await res.arrayBuffer()
          if (res.status !== 200) errors++
          lat.push(performance.now() - t0)
        }
      }),
    )
    const elapsed = (performance.now() - started) / 1000
    results[path] = { requestsPerSec: Math.round(lat.length / elapsed), ...latency(lat), errors }
  }
  return results
}

if (import.meta.main) {
  const job = (await Bun.file(process.argv[2]!).json()) as Job
  // A soak runs for its stated length; every other job is over well within five minutes.
  const timeout = setTimeout(() => {
    console.error('loadgen: hard timeout')
    process.exit(2)
  }, job.mode === 'soak' ? (job.seconds + 300) * 1000 : 300_000)
  const result = await run(job)
  clearTimeout(timeout)
  console.log(JSON.stringify(result))
  process.exit(0)
}
