import type { Subprocess } from 'bun'
import { join } from 'node:path'
import { TEST_SECRET } from './app'

const ROOT = join(import.meta.dir, '..', '..')

/** The environment every CLI run gets: cheap argon2, generous limits; `env` overrides. */
export const cliEnv = (env: Record<string, string>): Record<string, string> => ({
  ...(process.env as Record<string, string>),
  HOST: '127.0.0.1',
  PORT: '0',
  JWT_SECRET_KEY: TEST_SECRET,
  ARGON2_MEMORY_KIB: '256',
  ARGON2_TIME_COST: '1',
  AUTH_RATE_BURST: '100000',
  SEND_RATE_BURST: '100000',
  SEND_RATE_PER_SEC: '100000',
  LOG_LEVEL: 'info',
  LOG_FORMAT: 'pretty',
  ...env,
})

export interface CliRun {
  code: number
  stdout: string
  stderr: string
}

/** Runs `bun src/index.ts <args>` (or `command` as the executable) to its end. */
export async function runCli(args: string[], env: Record<string, string>, options: { stdin?: string; command?: string[] } = {}): Promise<CliRun> {
  const proc = Bun.spawn([...(options.command ?? [process.execPath, 'src/index.ts']), ...args], {
    cwd: ROOT,
    env: cliEnv(env),
    stdin: options.stdin === undefined ? 'ignore' : new Blob([options.stdin]),
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000)
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  clearTimeout(timer)
  return { code, stdout, stderr }
}

/** A serving process whose output is kept (for the log lines), on an ephemeral port. */
export interface Served {
  proc: Subprocess<'ignore', 'pipe', 'pipe'>
  base: string
  /** Everything written to stdout and stderr so far. */
  output(): string
  /** SIGTERM, then the exit code. */
  stop(): Promise<number>
}

export async function serveCli(env: Record<string, string>, command?: string[]): Promise<Served> {
  const proc = Bun.spawn([...(command ?? [process.execPath, 'src/index.ts'])], {
    cwd: ROOT,
    env: cliEnv(env),
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  })
  let out = ''
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder()
    for await (const chunk of stream) out += decoder.decode(chunk, { stream: true })
  }
  void pump(proc.stdout)
  void pump(proc.stderr)
  const deadline = Date.now() + 20_000
  while (Date.now() < deadline) {
    const match = /on http:\/\/[^:]+:(\d+)/.exec(out)
    if (match) {
      return {
        proc,
        base: `127.0.0.1:${match[1]}`,
        output: () => out,
        stop: async () => {
          proc.kill('SIGTERM')
          return proc.exited
        },
      }
    }
    if (proc.exitCode !== null) break
    await Bun.sleep(20)
  }
  proc.kill('SIGKILL')
  throw new Error(`server did not start: ${out}`)
}

/** Waits until `predicate` holds (polling), or fails with `what`. */
export async function eventually(predicate: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await predicate()) return
    await Bun.sleep(25)
  }
  throw new Error(`timed out waiting for ${what}`)
}
