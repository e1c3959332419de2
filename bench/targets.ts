/** Starting a server under test in its own process, and provisioning users and dialogs through its API. */
import type { Subprocess } from 'bun'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freshDatabase } from '../tests/support/databases'
import type { Pair } from './loadgen'

const ROOT = join(import.meta.dir, '..')
const BUN = process.execPath

/** `cluster`: two nodes on one port (REUSE_PORT) and one Postgres database, joined over Redis. */
export type Kind = 'raw' | 'sqlite-full' | 'sqlite-normal' | 'pg' | 'cluster'

export interface Target {
  kind: Kind
  ws: string
  http: string
  /** The server's processes (two for a cluster). */
  pids: number[]
  /** Pairs of (sender, receiver) with a dialog each. */
  pairs(n: number): Promise<Pair[]>
  /** One sender and `devices` connections' tokens of one receiver, in one dialog. */
  fanout(devices: number): Promise<{ dialogId: number; senderToken: string; deviceTokens: string[] }>
  /** Tokens of `users` distinct users (for idle connections). */
  tokens(users: number): Promise<string[]>
  /** A token and paths for the HTTP scenario (project only). */
  httpPaths(): Promise<{ token?: string; paths: string[] }>
  stop(): Promise<void>
}

// BENCH_PORT moves the range, so that two benchmark runs on one machine do not collide.
let port = Number(process.env.BENCH_PORT ?? 7100)
const nextPort = () => port++

/** The resident memory of all the target's processes. */
export function rssKiB(target: Target): number {
  return target.pids.reduce((sum, pid) => {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    return sum + Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0)
  }, 0)
}

async function waitForHealth(url: string, proc: Subprocess) {
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(url)).ok) return
    } catch {}
    if (proc.exitCode !== null) throw new Error(`server exited with ${proc.exitCode}`)
    await Bun.sleep(50)
  }
  throw new Error(`no answer from ${url}`)
}

/** Resolves once the server prints that it listens; its output is drained from then on. */
async function listening(proc: Subprocess<'ignore', 'pipe', 'inherit'>) {
  const reader = proc.stdout.getReader()
  let seen = ''
  while (!seen.includes('chat server on')) {
    const { value, done } = await reader.read()
    if (done) throw new Error(`server exited before listening: ${seen}`)
    seen += new TextDecoder().decode(value)
  }
  reader.releaseLock()
  void proc.stdout.pipeTo(new WritableStream())
}

export async function startRaw(): Promise<Target> {
  const wsPort = nextPort()
  const httpPort = nextPort()
  const proc = Bun.spawn([BUN, join(ROOT, 'bench', 'baseline.ts'), String(wsPort), String(httpPort)], { stdout: 'ignore', stderr: 'inherit' })
  await waitForHealth(`http://127.0.0.1:${httpPort}/const`, proc)
  let user = 0
  let dialog = 0
  const token = (u: number, d: number) => `raw:${u}:${d}`
  return {
    kind: 'raw',
    ws: `ws://127.0.0.1:${wsPort}/ws`,
    http: `http://127.0.0.1:${httpPort}`,
    pids: [proc.pid],
    pairs: async (n) =>
      Array.from({ length: n }, () => {
        const d = ++dialog
        return { dialogId: d, senderToken: token(++user, d), receiverToken: token(++user, d) }
      }),
    fanout: async (devices) => {
      const d = ++dialog
      const receiver = ++user
      return { dialogId: d, senderToken: token(++user, d), deviceTokens: Array.from({ length: devices }, () => token(receiver, d)) }
    },
    tokens: async (users) => Array.from({ length: users }, () => token(++user, ++dialog)),
    httpPaths: async () => ({ paths: ['/const'] }),
    stop: async () => {
      proc.kill('SIGTERM')
      await proc.exited
    },
  }
}

export async function startProject(kind: Exclude<Kind, 'raw'>, extraEnv: Record<string, string> = {}): Promise<Target> {
  const p = nextPort()
  const dir = mkdtempSync(join(tmpdir(), 'bench-chat-'))
  const fresh = kind === 'pg' || kind === 'cluster' ? await freshDatabase('pg') : undefined
  const database = fresh?.target.dialect === 'pg' ? fresh.target.url : `sqlite://${join(dir, 'chat.db')}`
  const spawn = () =>
    // BENCH_CPU_PROF=<dir>: the server writes a CPU profile there (markdown too) when it stops.
    Bun.spawn([BUN, ...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-md', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []), join(ROOT, 'src', 'index.ts')], {
    cwd: dir,
    env: {
      ...process.env,
      PORT: String(p),
      HOST: '127.0.0.1',
      DATABASE_URL: database,
      SQLITE_SYNCHRONOUS: kind === 'sqlite-normal' ? 'normal' : 'full',
      JWT_SECRET_KEY: 'benchmark-secret-benchmark-secret-0123456789',
      // Registration is setup, not measured: cheap hashes, and no limits on the load.
      ARGON2_MEMORY_KIB: '64',
      ARGON2_TIME_COST: '1',
      AUTH_RATE_BURST: '1000000000',
      AUTH_RATE_PER_SEC: '1000000000',
      SEND_RATE_BURST: '1000000000',
      SEND_RATE_PER_SEC: '1000000000',
      // fanout holds up to 1 000 devices of one user, connections ~100 per user.
      WS_MAX_CONNECTIONS_PER_USER: '1000000',
      WS_BACKPRESSURE_BYTES: String(64 * 1024 * 1024),
      ...(kind === 'cluster' ? { REDIS_URL: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379', REDIS_CHANNEL: `bench:${dir}`, REUSE_PORT: 'true' } : {}),
      ...extraEnv,
    },
    stdout: 'pipe',
    stderr: 'inherit',
  })
  const base = `http://127.0.0.1:${p}`
  const procs: ReturnType<typeof spawn>[] = []
  // One after the other, each until it says it listens: on a shared port /health could answer from the other.
  for (let i = 0; i < (kind === 'cluster' ? 2 : 1); i++) {
    const proc = spawn()
    procs.push(proc)
    await listening(proc)
  }
  await waitForHealth(`${base}/health`, procs[0]!)

  let n = 0
  const call = async (method: string, path: string, body?: unknown, token?: string) => {
    const res = await fetch(base + path, {
      method,
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`)
    return res.json() as Promise<any>
  }
  const register = () => call('POST', '/auth/register', { username: `bench${n++}`, password: 'benchmark-password' })
  const dialog = async () => {
    const [a, b] = await Promise.all([register(), register()])
    const d = await call('POST', '/dialogs', { peer_user_id: b.user.id }, a.access_token)
    return { a, b, id: d.id as number }
  }
  const inChunks = async <T>(count: number, make: () => Promise<T>) => {
    const out: T[] = []
    for (let i = 0; i < count; i += 50) out.push(...(await Promise.all(Array.from({ length: Math.min(50, count - i) }, make))))
    return out
  }

  return {
    kind,
    ws: `ws://127.0.0.1:${p}/ws`,
    http: base,
    pids: procs.map((p) => p.pid),
    pairs: async (count) =>
      (await inChunks(count, dialog)).map((d) => ({ dialogId: d.id, senderToken: d.a.access_token, receiverToken: d.b.access_token })),
    fanout: async (devices) => {
      const d = await dialog()
      return { dialogId: d.id, senderToken: d.a.access_token, deviceTokens: Array.from({ length: devices }, () => d.b.access_token) }
    },
    tokens: async (users) => (await inChunks(users, register)).map((u) => u.access_token as string),
    httpPaths: async () => {
      // A user with 20 dialogs of 30 messages each: a realistic first screen.
      const me = await register()
      let dialogId = 0
      for (let i = 0; i < 20; i++) {
        const peer = await register()
        dialogId = (await call('POST', '/dialogs', { peer_user_id: peer.user.id }, me.access_token)).id
        await Promise.all(
          Array.from({ length: 30 }, (_, k) =>
            call('POST', `/dialogs/${dialogId}/messages`, { client_msg_id: `h${k}`, type: 'text', text: `message ${k}` }, k % 2 ? me.access_token : peer.access_token),
          ),
        )
      }
      return { token: me.access_token, paths: ['/dialogs', `/dialogs/${dialogId}/messages`] }
    },
    stop: async () => {
      for (const proc of procs) proc.kill('SIGTERM')
      await Promise.all(procs.map((proc) => proc.exited))
      rmSync(dir, { recursive: true, force: true })
      await fresh?.drop()
    },
  }
}
