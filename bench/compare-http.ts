/**
 * `bun bench/compare-http.ts name=/path/to/checkout … [--rounds=3] [--seconds=5] [--kind=sqlite-full|pg]`:
 * `bench http`'s scenario against several checkouts of the project (e.g. one `git worktree` per commit,
 * with node_modules linked in), alternating them with the constant route round by round, so that steps
 * measured on a busy machine are compared within the same minutes. Prints each checkout's rates and
 * same-round ÷const ratios per route, and their medians, as JSON. Each checkout's own bench/targets.ts and
 * loadgen.ts start, seed and load its server.
 */
import { writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const flag = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
const checkouts = process.argv
  .slice(2)
  .filter((a) => !a.startsWith('--'))
  .map((a) => ({ name: a.split('=')[0]!, root: a.split('=')[1]! }))
const rounds = Number(flag('rounds') ?? 3)
const seconds = Number(flag('seconds') ?? 5)
const kind = flag('kind') ?? 'sqlite-full'
process.env.BENCH_PORT ??= '7500'
const targets = await Promise.all(checkouts.map((c) => import(`${c.root}/bench/targets.ts`)))

async function load(root: string, job: object): Promise<Record<string, { requestsPerSec: number }>> {
  const file = join(tmpdir(), `compare-http-${process.pid}-${Math.random().toString(36).slice(2)}.json`)
  writeFileSync(file, JSON.stringify(job))
  const proc = Bun.spawn([process.execPath, `${root}/bench/loadgen.ts`, file], { stdout: 'pipe', stderr: 'inherit' })
  const out = await new Response(proc.stdout).text()
  return JSON.parse(out.trim().split('\n').pop()!)
}

type Series = Record<string, Record<string, number[]>>
const rates: Series = {}
const ratios: Series = {}
const add = (into: Series, name: string, route: string, value: number) => ((into[name] ??= {})[route] ??= []).push(value)
for (let round = 0; round < rounds; round++) {
  const raw = await targets[0].startRaw()
  const constant = (await load(checkouts[0]!.root, { mode: 'http', base: raw.http, paths: ['/const'], concurrency: 16, seconds }))['/const']!.requestsPerSec
  await raw.stop()
  add(rates, 'const', '/const', constant)
  // Which checkout goes first alternates: the machine's speed drifts within a round too.
  const order = checkouts.map((_, i) => i)
  if (round % 2) order.reverse()
  for (const i of order) {
    const target = await targets[i].startProject(kind)
    const job = { mode: 'http', base: target.http, ...(await target.httpPaths()), concurrency: 16, seconds }
    const result = await load(checkouts[i]!.root, job)
    await target.stop()
    for (const [path, r] of Object.entries(result)) {
      const route = path.replace(/\/\d+\//, '/{id}/')
      add(rates, checkouts[i]!.name, route, r.requestsPerSec)
      add(ratios, checkouts[i]!.name, route, r.requestsPerSec / constant)
    }
  }
  console.error(`round ${round + 1} of ${rounds}: constant ${constant} req/s`)
}
const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1]!
const summary: Record<string, unknown> = { date: new Date().toISOString(), kind, rounds, seconds, constant: rates.const!['/const'] }
for (const { name } of checkouts)
  for (const [route, values] of Object.entries(rates[name] ?? {}))
    summary[`${name} ${route}`] = {
      rates: values,
      ratios: ratios[name]![route]!.map((x) => Math.round(x * 1000) / 1000),
      medianRate: median(values),
      medianRatio: Math.round(median(ratios[name]![route]!) * 1000) / 1000,
    }
console.log(JSON.stringify(summary, null, 2))
process.exit(0)
