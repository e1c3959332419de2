import { afterAll, describe, expect, test } from 'bun:test'
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const entry = join(import.meta.dir, '..', 'src', 'index.ts')
const dirs: string[] = []
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })))

/** Runs the entry point in a folder holding only a `.env`, with none of its variables in the environment. */
function runIn(dotenv: string) {
  const dir = mkdtempSync(join(tmpdir(), 'chat-dotenv-'))
  dirs.push(dir)
  writeFileSync(join(dir, '.env'), dotenv)
  const env = { ...process.env }
  for (const name of ['DATABASE_URL', 'PORT', 'HOST', 'JWT_SECRET_KEY', 'NODE_ENV', 'FLASK_ENV', 'DATA_DIR']) delete env[name]
  return { dir, proc: Bun.spawn([process.execPath, entry], { cwd: dir, env, stdout: 'pipe', stderr: 'pipe' }) }
}

describe('configuration from a .env file', () => {
  test('a bad value in .env stops the server with a line naming the variable', async () => {
    const { proc } = runIn('DATABASE_URL=mysql://nope\n')
    expect(await proc.exited).toBe(1)
    const stderr = await new Response(proc.stderr).text()
    expect(stderr.trim().split('\n')).toHaveLength(1)
    expect(stderr).toContain('DATABASE_URL')
  })

  test('FLASK_ENV=production in .env demands JWT_SECRET_KEY', async () => {
    const { proc } = runIn('FLASK_ENV=production\nDATABASE_URL=sqlite::memory:\n')
    expect(await proc.exited).toBe(1)
    expect(await new Response(proc.stderr).text()).toContain('JWT_SECRET_KEY')
  })

  test('the original .env (sqlite:///chat.db) starts a server on that file, relative to the folder', async () => {
    const { dir, proc } = runIn('DATABASE_URL=sqlite:///chat.db\nPORT=0\nHOST=127.0.0.1\n')
    const reader = proc.stdout.getReader()
    let out = ''
    while (!/on http:\/\/[^:]+:\d+/.test(out)) {
      const { value, done } = await reader.read()
      if (done) break
      out += new TextDecoder().decode(value)
    }
    const port = /on http:\/\/[^:]+:(\d+)/.exec(out)?.[1]
    expect(port).toBeDefined()
    const health = await fetch(`http://127.0.0.1:${port}/health`)
    expect(health.status).toBe(200)
    expect(existsSync(join(dir, 'chat.db'))).toBe(true)
    // The generated secret is kept in the data folder, readable by the owner only.
    const secret = statSync(join(dir, 'data', 'jwt-secret'))
    expect(secret.size).toBeGreaterThan(32)
    expect(secret.mode & 0o777).toBe(0o600)
    proc.kill('SIGTERM')
    expect(await proc.exited).toBe(0)
  })
})
