import { readdirSync } from 'node:fs'

type Labels = Record<string, string>

const labelKey = (labels: Labels) =>
  Object.entries(labels)
    .map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
    .join(',')

class Counter {
  private readonly values = new Map<string, number>()
  constructor(
    readonly name: string,
    readonly help: string,
    readonly kind: 'counter' | 'gauge' = 'counter',
  ) {}

  inc(labels: Labels = {}, by = 1): void {
    this.incKey(labelKey(labels), by)
  }

  private incKey(key: string, by = 1): void {
    this.values.set(key, (this.values.get(key) ?? 0) + by)
  }

  /**
   * `inc` by one label of few values (frame types), on paths every frame takes: each value's key is built
   * once (building it cost 7 % of the server's CPU in bench e2e). One label name per counter.
   */
  incFor(label: string, value: string): void {
    let key = this.keys.get(value)
    if (key === undefined) this.keys.set(value, (key = labelKey({ [label]: value })))
    this.incKey(key)
  }
  private readonly keys = new Map<string, string>()

  set(value: number, labels: Labels = {}): void {
    this.values.set(labelKey(labels), value)
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.kind}`]
    if (this.values.size === 0) lines.push(`${this.name} 0`)
    for (const [key, value] of this.values) lines.push(`${this.name}${key ? `{${key}}` : ''} ${value}`)
    return lines.join('\n')
  }
}

/** A histogram, optionally split by labels (a route, say): one set of buckets per label set. */
class Histogram {
  private readonly series = new Map<string, { counts: number[]; sum: number; count: number }>()
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly buckets: number[],
  ) {}

  observe(value: number, labels?: Labels): void {
    const key = labels ? labelKey(labels) : ''
    let series = this.series.get(key)
    if (!series) this.series.set(key, (series = { counts: this.buckets.map(() => 0), sum: 0, count: 0 }))
    series.sum += value
    series.count += 1
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) series.counts[i]! += 1
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`]
    const series = this.series.size > 0 ? this.series : new Map([['', { counts: this.buckets.map(() => 0), sum: 0, count: 0 }]])
    for (const [key, { counts, sum, count }] of series) {
      const with_ = (extra: string) => `{${key ? `${key},` : ''}${extra}}`
      this.buckets.forEach((le, i) => lines.push(`${this.name}_bucket${with_(`le="${le}"`)} ${counts[i]}`))
      lines.push(`${this.name}_bucket${with_('le="+Inf"')} ${count}`)
      lines.push(`${this.name}_sum${key ? `{${key}}` : ''} ${sum}`, `${this.name}_count${key ? `{${key}}` : ''} ${count}`)
    }
    return lines.join('\n')
  }
}

/** Seconds: from 0.5 ms to 10 s, for request, commit and forwarding latencies. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** The server's Prometheus metrics: a handful, kept in plain numbers so the hot path pays an addition. */
export class Metrics {
  readonly httpRequests = new Counter('chat_http_requests_total', 'HTTP requests by route and status')
  readonly openConnections = new Counter('chat_ws_connections', 'Open WebSocket connections', 'gauge')
  readonly messagesPersisted = new Counter('chat_messages_persisted_total', 'Messages committed to storage')
  readonly writeBatchSize = new Histogram(
    'chat_write_batch_size',
    'Sends committed per write transaction',
    [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
  )
  readonly wsFrames = new Counter('chat_ws_frames_total', 'WebSocket frames received by type')
  readonly wsFramesOut = new Counter(
    'chat_ws_frames_out_total',
    'WebSocket frames sent by type: replies per connection, events per publish (a publish reaches every subscriber)',
  )
  readonly wsClosedSlow = new Counter('chat_ws_slow_consumer_closes_total', 'Connections closed for backpressure')
  readonly httpDuration = new Histogram('chat_http_request_duration_seconds', 'HTTP request latency by route', LATENCY_BUCKETS)
  readonly writerCommit = new Histogram('chat_writer_commit_seconds', 'Time to commit one writer batch', LATENCY_BUCKETS)
  readonly writerRefused = new Counter(
    'chat_writer_refused_total',
    'Sends and receipts refused (rate_limited) because WRITER_QUEUE_MAX were already waiting to be written',
  )
  readonly clusterLag = new Histogram(
    'chat_cluster_forward_lag_seconds',
    'From another node publishing an event on Redis to this node receiving it (clocks of two nodes)',
    LATENCY_BUCKETS,
  )
  readonly clusterIgnored = new Counter(
    'chat_cluster_messages_ignored_total',
    'Cluster messages of a protocol version this node does not speak (a node of another release), by version',
  )
  readonly clusterUnacknowledged = new Counter(
    'chat_cluster_unacknowledged_total',
    'Changes (a session ended, a block, a new dialog) answered before every other node acknowledged applying them, after the 2 s wait',
  )
  readonly eventLoopLag = new Histogram('chat_event_loop_lag_seconds', 'How late a 100 ms timer fires', LATENCY_BUCKETS)
  private readonly startedAt = Date.now() / 1000

  /** Counts an outgoing frame by its type, read from the encoded text (`{"type":"…"` is how every frame starts). */
  frameOut(frame: string): void {
    const end = frame.indexOf('"', 9)
    this.wsFramesOut.incFor('type', frame.startsWith('{"type":"') && end > 9 ? frame.slice(9, end) : 'other')
  }

  /**
   * Samples event-loop lag (a timer's lateness) until the returned function is called. Only a serving
   * process runs it; an app built in a test has no timer.
   */
  sampleEventLoop(everyMs = 100): () => void {
    let expected = performance.now() + everyMs
    const timer = setInterval(() => {
      const now = performance.now()
      this.eventLoopLag.observe(Math.max(0, now - expected) / 1000)
      expected = now + everyMs
    }, everyMs)
    timer.unref()
    return () => clearInterval(timer)
  }
  readonly pushSent = new Counter('chat_push_sent_total', 'Web Push requests a push service accepted')
  readonly pushFailed = new Counter(
    'chat_push_failed_total',
    'Pushes given up, by reason (gone, rejected, expired, queue_full, ended, deleted)',
  )
  readonly pushRetries = new Counter('chat_push_retries_total', 'Push attempts to be tried again, by reason')
  readonly pushQueueDepth = new Counter('chat_push_queue_depth', 'Pushes waiting, retries included', 'gauge')

  render(): string {
    return (
      [
        this.httpRequests,
        this.httpDuration,
        this.openConnections,
        this.messagesPersisted,
        this.writeBatchSize,
        this.writerCommit,
        this.writerRefused,
        this.wsFrames,
        this.wsFramesOut,
        this.wsClosedSlow,
        this.clusterLag,
        this.clusterIgnored,
        this.clusterUnacknowledged,
        this.eventLoopLag,
        this.pushSent,
        this.pushFailed,
        this.pushRetries,
        this.pushQueueDepth,
      ]
        .map((m) => m.render())
        .join('\n') +
      '\n' +
      this.processMetrics() +
      '\n'
    )
  }

  /**
   * The process_* metrics every Prometheus client library exports, and the JavaScript heap's under the
   * names the Node.js client gives them (RSS growing with a flat heap points outside JavaScript), read at
   * scrape time.
   */
  private processMetrics(): string {
    const cpu = process.cpuUsage()
    const memory = process.memoryUsage()
    const gauge = (name: string, help: string, value: number, type = 'gauge') => `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${name} ${value}`
    return [
      gauge('process_cpu_user_seconds_total', 'User CPU time spent', cpu.user / 1e6, 'counter'),
      gauge('process_cpu_system_seconds_total', 'System CPU time spent', cpu.system / 1e6, 'counter'),
      gauge('process_cpu_seconds_total', 'Total user and system CPU time spent', (cpu.user + cpu.system) / 1e6, 'counter'),
      gauge('process_resident_memory_bytes', 'Resident memory size', process.memoryUsage.rss()),
      gauge('process_open_fds', 'Open file descriptors', openFds()),
      gauge('process_start_time_seconds', 'Start time of the process since the epoch', this.startedAt),
      gauge('nodejs_heap_size_total_bytes', 'JavaScript heap size', memory.heapTotal),
      gauge('nodejs_heap_size_used_bytes', 'JavaScript heap in use', memory.heapUsed),
      gauge('nodejs_external_memory_bytes', 'Memory outside the JavaScript heap held by its objects (buffers)', memory.external),
    ].join('\n')
  }
}

/** Linux's /proc/self/fd; -1 where there is no such folder. */
function openFds(): number {
  try {
    return readdirSync('/proc/self/fd').length
  } catch {
    return -1
  }
}
