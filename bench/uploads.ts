/**
 * `bench uploads`: MiB/s of concurrent 10 MiB uploads (POST /uploads, multipart, streamed, hashed, sniffed,
 * stored on the local disk) and downloads (GET /uploads/{id}) against a plain Bun.serve writing the same
 * bodies to files and reading them back, in the same run. The same plain server also runs with an
 * fdatasync of each body before it answers (the durable baseline): the server's uploads are durable when
 * it answers 201, and on a disk slower than memory that, not the code, bounds them.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startProject } from './targets'

const MiB = 1024 * 1024
const SIZE = 10 * MiB
const CONCURRENCY = 4
const BOUNDARY = 'bench-boundary-3x8z1q'

/** A multipart body with one 10 MiB `file` part; `stamp` makes each body's bytes (and sha256) its own. */
function body(stamp: number): Buffer {
  const head = Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="f.bin"\r\n\r\n`)
  const tail = Buffer.from(`\r\n--${BOUNDARY}--\r\n`)
  const bytes = Buffer.alloc(head.length + SIZE + tail.length)
  head.copy(bytes)
  for (let i = head.length; i < head.length + SIZE; i += 4096) bytes.writeUInt32LE((i * 2654435761 + stamp) >>> 0, i)
  tail.copy(bytes, head.length + SIZE)
  return bytes
}

/** Runs `one` CONCURRENCY at a time for `seconds`; MiB/s of what finished. */
async function rate(seconds: number, one: (worker: number, n: number) => Promise<void>): Promise<number> {
  const end = performance.now() + seconds * 1000
  let done = 0
  const started = performance.now()
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, worker) => {
      for (let n = 0; performance.now() < end; n++) {
        await one(worker, n)
        done++
      }
    }),
  )
  return (done * SIZE) / MiB / ((performance.now() - started) / 1000)
}

/**
 * Writes back what earlier runs left dirty in the page cache: the plain server writes gigabytes without
 * an fsync, and their writeback would otherwise compete with the next run's fsyncs.
 */
function settle(): void {
  Bun.spawnSync(['sync'])
}

async function waitFor(url: string) {
  for (let i = 0; i < 200; i++) {
    if (await fetch(url).then((r) => r.ok, () => false)) return
    await Bun.sleep(50)
  }
  throw new Error(`no answer from ${url}`)
}

export async function uploads(seconds: number, rows: string[][]): Promise<Record<string, unknown>> {
  const bodies = Array.from({ length: CONCURRENCY }, (_, i) => body(i))
  const stamp = (worker: number, n: number) => {
    // Each request's bytes differ (no two uploads share their content address).
    const b = bodies[worker]!
    b.writeUInt32LE(n, 200)
    return b
  }

  const dir = mkdtempSync(join(tmpdir(), 'bench-uploads-ceiling-'))
  const port = 7390
  const ceiling = Bun.spawn([process.execPath, join(import.meta.dir, 'uploads-ceiling.ts'), String(port), dir], { stdout: 'ignore', stderr: 'inherit' })
  const raw = { up: 0, down: 0, durableUp: 0 }
  try {
    const base = `http://127.0.0.1:${port}`
    await waitFor(`${base}/health`)
    const ids: number[] = []
    raw.up = await rate(seconds, async (w, n) => {
      const res = await fetch(`${base}/`, { method: 'POST', body: stamp(w, n) })
      ids.push(((await res.json()) as { id: number }).id)
    })
    raw.down = await rate(seconds, async (w, n) => {
      await (await fetch(`${base}/${ids[(w + n * CONCURRENCY) % ids.length]}`)).arrayBuffer()
    })
    settle()
    raw.durableUp = await rate(seconds, async (w, n) => {
      await (await fetch(`${base}/?durable`, { method: 'POST', body: stamp(w, n + 1_000_000) })).arrayBuffer()
    })
  } finally {
    ceiling.kill('SIGTERM')
    await ceiling.exited
    rmSync(dir, { recursive: true, force: true })
  }

  settle()
  const target = await startProject('sqlite-full')
  const project = { up: 0, down: 0 }
  try {
    const [token] = await target.tokens(1)
    const auth = { authorization: `Bearer ${token}` }
    const ids: number[] = []
    project.up = await rate(seconds, async (w, n) => {
      const res = await fetch(`${target.http}/uploads`, {
        method: 'POST',
        headers: { ...auth, 'content-type': `multipart/form-data; boundary=${BOUNDARY}` },
        body: stamp(w, n),
      })
      if (res.status !== 201) throw new Error(`upload: ${res.status} ${await res.text()}`)
      ids.push(((await res.json()) as { id: number }).id)
    })
    project.down = await rate(seconds, async (w, n) => {
      const res = await fetch(`${target.http}/uploads/${ids[(w + n * CONCURRENCY) % ids.length]}`, { headers: auth })
      await res.arrayBuffer()
    })
  } finally {
    await target.stop()
  }
  const ratio = (a: number, b: number) => (b > 0 ? Math.round((a / b) * 100) / 100 : 0)
  const mibs = (x: number) => `${Math.round(x)} MiB/s`
  rows.push(['uploads', `${CONCURRENCY} × 10 MiB up`, mibs(project.up), `plain Bun.serve ${mibs(raw.up)}`, '', '', `÷raw ${ratio(project.up, raw.up).toFixed(2)}`])
  rows.push(['uploads', `${CONCURRENCY} × 10 MiB up`, mibs(project.up), `durable Bun.serve ${mibs(raw.durableUp)}`, '', '', `÷durable ${ratio(project.up, raw.durableUp).toFixed(2)}`])
  rows.push(['uploads', `${CONCURRENCY} × 10 MiB down`, mibs(project.down), `plain Bun.serve ${mibs(raw.down)}`, '', '', `÷raw ${ratio(project.down, raw.down).toFixed(2)}`])
  return { concurrency: CONCURRENCY, sizeMiB: SIZE / MiB, project, raw, ratio: { up: ratio(project.up, raw.up), down: ratio(project.down, raw.down), upDurable: ratio(project.up, raw.durableUp) } }
}
