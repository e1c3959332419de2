/**
 * Socket.IO rows of `bench e2e` and `bench fanout`. The project's Socket.IO wire against its JSON wire on
 * the same server build, each run on a fresh one, rounds alternating (the ratio is the median of the rounds' ratios), and the same flow
 * against the server a Node developer would write (node-socketio/server.mjs: socket.io + better-sqlite3,
 * WAL, FULL), run with `node`. The load generator speaks Engine.IO/Socket.IO itself (socketio-client.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FlowResult, Job, Pair } from './loadgen'
import { startProject } from './targets'

export interface BenchContext {
  quick: boolean
  seconds: number
  loadgen: <T>(job: Job) => Promise<T>
  rows: string[][]
  results: Record<string, unknown>
}

const NODE_PORT = Number(process.env.BENCH_PORT ?? 7100) - 10
const socketIoUrl = (ws: string) => ws.replace(/\/ws$/, '/socket.io/?EIO=4&transport=websocket')
const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1]!
const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(2) : '–')

/** The Node socket.io server in its own `node` process on a fresh database. */
async function startNode() {
  const dir = mkdtempSync(join(tmpdir(), 'bench-node-sio-'))
  const proc = Bun.spawn(['node', join(import.meta.dir, 'node-socketio', 'server.mjs'), String(NODE_PORT), join(dir, 'chat.db')], {
    stdout: 'ignore',
    stderr: 'inherit',
  })
  const base = `http://127.0.0.1:${NODE_PORT}`
  for (let i = 0; ; i++) {
    if (await fetch(`${base}/health`).then((r) => r.ok, () => false)) break
    if (i > 200 || proc.exitCode !== null) throw new Error('node socket.io server did not start')
    await Bun.sleep(50)
  }
  return {
    ws: `ws://127.0.0.1:${NODE_PORT}/socket.io/?EIO=4&transport=websocket`,
    pairs: async (n: number) => (await (await fetch(`${base}/pairs?n=${n}`, { method: 'POST' })).json()) as Pair[],
    stop: async () => {
      proc.kill('SIGTERM')
      await proc.exited
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

export async function socketIoE2e(ctx: BenchContext, pairs: number, inFlight: number): Promise<void> {
  const closed = (ws: string, p: Pair[]) => ctx.loadgen<FlowResult>({ mode: 'closed', ws, pairs: p, inFlight, seconds: ctx.seconds })
  const rounds = ctx.quick ? 1 : 3
  const json: FlowResult[] = []
  const io: FlowResult[] = []
  const nodeRuns: FlowResult[] = []
  // Every run on a fresh server and database: a database that grows under the load writes slower (the
  // random client_msg_id index spreads each commit over more pages), which made a run's rate depend on
  // its place in the sequence when the wires shared one server. Which wire goes first still alternates.
  const fresh = async (start: () => Promise<{ ws: string; pairs: (n: number) => Promise<Pair[]>; stop: () => Promise<void> }>, url: (ws: string) => string) => {
    const target = await start()
    try {
      return await closed(url(target.ws), await target.pairs(pairs))
    } finally {
      await target.stop()
    }
  }
  const project = () => startProject('sqlite-full')
  for (let round = 0; round < rounds; round++) {
    const runJson = async () => json.push(await fresh(project, (ws) => ws))
    const runIo = async () => io.push(await fresh(project, socketIoUrl))
    for (const run of round % 2 ? [runIo, runJson] : [runJson, runIo]) await run()
  }
  for (let round = 0; round < rounds; round++) nodeRuns.push(await fresh(startNode, (ws) => ws))
  const pick = (runs: FlowResult[]) => [...runs].sort((a, b) => a.deliveriesPerSec - b.deliveriesPerSec)[runs.length >> 1]!
  const [jsonMid, ioMid, nodeMid] = [pick(json), pick(io), pick(nodeRuns)]
  const perRound = median(io.map((r, i) => r.deliveriesPerSec / json[i]!.deliveriesPerSec))
  const label = rounds > 1 ? ` (median of ${rounds})` : ''
  for (const [name, r, vs] of [
    [`project sqlite FULL, JSON wire${label}`, jsonMid, ''],
    [`project sqlite FULL, Socket.IO${label}`, ioMid, `÷JSON ${perRound.toFixed(2)}`],
    [`node socket.io + better-sqlite3 FULL${label}`, nodeMid, `project SIO ÷node ${ratio(ioMid.deliveriesPerSec, nodeMid.deliveriesPerSec)}`],
  ] as const)
    ctx.rows.push(['e2e Socket.IO', name, `${r.acksPerSec} acks/s`, `${r.deliveriesPerSec} dlv/s`, `ack p50/p99 ${r.ack.p50}/${r.ack.p99} ms`, `dlv p99 ${r.delivery.p99} ms`, vs])
  ctx.results.e2eSocketIo = {
    dialogs: pairs,
    inFlight,
    rounds: { json: json.map((r) => r.deliveriesPerSec), socketIo: io.map((r) => r.deliveriesPerSec), node: nodeRuns.map((r) => r.deliveriesPerSec) },
    json: jsonMid,
    socketIo: ioMid,
    node: nodeMid,
    socketIoOverJson: Math.round(perRound * 100) / 100,
    socketIoOverNode: Math.round((ioMid.deliveriesPerSec / nodeMid.deliveriesPerSec) * 100) / 100,
  }
}

export async function socketIoFanout(ctx: BenchContext, devices: number): Promise<void> {
  type Fan = { deliveriesPerSec: number; delivery: { p50: number; p99: number } }
  const project = await startProject('sqlite-full')
  try {
    const run = async (ws: string) => ctx.loadgen<Fan>({ mode: 'fanout', ws, ...(await project.fanout(devices)), inFlight: 32, seconds: ctx.seconds })
    // JSON, Socket.IO, Socket.IO, JSON: each wire's mean, so that neither gains from going first or last.
    const runs = { json: [] as Fan[], io: [] as Fan[] }
    for (const wire of ['json', 'io', 'io', 'json'] as const) runs[wire].push(await run(wire === 'json' ? project.ws : socketIoUrl(project.ws)))
    const mean = (r: Fan[]): Fan => ({
      deliveriesPerSec: Math.round((r[0]!.deliveriesPerSec + r[1]!.deliveriesPerSec) / 2),
      delivery: { p50: Math.max(r[0]!.delivery.p50, r[1]!.delivery.p50), p99: Math.max(r[0]!.delivery.p99, r[1]!.delivery.p99) },
    })
    const [json, io] = [mean(runs.json), mean(runs.io)]
    ctx.rows.push(['fan-out Socket.IO', `${devices} devices`, `JSON ${json.deliveriesPerSec} dlv/s`, `Socket.IO ${io.deliveriesPerSec} dlv/s`, `SIO dlv p99 ${io.delivery.p99} ms`, `JSON dlv p99 ${json.delivery.p99} ms`, `÷JSON ${ratio(io.deliveriesPerSec, json.deliveriesPerSec)}`])
    ;((ctx.results.fanoutSocketIo ??= {}) as Record<number, unknown>)[devices] = { json: runs.json, socketIo: runs.io }
  } finally {
    await project.stop()
  }
}
