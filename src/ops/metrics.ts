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
    const key = labelKey(labels)
    this.values.set(key, (this.values.get(key) ?? 0) + by)
  }

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

class Histogram {
  private readonly counts: number[]
  private sum = 0
  private count = 0
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly buckets: number[],
  ) {
    this.counts = buckets.map(() => 0)
  }

  observe(value: number): void {
    this.sum += value
    this.count += 1
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) this.counts[i]! += 1
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`]
    this.buckets.forEach((le, i) => lines.push(`${this.name}_bucket{le="${le}"} ${this.counts[i]}`))
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.count}`, `${this.name}_sum ${this.sum}`, `${this.name}_count ${this.count}`)
    return lines.join('\n')
  }
}

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
  readonly wsClosedSlow = new Counter('chat_ws_slow_consumer_closes_total', 'Connections closed for backpressure')
  readonly pushSent = new Counter('chat_push_sent_total', 'Web Push requests a push service accepted')
  readonly pushFailed = new Counter(
    'chat_push_failed_total',
    'Pushes given up, by reason (gone, rejected, expired, queue_full)',
  )
  readonly pushRetries = new Counter('chat_push_retries_total', 'Push attempts to be tried again, by reason')
  readonly pushQueueDepth = new Counter('chat_push_queue_depth', 'Pushes waiting, retries included', 'gauge')

  render(): string {
    return (
      [
        this.httpRequests,
        this.openConnections,
        this.messagesPersisted,
        this.writeBatchSize,
        this.wsFrames,
        this.wsClosedSlow,
        this.pushSent,
        this.pushFailed,
        this.pushRetries,
        this.pushQueueDepth,
      ]
        .map((m) => m.render())
        .join('\n') + '\n'
    )
  }
}
