import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FRAME_TYPES } from '../src/realtime/protocol'
import { createTestApp, type TestApp } from './support/app'
import { serveCli } from './support/cli'
import { chromiumAvailable, launchChromium } from './support/browser'

setDefaultTimeout(60_000)

let t: TestApp
beforeAll(async () => {
  t = await createTestApp('sqlite')
})
afterAll(() => t.close())

type Json = Record<string, any>

/** Follows a local `$ref` ("#/a/b"), failing the test when it points nowhere. */
const resolve = (doc: Json, ref: string) => {
  const target = ref
    .slice(2)
    .split('/')
    .reduce<any>((node, key) => node?.[key.replace(/~1/g, '/').replace(/~0/g, '~')], doc)
  expect(target, `dangling $ref ${ref}`).toBeDefined()
  return target
}
const refsOf = (node: unknown, out: string[] = []): string[] => {
  if (Array.isArray(node)) node.forEach((n) => refsOf(n, out))
  else if (node && typeof node === 'object')
    for (const [key, value] of Object.entries(node)) key === '$ref' && typeof value === 'string' ? out.push(value) : refsOf(value, out)
  return out
}

describe('OpenAPI document at /docs/json', () => {
  test('bearer scheme, summaries and tags on every operation, every error with the shared schema, integers as integers', async () => {
    const res = await t.call('GET', '/docs/json')
    expect(res.status).toBe(200)
    const doc = res.body as Json
    expect(doc.openapi).toStartWith('3.')
    expect(doc.components.securitySchemes.bearer).toEqual(expect.objectContaining({ type: 'http', scheme: 'bearer' }))
    expect(doc.components.schemas.Error.properties.error.required).toEqual(['code', 'message'])
    for (const ref of refsOf(doc)) resolve(doc, ref)
    const operations = Object.entries(doc.paths as Json).flatMap(([path, ops]) => Object.entries(ops as Json).map(([method, op]) => ({ path, method, op: op as Json })))
    expect(operations.length).toBeGreaterThan(10)
    expect(operations.some(({ path }) => path.startsWith('/docs'))).toBe(false)
    for (const { path, method, op } of operations) {
      const where = `${method} ${path}`
      expect(typeof op.summary, where).toBe('string')
      expect(op.tags?.length, where).toBeGreaterThan(0)
      for (const [status, response] of Object.entries(op.responses as Json)) {
        if (Number(status) < 400 || (path.startsWith('/health') && status === '503')) continue
        expect((response as Json).content['application/json'].schema, `${where} ${status}`).toEqual({ $ref: '#/components/schemas/Error' })
      }
      expect(op.responses['500'], where).toBeDefined()
      if (op.security) expect(op.responses['401'], where).toBeDefined()
    }
    const byKey = (m: string, p: string) => operations.find((o) => o.method === m && o.path === p)!.op
    expect(byKey('get', '/me').security).toEqual([{ bearer: [] }])
    expect(byKey('post', '/auth/login').security).toBeUndefined()
    expect(byKey('post', '/auth/register').responses['409']).toBeDefined()
    const history = byKey('get', '/dialogs/{dialog_id}/messages')
    expect(history.responses['404']).toBeDefined()
    for (const name of ['dialog_id', 'limit', 'after_id']) {
      const schema = history.parameters.find((p: Json) => p.name === name).schema
      expect(schema.type, name).toBe('integer')
      expect(schema.anyOf, name).toBeUndefined()
    }
    expect(JSON.stringify(doc)).not.toContain('"format":"integer"')
  })

  test('the page and its assets are served by the server itself, with no outside URL', async () => {
    const page = await t.call('GET', '/docs')
    expect(page.status).toBe(200)
    expect(page.headers.get('content-type')).toContain('text/html')
    expect(String(page.body)).not.toMatch(/(src|href)="(https?:)?\/\//)
    for (const [path, type] of [
      ['/docs/assets/swagger-ui-bundle.js', 'javascript'],
      ['/docs/assets/swagger-ui.css', 'text/css'],
    ]) {
      const res = await t.app.handle(new Request(`http://localhost${path}`))
      expect(res.status).toBe(200)
      expect(res.headers.get('content-type')).toContain(type!)
      expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(10_000)
    }
  })
})

describe('AsyncAPI document at /docs/asyncapi.json', () => {
  test('parses as AsyncAPI 3, every $ref resolves, and it names every frame type the server accepts', async () => {
    const res = await t.app.handle(new Request('http://localhost/docs/asyncapi.json'))
    expect(res.status).toBe(200)
    const doc = JSON.parse(await res.text()) as Json
    expect(doc.asyncapi).toBe('3.0.0')
    expect(doc.info.title).toBeString()
    for (const ref of refsOf(doc)) resolve(doc, ref)
    for (const id of Object.keys(doc.components.messages)) expect(id).toMatch(/^[A-Za-z0-9._-]+$/)
    expect(Object.keys(doc.channels).sort()).toEqual(['socketio', 'ws'])
    expect(doc.channels.ws.address).toBe('/ws')

    const received = new Set<string>()
    for (const op of Object.values(doc.operations as Json)) {
      expect(['send', 'receive']).toContain(op.action)
      resolve(doc, op.channel.$ref)
      for (const message of op.messages) {
        const resolved = resolve(doc, resolve(doc, message.$ref).$ref)
        expect(resolved.payload.properties.type.const).toBe(resolved.name)
        if (op.action === 'receive') received.add(resolved.name)
      }
    }
    // Every frame type the server validates is an operation it receives: frames added to protocol.ts appear by themselves.
    expect(FRAME_TYPES.length).toBeGreaterThan(5)
    expect([...received].sort()).toEqual([...FRAME_TYPES].sort())
    const send = resolve(doc, '#/components/messages/message_send')
    expect(send.payload.required).toEqual(expect.arrayContaining(['dialog_id', 'client_msg_id', 'msg_type']))
    expect(Object.keys(send.payload.properties)).toEqual(expect.arrayContaining(['text', 'attachment_id']))
    // What the server sends: every event of the contract, the v1.3 changes included.
    const sent = Object.values(doc.operations as Json)
      .filter((op) => op.action === 'send')
      .flatMap((op) => op.messages.map((m: Json) => resolve(doc, resolve(doc, m.$ref).$ref).name))
    for (const type of ['message:ack', 'message:new', 'message:status', 'message:edited', 'message:deleted', 'message:reactions', 'typing', 'presence', 'dialog:new', 'error'])
      expect(sent).toContain(type)
  })
})

describe.skipIf(!chromiumAvailable)('/docs in headless Chromium with the network blocked', () => {
  test('renders the operations from the server alone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'chat-docs-'))
    const server = await serveCli({ DATABASE_URL: `sqlite://${join(dir, 'chat.db')}` })
    const browser = await launchChromium()
    try {
      const page = await browser.newPage()
      const blocked: string[] = []
      const origin = `http://${server.base}`
      // Anything not from our server is refused, as on a machine without internet.
      await page.route('**/*', (route) => {
        const url = route.request().url()
        if (url.startsWith(origin)) return route.continue()
        blocked.push(url)
        return route.abort('internetdisconnected')
      })
      const errors: string[] = []
      page.on('pageerror', (error) => errors.push(String(error)))
      await page.goto(`${origin}/docs`)
      await page.locator('.opblock').first().waitFor({ timeout: 20_000 })
      const summaries = await page.locator('.opblock-summary-path').allTextContents()
      expect(summaries).toContain('/dialogs/{dialog_id}/messages')
      expect(summaries.length).toBeGreaterThan(10)
      expect(await page.getByRole('button', { name: /Authorize/ }).count()).toBeGreaterThan(0)
      const shot = join(import.meta.dir, '..', 'tests', 'artifacts', 'docs.png')
      await page.screenshot({ path: shot, fullPage: false })
      console.log(`screenshot of /docs: ${shot}`)
      expect(errors).toEqual([])
      expect(blocked).toEqual([])
    } finally {
      await browser.close()
      await server.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
