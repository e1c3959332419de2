import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Subprocess } from 'bun'
import { TEST_SECRET } from './support/app'
import { freePort } from './support/ports'

/*
 * `npm run build` makes one executable: the web app must be inside it. Built the same way, then run from an
 * empty directory (no src/ to read from), it serves the page, its script and its stylesheet.
 */

const ROOT = join(import.meta.dir, '..')

describe('the compiled binary serves the web app', () => {
  const dir = mkdtempSync(join(tmpdir(), 'chat-binary-'))
  const port = freePort()
  const base = `http://127.0.0.1:${port}`
  let server: Subprocess | undefined

  beforeAll(async () => {
    const build = Bun.spawnSync(
      [process.execPath, 'build', '--compile', '--minify', 'src/index.ts', '--outfile', join(dir, 'chat-server')],
      { cwd: ROOT, stdout: 'pipe', stderr: 'pipe' },
    )
    if (build.exitCode !== 0) throw new Error(`build failed: ${build.stderr.toString()}`)
    server = Bun.spawn([join(dir, 'chat-server')], {
      cwd: dir,
      env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', DATABASE_URL: `sqlite://${join(dir, 'chat.db')}`, JWT_SECRET_KEY: TEST_SECRET },
      stdout: 'ignore',
      stderr: 'ignore',
    })
    const deadline = Date.now() + 15_000
    while (Date.now() < deadline) {
      if (await fetch(`${base}/health`).then((r) => r.ok, () => false)) return
      await Bun.sleep(100)
    }
    throw new Error('the binary did not start')
  }, 120_000)

  afterAll(async () => {
    server?.kill('SIGKILL')
    await server?.exited
    rmSync(dir, { recursive: true, force: true })
  })

  test('GET / is the app; its bundled script and stylesheet load; the API is beside it', async () => {
    const page = await fetch(`${base}/`)
    expect(page.status).toBe(200)
    expect(page.headers.get('content-type')).toStartWith('text/html')
    const html = await page.text()
    const script = /<script[^>]+src="([^"]+\.js)"/.exec(html)?.[1]
    const style = /<link[^>]+href="([^"]+\.css)"/.exec(html)?.[1]
    expect(script).toBeString()
    expect(style).toBeString()
    expect(html).not.toContain('cdn')

    const js = await fetch(new URL(script!, base))
    expect(js.status).toBe(200)
    const code = await js.text()
    // The app and the client library it is built on are in the bundle; no module is fetched from elsewhere.
    expect(code).toContain('Reconnecting…')
    expect(code).toContain('message:send')
    expect(code).not.toMatch(/from\s*["']https?:/)
    const css = await fetch(new URL(style!, base))
    expect(css.status).toBe(200)
    expect(await css.text()).toContain('prefers-color-scheme')

    expect((await fetch(`${base}/health`)).status).toBe(200)
    expect((await fetch(`${base}/no-such-route`)).status).toBe(404)
  }, 30_000)
})
