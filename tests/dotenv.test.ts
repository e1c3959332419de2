import { afterAll, describe, expect, test } from 'bun:test'
import { createECDH } from 'node:crypto'
import { existsSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadDotenv, parseDotenv, resolveDotenv } from '../src/config/dotenv'

const entry = join(import.meta.dir, '..', 'src', 'index.ts')
const dirs: string[] = []
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })))

const scratch = () => {
  const dir = mkdtempSync(join(tmpdir(), 'chat-dotenv-'))
  dirs.push(dir)
  return dir
}

/** The environment of a server started by these tests: none of the variables the `.env` files set. */
function environment(extra: Record<string, string> = {}) {
  const env: Record<string, string | undefined> = { ...process.env }
  for (const name of ['DATABASE_URL', 'PORT', 'HOST', 'JWT_SECRET_KEY', 'NODE_ENV', 'FLASK_ENV', 'DATA_DIR', 'VAPID_PUBLIC_KEY', 'VAPID_PRIVATE_KEY', 'LOG_FORMAT'])
    delete env[name]
  return { ...env, ...extra }
}

/**
 * Runs the entry point in a folder holding only a `.env`. Started from that folder, `bun` does not see the
 * project's bunfig.toml (`env = false`): Bun's own loader runs, and the server must take back what it set.
 */
function runIn(dotenv: string) {
  const dir = scratch()
  writeFileSync(join(dir, '.env'), dotenv)
  return { dir, proc: Bun.spawn([process.execPath, entry], { cwd: dir, env: environment(), stdout: 'pipe', stderr: 'pipe' }) }
}

/** Runs one command of the entry point in `dir` to its end. */
async function runTo(dir: string, args: string[], extra: Record<string, string> = {}) {
  const proc = Bun.spawn([process.execPath, entry, ...args], { cwd: dir, env: environment(extra), stdout: 'pipe', stderr: 'pipe' })
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  return { code, stdout, stderr }
}

const vapidPair = () => {
  const ecdh = createECDH('prime256v1')
  ecdh.generateKeys()
  const raw = ecdh.getPrivateKey()
  return { publicKey: ecdh.getPublicKey('base64url'), privateKey: Buffer.concat([Buffer.alloc(32 - raw.length), raw]).toString('base64url') }
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

// The original Flask backend read `.env` with python-dotenv; its files must keep working, and systemd's
// EnvironmentFile (docs/deploy.md) reads them as written. Bun's loader would expand `$name` (even in single
// quotes) and cut values at `#`.
describe('.env read as python-dotenv reads it', () => {
  test('a JWT_SECRET_KEY holding "$" in .env is read as written (35 bytes: accepted in production)', async () => {
    const dir = scratch()
    const { publicKey, privateKey } = vapidPair()
    const secret = `${'A'.repeat(28)}$bcdefg` // 35 bytes
    writeFileSync(
      join(dir, '.env'),
      `NODE_ENV=production\nDATABASE_URL=sqlite://./chat.db\nJWT_SECRET_KEY='${secret}'\nVAPID_PUBLIC_KEY=${publicKey}\nVAPID_PRIVATE_KEY=${privateKey}\nLOG_FORMAT=pretty\n`,
    )
    const run = await runTo(dir, ['migrate'])
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
  })

  test('a JWT_SECRET_KEY holding "#" in .env is read as written (35 bytes: accepted in production)', async () => {
    const dir = scratch()
    const { publicKey, privateKey } = vapidPair()
    const secret = `${'A'.repeat(28)}#bcdefg` // 35 bytes
    writeFileSync(
      join(dir, '.env'),
      `NODE_ENV=production\nDATABASE_URL=sqlite://./chat.db\nJWT_SECRET_KEY=${secret}\nVAPID_PUBLIC_KEY=${publicKey}\nVAPID_PRIVATE_KEY=${privateKey}\nLOG_FORMAT=pretty\n`,
    )
    const run = await runTo(dir, ['migrate'])
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
  })

  test('DATABASE_URL holding "$" in .env names that file', async () => {
    const dir = scratch()
    writeFileSync(join(dir, '.env'), `DATABASE_URL=sqlite://./chat$1.db\nJWT_SECRET_KEY=x\n`)
    const run = await runTo(dir, ['migrate'])
    expect(run.code).toBe(0)
    expect(existsSync(join(dir, 'chat$1.db'))).toBe(true)
  })

  test('the real environment wins over .env; .env.local and .env.development are not read', async () => {
    const dir = scratch()
    writeFileSync(join(dir, '.env'), 'DATABASE_URL=sqlite://./from-dotenv.db\nJWT_SECRET_KEY=x\n')
    writeFileSync(join(dir, '.env.local'), 'DATA_DIR=./local-data\n')
    writeFileSync(join(dir, '.env.development'), 'DATA_DIR=./development-data\n')
    const real = await runTo(dir, ['migrate'], { DATABASE_URL: 'sqlite://./from-environment.db' })
    expect(real).toMatchObject({ code: 0, stderr: '' })
    expect(existsSync(join(dir, 'from-environment.db'))).toBe(true)
    expect(existsSync(join(dir, 'from-dotenv.db'))).toBe(false)
    // No JWT_SECRET_KEY given: the generated one goes to DATA_DIR, the default ./data.
    writeFileSync(join(dir, '.env'), 'DATABASE_URL=sqlite://./from-dotenv.db\n')
    expect(await runTo(dir, ['migrate'])).toMatchObject({ code: 0, stderr: '' })
    expect(existsSync(join(dir, 'from-dotenv.db'))).toBe(true)
    expect(existsSync(join(dir, 'data', 'jwt-secret'))).toBe(true)
    expect(existsSync(join(dir, 'local-data'))).toBe(false)
    expect(existsSync(join(dir, 'development-data'))).toBe(false)
  })

  // Expected values are python-dotenv 1.2.2's (`load_dotenv()`, override=False) for the same text.
  test("python-dotenv's rules: quotes, escapes, comments, ${…} expansion, bad lines skipped", () => {
    const text = [
      '# a comment',
      'export PORT=5000',
      'HOST = 127.0.0.1   # where to listen',
      'SECRET=ab#cd',
      'DOLLAR=ab$cd',
      "SINGLE='ab$cd #ef ${PORT} \\\\ \\' \\n'",
      'DOUBLE="line1\\nline2 \\"q\\" ${PORT} ${NOPE:-fallback} $PORT \\$x"',
      'BRACED=${HOME_DIR}/data',
      'FROM_FILE=${HOST}:${PORT}',
      'EMPTY=',
      'NOVALUE',
      'HASH=#not-a-comment',
      "'QUOTED_KEY'=x",
      'MULTI="a',
      'b"',
      "BAD='unterminated",
      'AFTER=ok',
      '',
    ].join('\n')
    const file = parseDotenv(text)
    expect(file.errorLines).toEqual([16])
    expect(Object.fromEntries(resolveDotenv(file, { HOME_DIR: '/home/chat' }))).toEqual({
      PORT: '5000',
      HOST: '127.0.0.1',
      SECRET: 'ab#cd',
      DOLLAR: 'ab$cd',
      SINGLE: "ab$cd #ef 5000 \\ ' \\n",
      DOUBLE: 'line1\nline2 "q" 5000 fallback $PORT \\$x',
      BRACED: '/home/chat/data',
      FROM_FILE: '127.0.0.1:5000',
      EMPTY: '',
      NOVALUE: undefined,
      HASH: '#not-a-comment',
      QUOTED_KEY: 'x',
      MULTI: 'a\nb',
      AFTER: 'ok',
    })
    // The environment wins in expansions too; CRLF files read the same.
    expect(resolveDotenv(parseDotenv('A=${B}\r\nB=file\r\nC=${B}\r\n'), { B: 'env' })).toEqual(
      new Map([
        ['A', 'env'],
        ['B', 'file'],
        ['C', 'env'],
      ]),
    )
  })

  test("what Bun's own loader set from .env* is taken back; the start environment's values stay", () => {
    const dir = scratch()
    writeFileSync(join(dir, '.env'), "SECRET='ab$cd'\nKEPT=from-file\nBROKEN line\n")
    writeFileSync(join(dir, '.env.local'), 'LOCAL=1\n')
    // As Bun's loader leaves process.env: `$cd` expanded away, .env.local merged, KEPT from the real environment.
    const env: Record<string, string | undefined> = { SECRET: 'ab', LOCAL: '1', KEPT: 'real', OTHER: 'x' }
    const result = loadDotenv(env, dir, () => new Map([['KEPT', 'real']]))
    expect(env).toEqual({ SECRET: 'ab$cd', KEPT: 'real', OTHER: 'x' })
    expect(result.warnings).toEqual([`${join(dir, '.env')} line 3 could not be read; skipped (as python-dotenv does)`])
    // No .env: nothing changes.
    const empty = { A: '1' }
    expect(loadDotenv(empty, scratch())).toEqual({ warnings: [] })
    expect(empty).toEqual({ A: '1' })
  })
})

describe('.env files that cannot be read, and the warnings of one that can', () => {
  // A file that is there and cannot be read, whoever reads it (root too, as the tests may run): reading
  // /proc/self/mem from its start fails with EIO.
  const folderWith = (name: string) => {
    const dir = scratch()
    symlinkSync('/proc/self/mem', join(dir, name))
    return dir
  }

  test('an unreadable .env.production (a file the server never reads) changes nothing', async () => {
    const run = await runTo(folderWith('.env.production'), ['migrate'], { DATABASE_URL: 'sqlite::memory:' })
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' })
  })

  test('an unreadable .env is one line naming it, exit 1, no stack', async () => {
    const run = await runTo(folderWith('.env'), ['migrate'], { DATABASE_URL: 'sqlite::memory:' })
    expect(run.code).toBe(1)
    expect(run.stderr.trim().split('\n')).toHaveLength(1)
    expect(run.stderr).toStartWith('.env: cannot read ')
  })

  test('with JSON logs, a line of .env that does not parse is warned of as a JSON line too', async () => {
    const dir = scratch()
    writeFileSync(join(dir, '.env'), 'this line is broken\nLOG_FORMAT=json\n')
    const run = await runTo(dir, ['migrate'], { DATABASE_URL: 'sqlite::memory:' })
    expect(run.code).toBe(0)
    const lines = `${run.stdout}${run.stderr}`.split('\n').filter(Boolean)
    const parsed = lines.map((line) => JSON.parse(line) as { level: string; msg: string })
    expect(parsed.map((line) => line.level).sort()).toEqual(['info', 'warn'])
    expect(parsed.find((line) => line.level === 'warn')!.msg).toContain('line 1 could not be read')
  })
})

