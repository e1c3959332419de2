import type { Subprocess } from 'bun'
import { join } from 'node:path'
import type { DatabaseTarget } from '../../src/config'
import { TEST_SECRET } from './app'

const ROOT = join(import.meta.dir, '..', '..')

export const databaseUrl = (target: DatabaseTarget) =>
  target.dialect === 'sqlite' ? `sqlite://${target.path}` : target.url

/** The real entry point (`bun src/index.ts`) in its own process, on an ephemeral port. */
export interface ServerProcess {
  proc: Subprocess<'ignore', 'pipe', 'pipe'>
  base: string
  exited: Promise<number>
}

export async function startServer(target: DatabaseTarget, env: Record<string, string> = {}): Promise<ServerProcess> {
  const proc = Bun.spawn([process.execPath, 'src/index.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      PORT: '0',
      HOST: '127.0.0.1',
      DATABASE_URL: databaseUrl(target),
      JWT_SECRET_KEY: TEST_SECRET,
      ARGON2_MEMORY_KIB: '256',
      ARGON2_TIME_COST: '1',
      AUTH_RATE_BURST: '100000',
      SEND_RATE_BURST: '100000',
      SEND_RATE_PER_SEC: '100000',
      ...env,
    },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const reader = proc.stdout.getReader()
  let seen = ''
  const deadline = Date.now() + 15_000
  while (Date.now() < deadline) {
    const { value, done } = await reader.read()
    if (done) break
    seen += new TextDecoder().decode(value)
    const match = /on http:\/\/[^:]+:(\d+)/.exec(seen)
    if (match) {
      reader.releaseLock()
      // Keep draining stdout so the child never blocks on a full pipe.
      void proc.stdout.pipeTo(new WritableStream())
      return { proc, base: `127.0.0.1:${match[1]}`, exited: proc.exited }
    }
  }
  proc.kill('SIGKILL')
  throw new Error(`server did not start: ${seen}${await new Response(proc.stderr).text()}`)
}

export async function http<T = any>(base: string, method: string, path: string, body?: unknown, token?: string) {
  const response = await fetch(`http://${base}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await response.text()
  return { status: response.status, body: (text ? JSON.parse(text) : undefined) as T }
}

/** A minimal contract client: authenticates, then hands every frame to `onFrame`. */
export function connect(base: string, token: string, onFrame: (frame: any) => void): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${base}/ws`)
    ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', access_token: token }))
    ws.onerror = () => reject(new Error('websocket error'))
    ws.onmessage = (event) => {
      const frame = JSON.parse(String(event.data))
      if (frame.type === 'auth:ok') resolve(ws)
      else if (frame.type === 'error' && frame.code === 'unauthorized') reject(new Error('unauthorized'))
      else onFrame(frame)
    }
  })
}
