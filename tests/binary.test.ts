import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pkg from '../package.json'
import { runCli, serveCli } from './support/cli'
import { http } from './support/server-process'

setDefaultTimeout(120_000)

// The single executable, built as `npm run build` builds it, into a folder of this test's own.
const dir = mkdtempSync(join(tmpdir(), 'chat-binary-'))
const binary = join(dir, 'chat-server')
beforeAll(async () => {
  const build = Bun.spawn(['node_modules/.bin/bun', 'build', '--compile', '--minify', 'src/index.ts', '--outfile', binary], {
    cwd: join(import.meta.dir, '..'),
    stdout: 'pipe',
    stderr: 'pipe',
  })
  if ((await build.exited) !== 0) throw new Error(`build failed: ${await new Response(build.stderr).text()}`)
}, 180_000)
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('the compiled binary', () => {
  test('--version and --help do not start a server', async () => {
    const version = await runCli(['--version'], {}, { command: [binary] })
    expect(version).toEqual({ code: 0, stdout: `${pkg.version}\n`, stderr: '' })
    const help = await runCli(['--help'], {}, { command: [binary] })
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('Usage: chat-server')
  })

  test('a start-up failure is one line and exit 1, no source dump', async () => {
    const db = await runCli([], { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/chat' }, { command: [binary] })
    expect(db).toEqual({
      code: 1,
      stdout: '',
      stderr: 'DATABASE_URL: cannot connect to postgres://postgres@127.0.0.1:1/chat within 5 s: connect ECONNREFUSED 127.0.0.1:1\n',
    })
    const holder = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
    try {
      const port = await runCli([], { DATABASE_URL: `sqlite://${join(dir, 'port.db')}`, PORT: String(holder.port) }, { command: [binary] })
      expect(port).toEqual({ code: 1, stdout: '', stderr: `PORT ${holder.port} is in use (HOST 127.0.0.1)\n` })
    } finally {
      holder.stop(true)
    }
    const redis = await runCli([], { DATABASE_URL: `sqlite://${join(dir, 'redis.db')}`, REDIS_URL: 'redis://127.0.0.1:1' }, { command: [binary] })
    expect(redis.code).toBe(1)
    expect(redis.stderr).toMatch(/^REDIS_URL: cannot connect to redis:\/\/127\.0\.0\.1:1 within 5 s: [^\n]+\n$/)
  })

  test('migrates an empty database without writing to the temp folder, and serves /docs from itself', async () => {
    const temp = mkdtempSync(join(dir, 'tmp-'))
    const server = await serveCli({ DATABASE_URL: `sqlite://${join(dir, 'served.db')}`, TMPDIR: temp }, [binary])
    try {
      expect(await http(server.base, 'GET', '/health/ready')).toEqual({ status: 200, body: { status: 'ok' } })
      const asset = await fetch(`http://${server.base}/docs/assets/swagger-ui-bundle.js`)
      expect(asset.status).toBe(200)
      expect((await asset.arrayBuffer()).byteLength).toBeGreaterThan(100_000)
      const docs = await http(server.base, 'GET', '/docs/json')
      expect(docs.body.components.securitySchemes.bearer.scheme).toBe('bearer')
      expect(readdirSync(temp)).toEqual([])
    } finally {
      expect(await server.stop()).toBe(0)
    }
  })
})
