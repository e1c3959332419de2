/**
 * `bench soak`: does the server stay flat under a long, realistic load? On a fresh server (SQLite FULL),
 * 2 000 connections (a sender and a receiver for each of 1 000 dialogs): first their closed-loop peak with
 * receipts, for a few seconds; then an open loop at half that peak for 30 minutes (--quick: 2), receipts
 * on, a tenth of the connections dropping and catching up each minute (soak-flow.ts). At the end of each
 * window (a minute; --quick: 10 s) the server process is read from outside: RSS, open fds and CPU from
 * /proc, event-loop lag from its /metrics histogram (Metrics.sampleEventLoop) and /metrics' answer time.
 */
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs'
import { join } from 'node:path'
import type { FlowResult, Job, Latency } from './loadgen'
import { soakChart } from './soak-chart'
import type { SoakResult, SoakWindow } from './soak-flow'
import { rssKiB, startProject, type Target } from './targets'

export interface SoakContext {
  quick: boolean
  loadgen: <T>(job: Job, onLine?: (line: string) => Promise<void>, everyLine?: boolean) => Promise<T>
  rows: string[][]
  results: Record<string, unknown>
}

const DIALOGS = 1000
/** The share of the peak to soak at; BENCH_SOAK_SHARE moves it (a machine that cannot hold 50 % for long). */
const SHARE = Number(process.env.BENCH_SOAK_SHARE ?? 0.5)
/**
 * A fixed rate (messages/s) instead of a share of the peak: the peak probe swings between runs (8–17.5 k
 * on one day), and soaks at one rate compare; BENCH_SOAK_MINUTES shortens or lengthens the run.
 */
const FIXED_RATE = process.env.BENCH_SOAK_RATE ? Number(process.env.BENCH_SOAK_RATE) : undefined
const MINUTES = process.env.BENCH_SOAK_MINUTES ? Number(process.env.BENCH_SOAK_MINUTES) : undefined
/** Read by a 100 ms timer in the server (Metrics.sampleEventLoop); buckets in seconds. */
const LAG = 'chat_event_loop_lag_seconds'
/** fds allowed to differ between the medians of the first and last five windows: 1 % of the connections. */
const FD_SLACK = 20

interface ServerSample {
  rssMiB: number
  /** The JavaScript heap in use (/metrics): growth in RSS without it is outside JavaScript (SQLite, buffers). */
  heapMiB: number
  fds: number
  /** Event-loop lag over the window: the mean, and the bucket bound below which 99 % of the samples fell. */
  lagMeanMs: number
  lagP99Ms: number
  /** How long /metrics took to answer: the lag as a client sees it, also when the timer itself is starved. */
  metricsMs: number
  /** The writer's transactions over the window (sends and receipts share them), and their mean size. */
  commitsPerSec: number
  meanBatch: number
  wsConnections: number
  /** The SQLite database and its WAL, which grow with every message (the page cache does not). */
  dbMiB: number
  /** CPU time over the window per second of it: 1 = one core busy. */
  cpu: number
  /**
   * The main thread's time runnable but waiting for a core, per second (/proc/<pid>/schedstat): what other
   * processes on a shared machine take from it.
   */
  cpuWait: number
  /** What the server wrote to storage over the window (/proc/<pid>/io write_bytes: WAL, checkpoints, the database), per second and per message. */
  writeMiBPerSec: number
  writeKiBPerMessage: number
}

interface LagHistogram {
  buckets: [number, number][]
  sum: number
  count: number
  batches: { count: number; sum: number }
}

async function lagHistogram(t: Target): Promise<LagHistogram & { wsConnections: number; metricsMs: number; heapMiB: number }> {
  const started = performance.now()
  const text = await (await fetch(`${t.http}/metrics`)).text()
  const metricsMs = round(performance.now() - started)
  const buckets = [...text.matchAll(/chat_event_loop_lag_seconds_bucket\{le="([^"]+)"\} (\d+)/g)].map((m) => [m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2])] as [number, number])
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN)
  const batches = { count: value('chat_write_batch_size_count'), sum: value('chat_write_batch_size_sum') }
  return { buckets, sum: value(`${LAG}_sum`), count: value(`${LAG}_count`), batches, wsConnections: value('chat_ws_connections'), metricsMs, heapMiB: round(value('nodejs_heap_size_used_bytes') / 2 ** 20) }
}

/** The lag over one window, from two cumulative readings of the histogram. */
function lagBetween(before: LagHistogram, after: LagHistogram) {
  const count = after.count - before.count
  // No sample in a whole window: the timer never ran (a loop blocked that long would show in the next).
  const mean = count ? ((after.sum - before.sum) / count) * 1000 : NaN
  const p99 = count ? (after.buckets.find(([, n], i) => n - before.buckets[i]![1] >= 0.99 * count)?.[0] ?? NaN) : NaN
  return { lagMeanMs: round(mean), lagP99Ms: p99 * 1000 }
}

/** utime + stime of a process, in seconds (/proc/<pid>/stat fields 14 and 15, clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/** The main thread's time waiting on a run queue, in seconds (the second field of /proc/<pid>/schedstat, ns). */
function runQueueSeconds(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]) / 1e9
}

/** Bytes the process has caused to be written to storage (/proc/<pid>/io). */
function writeBytes(pid: number): number {
  return Number(/^write_bytes: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1] ?? NaN)
}

function sampleProcess(t: Target) {
  const pid = t.pids[0]!
  const dir = readlinkSync(`/proc/${pid}/cwd`)
  const size = (file: string) => {
    try {
      return statSync(join(dir, file)).size
    } catch {
      return 0
    }
  }
  return {
    rssMiB: round(rssKiB(t) / 1024),
    fds: readdirSync(`/proc/${pid}/fd`).length,
    dbMiB: round((size('chat.db') + size('chat.db-wal')) / 2 ** 20),
    cpuSeconds: cpuSeconds(pid),
    waitSeconds: runQueueSeconds(pid),
    written: writeBytes(pid),
    at: performance.now(),
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1]!
const loadAverage = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number)
const round = (n: number) => Math.round(n * 100) / 100
const signed = (n: number) => (n > 0 ? `+${n}` : String(n))

export async function soak({ quick, loadgen, rows, results }: SoakContext): Promise<string> {
  const minutes = MINUTES ?? (quick ? 2 : 30)
  const windowSeconds = quick ? 10 : 60
  const loadBefore = loadAverage()

  // Access tokens outlive the run: the reconnects soak the socket and the catch-up, not the refresh.
  const t = await startProject('sqlite-full', { ACCESS_TOKEN_TTL_SECONDS: String(minutes * 60 + 3600) })
  const samples: (SoakWindow & { server: ServerSample })[] = []
  let result: SoakResult
  let peak: FlowResult
  let rate: number
  let idle: ReturnType<typeof sampleProcess>
  try {
    const pairs = await t.pairs(DIALOGS)
    // The peak of this very load, closed loop: each of the 1 000 senders with one message in flight (a
    // phone waiting for its ack), receipts on, rather than bench e2e's 50 senders with 8 each.
    peak = await loadgen<FlowResult>({ mode: 'closed', ws: t.ws, pairs, inFlight: 1, seconds: quick ? 2 : 5, receipts: true })
    rate = FIXED_RATE ?? Math.round(peak.acksPerSec * SHARE)
    console.error(`… soak: peak ${peak.acksPerSec} acks/s with receipts; ${minutes} min at ${rate}/s`)
    await Bun.sleep(1000)
    idle = sampleProcess(t)
    let previous = await lagHistogram(t)
    let before = idle
    result = await loadgen<SoakResult>(
      { mode: 'soak', ws: t.ws, http: t.http, pairs, rate, seconds: minutes * 60, windowSeconds, reconnectsPerMinute: DIALOGS * 2 * 0.1, offlineMs: 1000 },
      async (line) => {
        const window = JSON.parse(line) as SoakWindow | SoakResult
        if (!('window' in window)) return
        const histogram = await lagHistogram(t)
        const now = sampleProcess(t)
        const { cpuSeconds, waitSeconds, written, at, ...figures } = now
        const writtenBytes = written - before.written
        const cpu = round((cpuSeconds - before.cpuSeconds) / ((at - before.at) / 1000))
        const cpuWait = round((waitSeconds - before.waitSeconds) / ((at - before.at) / 1000))
        const commits = histogram.batches.count - previous.batches.count
        const server = {
          ...figures,
          cpu,
          cpuWait,
          writeMiBPerSec: round(writtenBytes / 2 ** 20 / ((at - before.at) / 1000)),
          writeKiBPerMessage: round(writtenBytes / 1024 / Math.max(1, window.acksPerSec * ((at - before.at) / 1000))),
          ...lagBetween(previous, histogram),
          wsConnections: histogram.wsConnections,
          metricsMs: histogram.metricsMs,
          heapMiB: histogram.heapMiB,
          commitsPerSec: Math.round(commits / ((at - before.at) / 1000)),
          meanBatch: commits ? round((histogram.batches.sum - previous.batches.sum) / commits) : NaN,
        }
        previous = histogram
        before = now
        samples.push({ ...window, server })
        console.error(`  ${window.window}: ${window.acksPerSec}/s, cpu server ${server.cpu} (waiting ${server.cpuWait}) loadgen ${window.loadgenCpu}, dlv p99 ${window.delivery.p99} ms, RSS ${server.rssMiB} MiB (heap ${server.heapMiB}), fds ${server.fds}, lag ${server.lagMeanMs} ms (p99 ≤ ${server.lagP99Ms}, /metrics ${server.metricsMs} ms), db ${server.dbMiB} MiB, written ${server.writeMiBPerSec} MiB/s (${server.writeKiBPerMessage} KiB/msg), ${server.commitsPerSec} commits/s of ${server.meanBatch}`)
      },
      true,
    )
  } finally {
    await t.stop()
  }
  const loadAfter = loadAverage()

  const goals = verdicts(samples, result)
  const summary = { minutes, windowSeconds, share: FIXED_RATE ? round(FIXED_RATE / peak.acksPerSec) : SHARE, fixedRate: FIXED_RATE !== undefined, dialogs: DIALOGS, connections: DIALOGS * 2, reconnectsPerMinute: DIALOGS * 2 * 0.1, offlineMs: 1000, peak, rate, loadBefore, loadAfter, idle, goals, ...result, windows: samples }
  results.soak = summary
  const mark = (ok: boolean) => (ok ? 'pass' : 'FAIL')
  rows.push(
    ['soak', `${minutes} min @${rate}/s (${Math.round((rate / peak.acksPerSec) * 100)} % of ${peak.acksPerSec}${FIXED_RATE ? ', fixed' : ''}), ${DIALOGS * 2} conns, receipts`, `RSS ${signed(goals.rss.growthPercent)} % (medians: windows 6–10 → last 5)`, mark(goals.rss.pass), `max ${goals.rss.maxMiB} MiB`, '', ''],
    ['soak', 'open fds', `${goals.fds.firstFive} → ${goals.fds.lastFive} (median of first/last 5)`, mark(goals.fds.pass), `max ${goals.fds.max}`, '', ''],
    ['soak', 'delivery p99', `${goals.p99.firstFiveMs} → ${goals.p99.lastFiveMs} ms (first/last 5)`, mark(goals.p99.pass), `×${goals.p99.ratio}`, '', ''],
    ['soak', 'every acked message delivered', `lost ${result.lost}, unacked ${result.unacked}`, mark(result.lost === 0 && result.unacked === 0), `resent ${result.resent}`, `load ${loadBefore.join(' ')} → ${loadAfter.join(' ')}`, ''],
  )
  return chart(samples, goals, windowSeconds, rate)
}

/** The goals of issue #17: flat lines after the first five windows (minutes, in the full run). */
function verdicts(samples: { server: ServerSample }[], result: { firstFive: Latency; lastFive: Latency }) {
  const rss = samples.map((s) => s.server.rssMiB)
  const fds = samples.map((s) => s.server.fds)
  // Medians of five windows, not single samples: RSS swings by tens of MiB from one window to the next
  // with the collector and the allocator, so one sample against another told noise from growth by luck.
  const settled = rss.length > 5 ? rss.slice(5) : rss
  const base = median(settled.slice(0, 5))
  const last = median(settled.slice(-5))
  const growth = (last - base) / base
  // Medians: a sample may catch a reconnect half done or a catch-up request's socket still open.
  const firstFive = median(fds.slice(0, 5))
  const lastFive = median(fds.slice(-5))
  const ratio = result.lastFive.p99 / result.firstFive.p99
  return {
    rss: { baseMiB: base, lastMiB: last, maxMiB: Math.max(...rss), growthPercent: round(growth * 100), pass: growth < 0.05, goal: 'median RSS of the last five windows < 1.05 × the median of windows 6–10' },
    fds: { firstFive, lastFive, max: Math.max(...fds), slack: FD_SLACK, pass: lastFive <= firstFive + FD_SLACK, goal: `median count of the last five windows ≤ median of the first five + ${FD_SLACK}` },
    p99: { firstFiveMs: result.firstFive.p99, lastFiveMs: result.lastFive.p99, ratio: round(ratio), pass: ratio <= 1.5, goal: 'send→delivery p99 over the last five windows ≤ 1.5 × over the first five' },
  }
}

function chart(samples: (SoakWindow & { server: ServerSample })[], goals: ReturnType<typeof verdicts>, windowSeconds: number, rate: number): string {
  const minutes = samples.map((s) => (s.window * windowSeconds) / 60)
  const mark = (ok: boolean) => (ok ? 'pass' : 'FAIL')
  return soakChart(`soak, SQLite FULL: 2 000 connections, ${rate} msg/s with receipts, a tenth reconnecting each minute`, minutes, [
    {
      title: `server RSS (medians, windows 6–10 → last five: ${signed(goals.rss.growthPercent)} %, ${mark(goals.rss.pass)}), its JavaScript heap; database on disk`,
      unit: 'MiB',
      series: [
        { label: 'RSS', values: samples.map((s) => s.server.rssMiB), color: '#1f6feb' },
        { label: 'JavaScript heap in use', values: samples.map((s) => s.server.heapMiB), color: '#2da44e' },
        { label: 'database + WAL', values: samples.map((s) => s.server.dbMiB), color: '#999', dash: '5,4' },
      ],
      references: [{ label: '+5 %', value: goals.rss.baseMiB * 1.05 }],
    },
    {
      title: `server open fds (median of first/last five: ${goals.fds.firstFive} → ${goals.fds.lastFive}, ${mark(goals.fds.pass)})`,
      unit: '',
      series: [{ label: 'fds', values: samples.map((s) => s.server.fds), color: '#1f6feb' }],
    },
    {
      title: 'server event-loop lag: a 100 ms timer, mean per window; and how long /metrics took to answer',
      unit: 'ms',
      series: [
        { label: 'timer lag, mean', values: samples.map((s) => s.server.lagMeanMs), color: '#1f6feb' },
        { label: '/metrics answer', values: samples.map((s) => s.server.metricsMs), color: '#999', dash: '5,4' },
      ],
    },
    {
      // What a message costs the disk: WAL pages, checkpoints and the database, as the process wrote them.
      title: 'server writes to storage (/proc/<pid>/io), per message',
      unit: 'KiB',
      series: [{ label: 'KiB written per message', values: samples.map((s) => s.server.writeKiBPerMessage), color: '#1f6feb' }],
    },
    {
      // On a shared machine this is where the neighbours show: the server wanting more than it gets.
      title: `CPU, cores busy (of ${navigator.hardwareConcurrency}): server and load generator; the server's main thread waiting for one`,
      unit: '',
      series: [
        { label: 'server', values: samples.map((s) => s.server.cpu), color: '#1f6feb' },
        { label: 'load generator', values: samples.map((s) => s.loadgenCpu), color: '#999', dash: '5,4' },
        { label: 'server runnable, waiting for a core', values: samples.map((s) => s.server.cpuWait), color: '#d1242f', dash: '2,3' },
      ],
    },
    {
      title: `p99 per window (delivery, first/last five: ${goals.p99.firstFiveMs} → ${goals.p99.lastFiveMs} ms, ${mark(goals.p99.pass)})`,
      unit: 'ms',
      series: [
        { label: 'send→delivery', values: samples.map((s) => s.delivery.p99), color: '#1f6feb' },
        { label: 'send→ack', values: samples.map((s) => s.ack.p99), color: '#999', dash: '5,4' },
      ],
      references: [{ label: '1.5 × first five', value: goals.p99.firstFiveMs * 1.5 }],
    },
  ])
}
