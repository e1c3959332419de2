/**
 * `bun run bench [e2e|fanout|connections|storage|http|search|uploads|soak] [--quick]`: each scenario against its ceiling
 * measured in the same run; a table on the terminal, bench/results/<date>[-<scenarios>][-quick].json and an SVG
 * chart beside it.
 * `soak` (30 minutes, --quick 2; soak.ts) runs only when named.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FlowResult, Job, Latency } from './loadgen'
import { chart, table } from './report'
import { benchSearch } from './search'
import { socketIoE2e, socketIoFanout } from './socketio'
import { benchWriter } from './storage-writer'
import { rawPostgres, rawSqlite } from './storage-raw'
import { seededDatabase } from './storage-setup'
import { soak } from './soak'
import { rssKiB, startProject, startRaw, type Kind, type Target } from './targets'
import { uploads } from './uploads'

const args = process.argv.slice(2)
const quick = args.includes('--quick')
const only = args.filter((a) => !a.startsWith('--'))
const SCENARIOS = ['e2e', 'fanout', 'connections', 'storage', 'http', 'search', 'uploads'] as const
/** Too long for every run: only when named. */
const OPT_IN = ['soak'] as const
const chosen = only.length ? [...SCENARIOS, ...OPT_IN].filter((s) => only.includes(s)) : SCENARIOS
const SECONDS = quick ? 2 : 5

/**
 * Runs a job in a separate load-generator process; `onLine` sees its first line (connect mode), or with
 * `everyLine` each line as it comes (the soak's windows; the last, the result, too).
 */
async function loadgen<T>(job: Job, onLine?: (line: string) => Promise<void>, everyLine = false): Promise<T> {
  const file = join(tmpdir(), `bench-job-${process.pid}-${Math.random().toString(36).slice(2)}.json`)
  writeFileSync(file, JSON.stringify(job))
  const proc = Bun.spawn([process.execPath, join(import.meta.dir, 'loadgen.ts'), file], { stdout: 'pipe', stderr: 'inherit' })
  const reader = proc.stdout.getReader()
  let buffer = ''
  let lastLine = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) break
    buffer += new TextDecoder().decode(value)
    for (let newline = buffer.indexOf('\n'); newline >= 0 && onLine; newline = buffer.indexOf('\n')) {
      const line = buffer.slice(0, newline)
      buffer = buffer.slice(newline + 1)
      lastLine = line
      await onLine(line)
      if (!everyLine) onLine = undefined
    }
  }
  if ((await proc.exited) !== 0) throw new Error(`loadgen ${job.mode} failed`)
  return JSON.parse((buffer.trim() || lastLine).split('\n').pop()!) as T
}

const results: Record<string, unknown> = { date: new Date().toISOString(), machine: `${navigator.hardwareConcurrency} cores`, quick }
const rows: string[][] = []
const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(2) : '–')

async function withTarget<T>(kind: Kind, work: (t: Target) => Promise<T>, env?: Record<string, string>): Promise<T> {
  const target = kind === 'raw' ? await startRaw() : await startProject(kind, env)
  try {
    return await work(target)
  } finally {
    await target.stop()
  }
}

async function e2e() {
  const P = quick ? 20 : 50
  const W = 8
  type Flow = FlowResult & { batches: ReturnType<typeof batchSizes> }
  const closed = (kind: Kind, pairs = P, receipts = false): Promise<Flow> =>
    withTarget(kind, async (t) => {
      const flows = await loadgen<FlowResult>({ mode: 'closed', ws: t.ws, pairs: await t.pairs(pairs), inFlight: W, seconds: SECONDS, receipts })
      const metrics = kind === 'raw' ? '' : await (await fetch(`${t.http}/metrics`)).text()
      return { ...flows, batches: batchSizes(metrics) }
    })
  // The headline ratios: raw Bun and each setup below alternate for three rounds. The machine's speed drifts
  // between runs, and identical runs differ by ±20 %, so each setup's ratio is taken against the raw run of
  // its own round and the round with the median ratio stands for it; every round is in the JSON.
  const PAIRED = {
    sqliteFull: ['project sqlite FULL', 'sqlite-full', false],
    postgres: ['project postgres', 'pg', false],
    // As real clients do: every receiver acknowledges each message with message:delivered (the raw server
    // has no receipts; it is the ceiling all the same).
    sqliteFullReceipts: ['project sqlite FULL + receipts', 'sqlite-full', true],
    postgresReceipts: ['project postgres + receipts', 'pg', true],
  } as const
  type Setup = keyof typeof PAIRED
  type Round = { raw: Flow } & Record<Setup, Flow>
  const setups = Object.keys(PAIRED) as Setup[]
  const rounds: Round[] = []
  for (let round = 0; round < (quick ? 1 : 3); round++) {
    const each = { raw: await closed('raw') } as Round
    for (const setup of setups) each[setup] = await closed(PAIRED[setup][1], P, PAIRED[setup][2])
    rounds.push(each)
  }
  const ofRaw = (r: Round, setup: Setup) => r[setup].deliveriesPerSec / r.raw.deliveriesPerSec
  const raw = medianBy(rounds.map((r) => r.raw), (f) => f.deliveriesPerSec)
  const paired = Object.fromEntries(
    setups.map((setup) => {
      const round = medianBy(rounds, (r) => ofRaw(r, setup))
      return [setup, { ...round[setup], ratio: Math.round(ofRaw(round, setup) * 100) / 100 }]
    }),
  ) as Record<Setup, Flow & { ratio: number }>
  const full = paired.sqliteFull
  // Once each, against the median raw run.
  const normal = await closed('sqlite-normal')
  // Two nodes on the two cores (Postgres: SQLite's write lock would make them wait on each other), each
  // pair's connections wherever the kernel put them: what Redis forwarding costs.
  const cluster = await closed('cluster')
  const row = (name: string, r: Flow, ratioText: string) =>
    rows.push(['e2e closed', name, `${r.acksPerSec} acks/s`, `${r.deliveriesPerSec} dlv/s`, `ack p50/p99 ${r.ack.p50}/${r.ack.p99} ms`, `dlv p99 ${r.delivery.p99} ms`, ratioText])
  row(quick ? 'raw Bun' : 'raw Bun (median of 3)', raw, '÷raw 1.00')
  for (const setup of setups) {
    const each = rounds.map((r) => ofRaw(r, setup).toFixed(2)).join(' / ')
    row(PAIRED[setup][0], paired[setup], `÷raw ${paired[setup].ratio.toFixed(2)}${quick ? '' : ` (paired; rounds ${each})`}`)
  }
  row('project sqlite NORMAL', normal, `÷raw ${ratio(normal.deliveriesPerSec, raw.deliveriesPerSec)}`)
  row('project 2 nodes, postgres', cluster, `÷raw ${ratio(cluster.deliveriesPerSec, raw.deliveriesPerSec)}`)
  await socketIoE2e({ quick, seconds: SECONDS, loadgen, rows, results }, P, W)
  // Latency under load: fixed rates at 25/50/80 % of the project's measured peak (FULL). A single run's p99
  // swings by half from one run to the next, so each rate runs three times on the same server and the round
  // with the median p99 stands for it (every round is in the JSON). Raw Bun at the same rates is the floor:
  // what the load generator and loopback add by themselves.
  const openLoop = (kind: Kind) =>
    withTarget(kind, async (t) => {
      const pairs = await t.pairs(P)
      const out: Record<string, FlowResult & { rate: number; rounds: Latency[] }> = {}
      for (const share of [0.25, 0.5, 0.8]) {
        const rate = Math.round(full.acksPerSec * share)
        const runs: FlowResult[] = []
        for (let round = 0; round < (quick ? 1 : 3); round++)
          runs.push(await loadgen<FlowResult>({ mode: 'open', ws: t.ws, pairs, rate, seconds: SECONDS }))
        out[`${share * 100}%`] = { ...medianBy(runs, (r) => r.delivery.p99), rate, rounds: runs.map((r) => r.delivery) }
      }
      return out
    })
  const open = await openLoop('sqlite-full')
  const openRaw = await openLoop('raw')
  for (const [share, r] of Object.entries(open)) {
    const floor = openRaw[share]!
    rows.push(['e2e open', `sqlite FULL @${share} (${r.rate}/s)`, `${r.acksPerSec} acks/s`, `${r.deliveriesPerSec} dlv/s`, `dlv p50/p99 ${r.delivery.p50}/${r.delivery.p99} ms`, `rounds' p99 ${r.rounds.map((l) => l.p99).join(' / ')}`, `raw p99 ${floor.delivery.p99} ms`])
  }
  // Throughput and p99 against the number of connections, for the chart.
  const sweep: { connections: number; project: FlowResult; raw: FlowResult }[] = []
  for (const pairs of quick ? [5, 20] : [5, 25, 100, 250]) {
    sweep.push({ connections: pairs * 2, raw: await closed('raw', pairs), project: await closed('sqlite-full', pairs) })
  }
  results.e2e = { dialogs: P, inFlight: W, seconds: SECONDS, rounds: rounds.map((r) => Object.fromEntries(Object.entries(r).map(([k, f]) => [k, f.deliveriesPerSec]))), raw, ...paired, sqliteNormal: normal, cluster, open, openRaw, sweep }
  const svg = chart(sweep)
  return svg
}

function batchSizes(metrics: string) {
  const count = Number(/chat_write_batch_size_count (\d+)/.exec(metrics)?.[1] ?? 0)
  const sum = Number(/chat_write_batch_size_sum (\d+)/.exec(metrics)?.[1] ?? 0)
  const buckets = [...metrics.matchAll(/chat_write_batch_size_bucket\{le="([^"]+)"\} (\d+)/g)].map((m) => [m[1], Number(m[2])])
  return { batches: count, mean: count ? Math.round((sum / count) * 10) / 10 : 0, cumulative: Object.fromEntries(buckets) }
}

async function fanout() {
  const out: Record<string, unknown> = {}
  for (const K of quick ? [10, 100] : [10, 100, 1000]) {
    const run = (kind: Kind) =>
      withTarget(kind, async (t) => loadgen<{ deliveriesPerSec: number; delivery: { p50: number; p99: number } }>({ mode: 'fanout', ws: t.ws, ...(await t.fanout(K)), inFlight: 32, seconds: SECONDS }))
    const raw = await run('raw')
    const project = await run('sqlite-full')
    out[K] = { raw, project }
    rows.push(['fan-out', `${K} devices`, `raw ${raw.deliveriesPerSec} dlv/s`, `project ${project.deliveriesPerSec} dlv/s`, `project dlv p99 ${project.delivery.p99} ms`, '', `÷raw ${ratio(project.deliveriesPerSec, raw.deliveriesPerSec)}`])
    await socketIoFanout({ quick, seconds: SECONDS, loadgen, rows, results }, K)
  }
  results.fanout = out
}

async function connections() {
  // One process may hold at most `ulimit -n` sockets (20 000 here, hard): the server needs a few for itself.
  // Two nodes sharing the port (REUSE_PORT, joined over Redis) hold the full 20 000.
  const generators = quick ? 1 : 4
  const out: Record<string, unknown> = {}
  for (const kind of ['raw', 'sqlite-full', 'cluster'] as const) {
    const C = quick ? 2000 : kind === 'cluster' ? 20_000 : 19_500
    out[kind] = await withTarget(kind, async (t) => {
      const tokens = await t.tokens(quick ? 20 : 200)
      await Bun.sleep(500)
      const before = rssKiB(t)
      const started = performance.now()
      let ready = 0
      let release!: () => void
      // Each generator holds its connections open until the server's RSS has been read.
      const measured = new Promise<void>((resolve) => (release = resolve))
      const reports: { connected: number; failed: number; seconds: number }[] = []
      const runs = Array.from({ length: generators }, () =>
        loadgen({ mode: 'connect', ws: t.ws, tokens, count: C / generators, holdSeconds: quick ? 3 : 6 }, async (line) => {
          reports.push(JSON.parse(line))
          ready++
          await measured
        }),
      )
      await new Promise<void>((resolve) => {
        const check = setInterval(() => {
          if (ready === generators) {
            clearInterval(check)
            resolve()
          }
        }, 20)
      })
      const seconds = (performance.now() - started) / 1000
      await Bun.sleep(1000)
      const after = rssKiB(t)
      release()
      await Promise.all(runs)
      const connected = reports.reduce((n, r) => n + r.connected, 0)
      return { connected, failed: reports.reduce((n, r) => n + r.failed, 0), seconds: Math.round(seconds * 100) / 100, rssBeforeKiB: before, rssAfterKiB: after, kibPerConnection: Math.round(((after - before) / connected) * 100) / 100 }
    })
  }
  const raw = out.raw as { connected: number; seconds: number; kibPerConnection: number }
  for (const [kind, label] of [
    ['sqlite-full', 'one node'],
    ['cluster', 'two nodes (Postgres), one port'],
  ] as const) {
    const project = out[kind] as typeof raw
    rows.push(['connections', `${project.connected} authenticated idle, ${label}`, `project ${project.kibPerConnection} KiB/conn`, `raw ${raw.kibPerConnection} KiB/conn`, `connect all: project ${project.seconds} s, raw ${raw.seconds} s`, '', `÷raw (RSS) ${ratio(project.kibPerConnection, raw.kibPerConnection)}`])
  }
  results.connections = out
}

async function storage() {
  const total = quick ? 10_000 : 40_000
  // Commit rates swing with the disk's flushes and Postgres's checkpoints: each contender runs ROUNDS
  // times, alternating which goes first; rates are medians, the ratio the median of the rounds' ratios.
  const ROUNDS = quick ? 1 : 5
  const out: Record<string, unknown> = {}
  for (const [label, dialect, synchronous] of [
    ['sqlite FULL', 'sqlite', 'FULL'],
    ['sqlite NORMAL', 'sqlite', 'NORMAL'],
    ['postgres', 'pg', 'FULL'],
  ] as const) {
    for (const batch of [1, 64, 256]) {
      const n = batch === 1 ? (dialect === 'pg' ? 500 : 2000) : dialect === 'pg' ? total / 4 : total
      const writerRates: number[] = []
      const rawRates: number[] = []
      let meanBatch = 0
      for (let round = 0; round < ROUNDS; round++) {
        // Each contender writes into its own freshly seeded copy of the same schema.
        const forWriter = await seededDatabase(dialect, 100)
        const forRaw = await seededDatabase(dialect, 100)
        try {
          const runWriter = async () => {
            const writer = await benchWriter(forWriter, { synchronous, batch, total: n })
            writerRates.push(writer.messagesPerSec)
            meanBatch = writer.meanBatch
          }
          const runRaw = async () =>
            rawRates.push(dialect === 'sqlite' ? rawSqlite(forRaw, { synchronous, batch, total: n }) : await rawPostgres(forRaw, { synchronous, batch, total: n }))
          for (const run of round % 2 ? [runRaw, runWriter] : [runWriter, runRaw]) await run()
        } finally {
          await forWriter.drop()
          await forRaw.drop()
        }
      }
      const writer = Math.round(median(writerRates))
      const raw = Math.round(median(rawRates))
      // Each round's two runs are back to back, so the ratio is taken per round and its median reported.
      const paired = median(writerRates.map((w, i) => w / rawRates[i]!))
      out[`${label} batch ${batch}`] = { writer, raw, ratio: Math.round(paired * 100) / 100, meanBatch, rounds: { writer: writerRates.map(Math.round), raw: rawRates.map(Math.round) } }
      rows.push(['storage', `${label}, ${batch}/tx`, `writer ${writer} msg/s`, `raw ${raw} msg/s`, `mean batch ${meanBatch}`, `median of ${ROUNDS}`, `÷raw ${paired.toFixed(2)}`])
    }
  }
  results.storage = out
}

/** The middle item by `key` (the upper one of an even count). */
const medianBy = <T>(items: T[], key: (item: T) => number) => [...items].sort((a, b) => key(a) - key(b))[items.length >> 1]!
const median = (values: number[]) => medianBy(values, (v) => v)

async function http() {
  const concurrency = 16
  const raw = await withTarget('raw', async (t) => loadgen<Record<string, { requestsPerSec: number; p50: number; p99: number }>>({ mode: 'http', base: t.http, ...(await t.httpPaths()), concurrency, seconds: SECONDS }))
  const project = await withTarget('sqlite-full', async (t) => loadgen<Record<string, { requestsPerSec: number; p50: number; p99: number; errors: number }>>({ mode: 'http', base: t.http, ...(await t.httpPaths()), concurrency, seconds: SECONDS }))
  const ceiling = raw['/const']!.requestsPerSec
  for (const [path, r] of Object.entries(project))
    rows.push(['http', `GET ${path.replace(/\/\d+\//, '/{id}/')}`, `${r.requestsPerSec} req/s`, `Elysia constant ${ceiling} req/s`, `p50/p99 ${r.p50}/${r.p99} ms`, r.errors ? `${r.errors} errors` : '', `÷const ${ratio(r.requestsPerSec, ceiling)}`])
  // The request log's cost: one server with a line per request (the default) and one with none, in
  // alternating rounds (the machine's speed drifts between runs); the median of the paired ratios.
  type HttpRow = Record<string, { requestsPerSec: number; p50: number; p99: number }>
  const logRounds = quick ? 1 : 3
  const on: HttpRow[] = []
  const off: HttpRow[] = []
  for (let round = 0; round < logRounds; round++)
    for (const [into, env] of [[on, {}], [off, { LOG_HTTP_SAMPLE: '0' }]] as const)
      into.push(await withTarget('sqlite-full', async (t) => loadgen<HttpRow>({ mode: 'http', base: t.http, ...(await t.httpPaths()), concurrency, seconds: SECONDS }), env))
  const requestLog: Record<string, { ratio: number; on: number[]; off: number[] }> = {}
  for (const path of Object.keys(on[0]!)) {
    const rates = (rows: HttpRow[]) => rows.map((r) => r[path]!.requestsPerSec)
    const paired = median(rates(on).map((x, i) => x / rates(off)[i]!))
    requestLog[path] = { ratio: Math.round(paired * 100) / 100, on: rates(on), off: rates(off) }
    rows.push(['http', `GET ${path.replace(/\/\d+\//, '/{id}/')}, request log on vs off`, `on ${median(rates(on))} req/s`, `off ${median(rates(off))} req/s`, `median of ${logRounds}`, '', `on÷off ${paired.toFixed(2)}`])
  }
  results.http = { concurrency, constant: raw, project, requestLog }
}

/** Search over 1 000 000 messages in 1 000 dialogs (--quick: 100 000 in 100), one query at a time. */
async function search() {
  const size = quick ? { messages: 100_000, dialogs: 100 } : { messages: 1_000_000, dialogs: 1_000 }
  const out = []
  for (const dialect of ['sqlite', 'pg'] as const) {
    const r = await benchSearch(dialect, { ...size, seconds: SECONDS })
    out.push(r)
    for (const [who, m] of [['one dialog', r.oneDialog], ['all dialogs', r.allDialogs]] as const)
      rows.push(['search', `${dialect}, ${r.messages} msgs / ${r.dialogs} dialogs, ${who}`, `${m.qps} q/s`, `p50/p99 ${m.p50}/${m.p99} ms`, `mean hits ${m.meanHits}`, `seeded in ${r.seedSeconds} s`, ''])
  }
  results.search = out
}

let svg: string | undefined
// A scenario that fails is reported and the run goes on: a full run takes the better part of an hour, and
// one broken scenario must not cost the others' results.
const failed: string[] = []
for (const scenario of chosen) {
  console.error(`… ${scenario}`)
  try {
    if (scenario === 'e2e') svg = await e2e()
    if (scenario === 'fanout') await fanout()
    if (scenario === 'connections') await connections()
    if (scenario === 'storage') await storage()
    if (scenario === 'http') await http()
    if (scenario === 'search') await search()
    if (scenario === 'uploads') results.uploads = await uploads(SECONDS, rows)
    if (scenario === 'soak') svg = await soak({ quick, loadgen, rows, results })
  } catch (error) {
    failed.push(scenario)
    results[scenario] = { failed: String(error) }
    console.error(`✗ ${scenario} failed:`, error)
  }
}
console.log(table(rows))
const dir = join(import.meta.dir, 'results')
mkdirSync(dir, { recursive: true })
const stamp = new Date().toISOString().slice(0, 10)
// A --quick run never overwrites the full run of the same day; BENCH_TAG names a run of its own (a variant).
const tag = process.env.BENCH_TAG ? `-${process.env.BENCH_TAG.replace(/[^\w-]/g, '')}` : ''
const name = `${chosen.length === SCENARIOS.length ? stamp : `${stamp}-${chosen.join('-')}`}${quick ? '-quick' : ''}${tag}`
writeFileSync(join(dir, `${name}.json`), JSON.stringify(results, null, 2) + '\n')
if (svg) writeFileSync(join(dir, `${name}.svg`), svg)
console.log(`\nresults: bench/results/${name}.json${svg ? ` and ${name}.svg` : ''}`)
if (failed.length) console.error(`✗ failed: ${failed.join(', ')}`)
process.exit(failed.length ? 1 : 0)
