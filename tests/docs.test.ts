import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FRAME_TYPES } from '../src/realtime/protocol'
import { createTestApp, type Session, type TestApp } from './support/app'
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

describe('the documents against the real server: what a generated client would believe', () => {
  let a: Session
  let b: Session
  let dialogId: number
  let openapi: Json
  let asyncapi: Json
  beforeAll(async () => {
    ;({ a, b, dialogId } = await t.pair())
    openapi = (await t.call('GET', '/docs/json')).body
    asyncapi = (await t.call('GET', '/docs/asyncapi.json')).body
  })
  const operations = () =>
    Object.entries(openapi.paths as Json).flatMap(([path, ops]) => Object.entries(ops as Json).map(([method, op]) => ({ path, method, op: op as Json })))

  test('every JSON request body is described: a generated client knows what to send', async () => {
    // Elysia's openapi generator lists a body's media types from the route's parsers; the edge's global
    // onParse is a function, so it emits `content: {}` and the body schema is lost for every route.
    const missing: string[] = []
    for (const { path, method, op } of operations()) {
      if (!op.requestBody || path === '/uploads') continue
      const schema = op.requestBody.content?.['application/json']?.schema
      if (!schema?.properties) missing.push(`${method} ${path}`)
    }
    expect(missing).toEqual([])
    const register = openapi.paths['/auth/register'].post.requestBody.content['application/json'].schema
    expect(register.required).toEqual(expect.arrayContaining(['username', 'password']))
  })

  test('every status the server really answers is listed on its operation', async () => {
    const seen: [string, string, number][] = []
    const hit = async (method: string, template: string, path: string, options: Parameters<TestApp['call']>[2] = {}) => {
      const res = await t.call(method, path, options)
      seen.push([method.toLowerCase(), template, res.status])
      return res
    }
    const A = a.access_token
    const B = b.access_token
    const sent = await hit('POST', '/dialogs/{dialog_id}/messages', `/dialogs/${dialogId}/messages`, {
      token: A,
      body: { client_msg_id: 'doc-1', type: 'text', text: 'hello' },
    })
    expect(sent.status).toBe(201)
    const m = `/dialogs/${dialogId}/messages/${sent.body.id}`
    const thumbs = encodeURIComponent('👍')
    // Success statuses.
    await hit('GET', '/metrics', '/metrics')
    await hit('PUT', '/dialogs/{dialog_id}/messages/{message_id}/reactions/{emoji}', `${m}/reactions/${thumbs}`, { token: A })
    await hit('DELETE', '/dialogs/{dialog_id}/messages/{message_id}/reactions/{emoji}', `${m}/reactions/${thumbs}`, { token: A })
    // 403 forbidden: the peer acting on the sender's message.
    await hit('PATCH', '/dialogs/{dialog_id}/messages/{message_id}', m, { token: B, body: { text: 'x' } })
    await hit('DELETE', '/dialogs/{dialog_id}/messages/{message_id}', m, { token: B })
    await hit('DELETE', '/dialogs/{dialog_id}/messages/{message_id}', m, { token: A })
    // 404: the peer does not exist.
    await hit('POST', '/dialogs', '/dialogs', { token: A, body: { peer_user_id: 99999 } })
    // 403 blocked.
    await hit('PUT', '/users/{user_id}/block', `/users/${b.user.id}/block`, { token: A })
    await hit('POST', '/dialogs/{dialog_id}/messages', `/dialogs/${dialogId}/messages`, {
      token: A,
      body: { client_msg_id: 'doc-2', type: 'text', text: 'blocked' },
    })
    await hit('DELETE', '/users/{user_id}/block', `/users/${b.user.id}/block`, { token: A })
    // Logout.
    const session = await t.register()
    await hit('POST', '/auth/logout', '/auth/logout', { body: { refresh_token: session.refresh_token } })
    // Downloads: 200, 206, 304, and 401 without any token.
    const form = new FormData()
    form.set('file', new File([new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3])], 'x.png'))
    const up = await t.app.handle(new Request('http://localhost/uploads', { method: 'POST', headers: { authorization: `Bearer ${A}` }, body: form }))
    const upload = (await up.json()) as Json
    await hit('GET', '/uploads/{upload_id}', `/uploads/${upload.id}`, { token: A })
    await hit('GET', '/uploads/{upload_id}', `/uploads/${upload.id}`, { token: A, headers: { range: 'bytes=0-1' } })
    await hit('GET', '/uploads/{upload_id}', `/uploads/${upload.id}`, { token: A, headers: { 'if-none-match': `"${upload.sha256}"` } })
    await hit('GET', '/uploads/{upload_id}', `/uploads/${upload.id}`)

    // 429 on the routes that draw on the send bucket (read_up_to, edit, delete, reactions), not only on POST messages.
    const tight = await createTestApp('sqlite', { SEND_RATE_BURST: '1', SEND_RATE_PER_SEC: '0.001' })
    try {
      const pair = await tight.pair()
      const first = await tight.call('POST', `/dialogs/${pair.dialogId}/messages`, {
        token: pair.a.access_token,
        body: { client_msg_id: 'only', type: 'text', text: 'only' },
      })
      const read = await tight.call('POST', `/dialogs/${pair.dialogId}/read_up_to`, {
        token: pair.a.access_token,
        body: { last_read_message_id: first.body.id },
      })
      seen.push(['post', '/dialogs/{dialog_id}/read_up_to', read.status])
      const edit = await tight.call('PATCH', `/dialogs/${pair.dialogId}/messages/${first.body.id}`, { token: pair.a.access_token, body: { text: 'y' } })
      seen.push(['patch', '/dialogs/{dialog_id}/messages/{message_id}', edit.status])
    } finally {
      await tight.close()
    }

    const undocumented = seen
      .filter(([method, path, status]) => !(String(status) in (openapi.paths[path]?.[method]?.responses ?? {})))
      .map(([method, path, status]) => `${method.toUpperCase()} ${path} → ${status}`)
    expect(undocumented).toEqual([])
    // A route that answers 401 without a token says it takes one.
    expect(openapi.paths['/uploads/{upload_id}'].get.responses['401']).toBeDefined()
  })

  test('the document declares the dialect its schemas are in: OpenAPI 3.1 (nullable fields as type arrays, const)', async () => {
    // The generator writes JSON Schema 2020-12; declared 3.0, a 3.0 toolchain dropped the nullability of
    // last_seen_at, last_message, edited_at, attachment, read_at.
    expect(openapi.openapi).toStartWith('3.1')
    expect(JSON.stringify(openapi.paths)).toContain('"type":["string","null"]')
  })

  test('documented length limits are the ones the server enforces (characters, as JSON Schema counts them)', async () => {
    // JSON Schema's maxLength counts characters (code points); the server allows 200 for q, 64 for
    // client_msg_id, 4000 for text (CONTRACT), but the documents publish the doubled UTF-16 bound.
    const q = openapi.paths['/search/messages'].get.parameters.find((p: Json) => p.name === 'q').schema
    // A q as long as the document allows (400 ASCII characters) is refused with 422.
    const res = await t.call('GET', `/search/messages?q=${'a'.repeat(q.maxLength)}`, { token: a.access_token })
    expect({ documentedMax: q.maxLength, status: res.status, code: res.body?.error?.code }).toEqual({ documentedMax: 200, status: 200, code: undefined })
  })

  test('AsyncAPI message:send publishes the contract limits: client_msg_id 1–64, text up to 4000', async () => {
    const send = asyncapi.components.messages.message_send.payload.properties
    expect({ client_msg_id: send.client_msg_id.maxLength, text: send.text.maxLength }).toEqual({ client_msg_id: 64, text: 4000 })
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
