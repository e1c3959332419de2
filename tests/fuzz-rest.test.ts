import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import { createECDH, randomBytes } from 'node:crypto'
import { dialects } from './support/databases'
import {
  bodyText,
  Bystanders,
  encode,
  expectContractAnswer,
  nearMiss,
  nearMissFor,
  openDialog,
  register,
  RUNS,
  sendText,
  startScene,
  uploadFile,
  type Account,
  type Target,
} from './support/fuzz'
import { BOUNDARY, MULTIPART, multipartBody, sha256, type Part } from './support/multipart'
import { rawRequest } from './support/raw-http'

/*
 * Property-based attacks on the REST API of a real server process (issue #13): every route gets arbitrary
 * JSON, near-miss bodies, odd path ids and query values, odd tokens, and odd headers. Every answer must be
 * 2xx or a contract error (never 500, HTML or a stack), the process must live and log no fault, and two
 * other users chatting meanwhile must see every send answered 201 and published.
 */

interface Route {
  method: string
  path: fc.Arbitrary<string>
  body?: Record<string, unknown>
  /** Near misses of the body other than `bodyText(body)`'s (a nested object's fields). */
  bodies?: fc.Arbitrary<string>
  /** What a 2xx answer's JSON must also satisfy. */
  check?: (path: string, status: number, body: any, sent: string | undefined) => void
  /** How often it is drawn, relative to the others (1 unless said). */
  weight?: number
}

/** How an upload's multipart body is broken (or not) before it is sent. */
type Mutation =
  | { kind: 'none' | 'lf' | 'no-close' }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'json'; text: string }

/** Uploads are capped low in this scene, so that 413 is reached with small bodies. */
const UPLOAD_LIMIT = 2048
/** A query parameter given exactly once, else undefined (a repeated one is Elysia's to refuse or pick). */
const once = (params: URLSearchParams, key: string) => (params.getAll(key).length === 1 ? params.get(key)! : undefined)
/** A canonical path/query id (what the server accepts), as a number. */
const idOf = (value: string | undefined) => (value !== undefined && /^(0|[1-9][0-9]{0,9})$/.test(value) ? Number(value) : undefined)
const strictlyIncreasing = (values: number[]) => values.every((v, i) => i === 0 || values[i - 1]! < v)

describe.each(dialects)('REST fuzz on %s', (dialect) => {
  let target: Target
  let me: Account
  let spare: Account
  let peer: Account
  let dialogId: number
  let messageId: number
  let ownMessageId: number
  let bystanders: Bystanders
  /** My second dialog (with `spare`), so that search has more than one dialog to keep apart from others'. */
  let otherDialogId: number
  /** My messages the fuzz may delete (the first DELETE deletes, the next ones are 204 again). */
  let doomed: number[]
  /** A user the fuzz blocks and unblocks (not the peer: the other tests' sends stay unblocked). */
  let blockee: Account
  /** My upload, its bytes known; and the peer's, never sent, so 404 for me. */
  let upload: { id: number; bytes: Uint8Array; sha256: string }
  let peerUploadId: number

  beforeAll(async () => {
    ;({ target, me, peer, dialogId, messageId, ownMessageId, bystanders } = await startScene(dialect, { UPLOAD_MAX_BYTES: String(UPLOAD_LIMIT) }))
    ;[spare, blockee] = await Promise.all([register(target.base), register(target.base)])
    otherDialogId = await openDialog(target.base, me, spare)
    await sendText(target.base, spare, otherDialogId, 'other', 'fuzz in the other dialog Привет мир 你好')
    doomed = await Promise.all([0, 1, 2].map((i) => sendText(target.base, me, dialogId, `doomed-${i}`, `doomed fuzz ${i}`)))
    const bytes = new Uint8Array(1000).map((_, i) => (i * 7 + 3) & 0xff)
    upload = { id: await uploadFile(target.base, me, [{ name: 'file', filename: 'known.bin', data: bytes }]), bytes, sha256: sha256(bytes) }
    peerUploadId = await uploadFile(target.base, peer, [{ name: 'file', filename: 'peer.bin', data: 'not yours' }])
  }, 30_000)
  afterAll(() => target?.stop())

  /** A path id: mostly the real one (so the route's logic runs), else an odd spelling or arbitrary text. */
  const idSegment = (real: () => number) =>
    fc.oneof(
      { arbitrary: fc.constant(0).map(() => String(real())), weight: 3 },
      { arbitrary: fc.constantFrom('0', '01', '+1', '1.0', '1e3', '0x10', '-1', '2147483648', '99999999999999999999', '%00', '%20', 'null'), weight: 1 },
      { arbitrary: fc.string({ unit: 'binary', maxLength: 12 }).map(encode), weight: 1 },
    )

  /**
   * A query: some of `keys` (valid values or near misses), sometimes an odd key or a repeated one. A key
   * in `special` takes its "valid" values from that generator instead.
   */
  const query = (valid: Record<string, string>, special: Record<string, fc.Arbitrary<string>> = {}) =>
    fc
      .array(
        fc.oneof(
          fc.constantFrom(...Object.entries(valid)).chain(([k, v]) => (special[k] ?? fc.constant(v)).map((value) => [k, value] as const)),
          fc.constantFrom(...Object.keys(valid)).chain((k) => nearMissFor(k).map((v) => [k, typeof v === 'string' ? v : JSON.stringify(v) ?? ''] as const)),
          fc.tuple(fc.constantFrom('__proto__', 'constructor', 'limit[]', 'a[b]', ''), fc.string({ maxLength: 8 })),
        ),
        { maxLength: 4 },
      )
      .map((pairs) => (pairs.length ? '?' + pairs.map(([k, v]) => `${encode(k)}=${encode(v)}`).join('&') : ''))

  const routes = (): Route[] => {
    const dialog = idSegment(() => dialogId)
    return [
      { method: 'POST', path: fc.constant('/auth/register'), body: { username: 'fuzz_valid_name', password: 'correct horse battery' } },
      { method: 'POST', path: fc.constant('/auth/login'), body: { username: me.username, password: 'correct horse battery' } },
      { method: 'POST', path: fc.constant('/auth/refresh'), body: { refresh_token: spare.refresh } },
      { method: 'POST', path: fc.constant('/auth/logout'), body: { refresh_token: spare.refresh } },
      { method: 'GET', path: fc.constant('/me') },
      { method: 'GET', path: query({ username: peer.username, q: 'fz', limit: '5' }).map((q) => `/users${q}`) },
      { method: 'GET', path: query({ limit: '10', before: '2030-01-01T00:00:00Z' }).map((q) => `/dialogs${q}`) },
      { method: 'POST', path: fc.constant('/dialogs'), body: { peer_user_id: peer.userId } },
      { method: 'GET', path: dialog.map((id) => `/dialogs/${id}`) },
      {
        method: 'GET',
        path: fc
          .tuple(dialog, query({ limit: '5', before: '2030-01-01T00:00:00+02:00', before_id: String(messageId), after_id: '0' }))
          .map(([id, q]) => `/dialogs/${id}/messages${q}`),
      },
      { method: 'POST', path: dialog.map((id) => `/dialogs/${id}/messages`), body: { client_msg_id: 'fuzz', type: 'text', text: 'fuzz' } },
      { method: 'POST', path: dialog.map((id) => `/dialogs/${id}/read_up_to`), body: { last_read_message_id: messageId, read_at: '2026-11-23T10:15:30.123Z' } },
      { method: 'GET', path: fc.constantFrom('/health', '/metrics', '/nope', '/dialogs/', '//dialogs', '/dialogs/1/2/3') },
      { method: 'DELETE', path: fc.constantFrom('/dialogs', '/me', '/auth/login') },
    ]
  }

  const token = () =>
    fc.oneof(
      { arbitrary: fc.constant(0).map(() => me.token), weight: 8 },
      { arbitrary: fc.constantFrom('', 'garbage', 'a.b.c').map(String), weight: 1 },
      { arbitrary: fc.constant(0).map(() => me.token + '='), weight: 1 },
      { arbitrary: fc.constant(0).map(() => me.refresh), weight: 1 },
    )

  test('arbitrary and near-miss bodies, path ids, queries and tokens on every route: 2xx or a contract error', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc
          .constantFrom(...routes())
          .chain((route) =>
            fc.record({ method: fc.constant(route.method), path: route.path, body: route.body ? bodyText(route.body) : fc.constant(undefined), token: token() }),
          ),
        async ({ method, path, body, token }) => {
          const res = await fetch(`http://${target.base}${path}`, {
            method,
            headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
            body,
          })
          expectContractAnswer(`${method} ${path} ${body ?? ''}`, res.status, res.headers.get('content-type'), await res.text())
        },
      ),
      { numRuns: RUNS * 4 },
    )
  }, 60_000)

  test('arbitrary Host, Content-Length, Content-Type and Origin headers: a contract answer, or the HTTP parser refusing a malformed request', async () => {
    const visible = fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c))
    const odd = fc.constantFrom('\t', '\u0000', '\u0001', '\u007f', 'é', 'ÿ', '😀').map(String)
    const headerValue = fc.string({ unit: fc.oneof({ arbitrary: visible, weight: 9 }, { arbitrary: odd, weight: 1 }), maxLength: 24 })
    const body = JSON.stringify({ username: me.username, password: 'correct horse battery' })
    const bytes = Buffer.byteLength(body)
    const contentLength = fc.oneof(
      { arbitrary: fc.constant(String(bytes)), weight: 6 },
      { arbitrary: fc.constantFrom('-1', 'abc', `${bytes}, ${bytes}`, '', '99999999999999999999', '0x10', ` ${bytes}`, `+${bytes}`, '1e3', '0', String(bytes - 1)), weight: 2 },
      { arbitrary: headerValue, weight: 1 },
    )
    const request = fc.record({
      host: fc.oneof(fc.constantFrom('x', 'api', 'x:1', '', 'localhost', '[::1]', 'a b', 'x/y', '@'), headerValue),
      length: fc.option(contentLength),
      type: fc.option(fc.oneof(fc.constantFrom('application/json', 'text/plain', 'application/json; charset=latin1', 'multipart/form-data'), headerValue)),
      origin: fc.option(fc.oneof(fc.constantFrom('null', 'https://evil.example', '*'), headerValue)),
      path: fc.constantFrom('/auth/login', '/health', `/dialogs`),
    })
    await fc.assert(
      fc.asyncProperty(request, async ({ host, length, type, origin, path }) => {
        const post = path !== '/health'
        const lines = [`${post ? 'POST' : 'GET'} ${path} HTTP/1.1`, `Host: ${host}`]
        if (path === '/dialogs') lines.push(`Authorization: Bearer ${me.token}`)
        if (length !== null) lines.push(`Content-Length: ${length}`)
        if (type !== null) lines.push(`Content-Type: ${type}`)
        if (origin !== null) lines.push(`Origin: ${origin}`)
        const label = JSON.stringify(lines)
        const res = await rawRequest(target.port, lines.join('\r\n'), post ? body : '', 500)
        // Bun's HTTP parser refuses some requests before the app sees them: a bare 400, or (a length longer
        // than what was sent) no answer before the client gives up. Only requests malformed at that level.
        const exact = length === null ? !post : length === String(bytes)
        const malformed = !exact || [host, length ?? '', type ?? '', origin ?? ''].some((v) => /[^\t\x20-\x7e]/.test(v))
        if (!res || (res.status === 400 && res.text === '')) return void expect(malformed, label).toBe(true)
        expectContractAnswer(label, res.status, res.headers['content-type'] ?? null, res.text)
      }),
      { numRuns: RUNS * 2 },
    )
  }, 60_000)

  /** Words search must treat as words or separators, never as query syntax, in several scripts. */
  const searchText = fc.oneof(
    {
      arbitrary: fc
        .tuple(
          fc.array(
            fc.oneof(
              fc.constantFrom(
                'fuzz', 'FUZZ', 'fu', 'own', 'прив', 'Привет', 'мир', '你好', '你', 'message', 'doomed', 'seed', 'NEAR', 'OR', 'AND', 'NOT',
                '*', '"', "'", ':', '(', ')', '-', '^', '&', '|', '!', '<->', ':*', '\\', '%', '_', '{', '}', '[', ']', '+', '~', '@',
                'NEAR(fuzz', 'fuzz*', '"fuzz', 'fuzz:*', '!fuzz', 'é', 'e\u0301', 'ﬁ', 'İ', 'ß', '\u0000', '\u200b', 'مرحبا', '😀', 'x'.repeat(100),
              ),
              fc.string({ maxLength: 6 }),
            ),
            { minLength: 1, maxLength: 24 },
          ),
          fc.constantFrom(' ', '', '  ', '\t', '+', ','),
        )
        .map(([words, separator]) => words.join(separator)),
      weight: 4,
    },
    { arbitrary: fc.string({ unit: 'grapheme', maxLength: 210 }), weight: 1 },
    { arbitrary: fc.string({ unit: 'binary', maxLength: 40 }), weight: 1 },
  )

  /** One emoji (the contract's reaction), next to things that are not exactly one. */
  const emojiSegment = fc.oneof(
    { arbitrary: fc.constantFrom('👍', '❤️', '👍🏽', '🏳️‍🌈', '👨‍👩‍👧‍👦', '🇫🇷', '1️⃣', '#️⃣', '🏴󠁧󠁢󠁳󠁣󠁴󠁿').map(encode), weight: 3 },
    {
      arbitrary: fc
        .constantFrom('👍👍', '👍 ', ' 👍', 'a', '1', '🇫', '\u200d', '\ufe0f', '\u20e3', '👍\u0000', '😀'.repeat(40), 'x'.repeat(65), '\ud83d', ':+1:', '%F0%9F', '%', '%%', '%ZZ', '')
        .map((e) => (e.startsWith('%') ? e : encode(e))),
      weight: 2,
    },
    { arbitrary: fc.string({ unit: 'grapheme', maxLength: 4 }).map(encode), weight: 1 },
  )

  const pushKeys = {
    p256dh: createECDH('prime256v1').generateKeys().toString('base64url'),
    auth: randomBytes(16).toString('base64url'),
  }
  const endpoint = fc.oneof(
    { arbitrary: fc.integer({ min: 0, max: 5 }).map((n) => `http://127.0.0.1:9/push/fuzz-${n}`), weight: 3 },
    {
      arbitrary: fc.constantFrom(
        'https://push.invalid/x', 'http://push.invalid/x', 'http://[::1]:9/p', 'http://localhost:9/p', 'http://10.0.0.1/p', 'ftp://127.0.0.1/p',
        'https://user:pw@push.invalid/x', 'https://', 'javascript:alert(1)', 'data:,x', '//push.invalid/x', `https://push.invalid/${'x'.repeat(2100)}`, '',
      ),
      weight: 2,
    },
  )

  /** A 200 history page keeps its promises: this dialog only, at most `limit`, in the order its cursor asks. */
  const checkHistory = (path: string, _status: number, body: any) => {
    const url = new URL(path, 'http://x')
    const params = url.searchParams
    const messages = body.messages as { id: number; dialog_id: number; version: number }[]
    const context = `${path} → ${JSON.stringify(body).slice(0, 300)}`
    expect(typeof body.has_more, context).toBe('boolean')
    expect(messages.every((m) => m.dialog_id === Number(url.pathname.split('/')[2])), context).toBe(true)
    const limit = idOf(once(params, 'limit'))
    if (!params.has('limit')) expect(messages.length, context).toBeLessThanOrEqual(30)
    else if (limit !== undefined) expect(messages.length, context).toBeLessThanOrEqual(limit)
    const changedAfter = idOf(once(params, 'changed_after'))
    if (changedAfter !== undefined) {
      expect(strictlyIncreasing(messages.map((m) => m.version)), context).toBe(true)
      expect(messages.every((m) => m.version > changedAfter), context).toBe(true)
      return
    }
    // A repeated changed_after is Elysia's to refuse or pick: either order may answer it.
    if (params.has('changed_after')) return
    expect(strictlyIncreasing(messages.map((m) => m.id)), context).toBe(true)
    const beforeId = idOf(once(params, 'before_id'))
    if (beforeId !== undefined) expect(messages.every((m) => m.id < beforeId), context).toBe(true)
    const afterId = idOf(once(params, 'after_id'))
    if (afterId !== undefined) expect(messages.every((m) => m.id > afterId), context).toBe(true)
  }

  /** A 200 search page: newest first, from my dialogs only (or the one named), nothing deleted, at most `limit`. */
  const checkSearch = (path: string, _status: number, body: any) => {
    const params = new URL(path, 'http://x').searchParams
    const messages = body.messages as { id: number; dialog_id: number; deleted: boolean; text: string }[]
    const context = `${path} → ${JSON.stringify(body).slice(0, 300)}`
    expect(typeof body.has_more, context).toBe('boolean')
    expect(strictlyIncreasing(messages.map((m) => -m.id)), context).toBe(true)
    expect(messages.every((m) => m.dialog_id === dialogId || m.dialog_id === otherDialogId), context).toBe(true)
    expect(messages.every((m) => !m.deleted && m.text !== ''), context).toBe(true)
    const limit = idOf(once(params, 'limit'))
    if (!params.has('limit')) expect(messages.length, context).toBeLessThanOrEqual(20)
    else if (limit !== undefined) expect(messages.length, context).toBeLessThanOrEqual(limit)
    const only = idOf(once(params, 'dialog_id'))
    if (only !== undefined) expect(messages.every((m) => m.dialog_id === only), context).toBe(true)
    const beforeId = idOf(once(params, 'before_id'))
    if (beforeId !== undefined) expect(messages.every((m) => m.id < beforeId), context).toBe(true)
  }

  /** A 200 edit is of my own message, with the text sent and edited_at set (the peer's answers 403). */
  const checkEdit = (path: string, status: number, body: any, sent: string | undefined) => {
    const context = `PATCH ${path} ${sent} → ${status} ${JSON.stringify(body).slice(0, 300)}`
    expect(status, context).toBe(200)
    expect(body, context).toMatchObject({ id: Number(path.split('/')[4]), sender_id: me.userId, deleted: false, text: JSON.parse(sent!).text })
    expect(typeof body.edited_at, context).toBe('string')
  }

  const noContent = (path: string, status: number) => expect(status, path).toBe(204)

  const routesSince = (): Route[] => {
    const dialog = idSegment(() => dialogId)
    const own = idSegment(() => ownMessageId)
    // Mine to edit, the peer's (403), one of mine that may be deleted by now (404 once it is).
    const message = fc.oneof(
      { arbitrary: own, weight: 3 },
      { arbitrary: idSegment(() => messageId), weight: 1 },
      { arbitrary: fc.constantFrom(...doomed).map(String), weight: 1 },
    )
    const doomedOrNot = fc.oneof(fc.constantFrom(...doomed).map(String), idSegment(() => messageId), own)
    const user = fc.oneof(idSegment(() => blockee.userId), fc.constant(0).map(() => String(me.userId)), fc.constant('2147483647'))
    const nestedKeys = nearMiss(pushKeys).map((keys) => JSON.stringify({ endpoint: 'http://127.0.0.1:9/push/nested', keys }) ?? 'null')
    return [
      { method: 'PATCH', path: fc.tuple(dialog, message).map(([d, m]) => `/dialogs/${d}/messages/${m}`), body: { text: 'edited by fuzz' }, check: checkEdit, weight: 3 },
      { method: 'DELETE', path: fc.tuple(dialog, doomedOrNot).map(([d, m]) => `/dialogs/${d}/messages/${m}`), check: noContent },
      ...(['PUT', 'DELETE'] as const).map((method) => ({
        method,
        path: fc.tuple(dialog, message, emojiSegment).map(([d, m, e]) => `/dialogs/${d}/messages/${m}/reactions/${e}`),
        check: noContent,
        weight: 2,
      })),
      {
        method: 'GET',
        path: fc
          .tuple(fc.option(searchText, { freq: 8 }), query({ dialog_id: String(dialogId), limit: '5', before_id: '2147483647' }))
          .map(([q, rest]) => `/search/messages${q === null ? rest : `?q=${encode(q)}${rest.replace('?', '&')}`}`),
        check: checkSearch,
        weight: 4,
      },
      {
        method: 'GET',
        path: fc
          .tuple(fc.oneof(dialog, fc.constant(0).map(() => String(otherDialogId))), query({ changed_after: '0', limit: '5' }, { changed_after: fc.nat(40).map(String) }))
          .map(([id, q]) => `/dialogs/${id}/messages${q}`),
        check: checkHistory,
        weight: 2,
      },
      ...(['PUT', 'DELETE'] as const).map((method) => ({ method, path: user.map((id) => `/users/${id}/block`), check: noContent })),
      {
        method: 'GET',
        path: fc.constantFrom('/users/blocked', '/users/blocked?limit=1', '/users/blocked/', '/users/blocked/block'),
        check: (path: string, _status: number, body: any) => {
          expect(Array.isArray(body.users), path).toBe(true)
          expect(body.users.every((u: { id: number }) => u.id === blockee.userId), JSON.stringify(body)).toBe(true)
        },
      },
      {
        method: 'GET',
        path: fc.constantFrom('/push/vapid-public-key', '/push/vapid-public-key?x=1', '/push/sw.js', '/push', '/push/subscriptions'),
        check: (path: string, _status: number, body: any) => {
          if (!path.startsWith('/push/vapid-public-key')) return
          expect(Buffer.from(body.key, 'base64url').length, JSON.stringify(body)).toBe(65)
        },
      },
      {
        method: 'POST',
        path: fc.constant('/push/subscriptions'),
        body: { endpoint: 'http://127.0.0.1:9/push/fuzz', keys: pushKeys },
        bodies: fc.oneof(nestedKeys, endpoint.map((e) => JSON.stringify({ endpoint: e, keys: pushKeys }))),
      },
      {
        method: 'DELETE',
        path: fc.constant('/push/subscriptions'),
        body: { endpoint: 'http://127.0.0.1:9/push/fuzz' },
        bodies: endpoint.map((e) => JSON.stringify({ endpoint: e })),
      },
    ]
  }

  test('the routes added since (edit, delete, reactions, search, changes, blocking, push): 2xx or a contract error, and 2xx answers keep their promises', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(...routesSince().map((route) => ({ arbitrary: fc.constant(route), weight: route.weight ?? 1 }))).chain((route) =>
          fc.record({
            route: fc.constant(route),
            path: route.path,
            body: route.body
              ? route.bodies
                ? fc.oneof({ arbitrary: bodyText(route.body), weight: 2 }, { arbitrary: route.bodies, weight: 1 })
                : bodyText(route.body)
              : // Routes without a body mostly get none, sometimes some JSON (which they ignore or refuse).
                fc.oneof(
                  { arbitrary: fc.constant(undefined), weight: 5 },
                  { arbitrary: fc.jsonValue({ maxDepth: 1 }).map((v) => JSON.stringify(v) ?? 'null'), weight: 1 },
                ),
            token: token(),
          }),
        ),
        async ({ route, path, body, token }) => {
          const res = await fetch(`http://${target.base}${path}`, {
            method: route.method,
            headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
            body: route.method === 'GET' ? undefined : body,
          })
          const text = await res.text()
          const label = `${route.method} ${path} ${body ?? ''}`
          expectContractAnswer(label, res.status, res.headers.get('content-type'), text)
          if (res.status >= 200 && res.status < 300 && route.check)
            route.check(path, res.status, res.headers.get('content-type')?.startsWith('application/json') ? JSON.parse(text) : undefined, body)
        },
      ),
      { numRuns: RUNS * 2 },
    )
  }, 60_000)

  /** A multipart body, whole or broken in one of the ways a client or an attacker breaks one. */
  const uploadRequest = () => {
    const name = fc.oneof({ arbitrary: fc.constant('file'), weight: 4 }, { arbitrary: fc.constantFrom('files', 'FILE', '', 'file ', 'caption', 'fi"le'), weight: 1 })
    const filename = fc.option(
      fc.oneof(
        fc.constantFrom('a.png', 'notes.txt', '', '../../etc/passwd', 'C:\\x\\y.exe', 'x'.repeat(300), '😀.txt', 'a;b=c', 'con', '.', '%00.bin'),
        fc.string({ unit: 'binary', maxLength: 20 }),
      ),
    )
    const data = fc.oneof(
      { arbitrary: fc.uint8Array({ maxLength: 300 }), weight: 4 },
      { arbitrary: fc.uint8Array({ minLength: UPLOAD_LIMIT - 2, maxLength: UPLOAD_LIMIT + 2 }), weight: 1 },
      { arbitrary: fc.constantFrom('\x89PNG\r\n\x1a\n', 'GIF89a', '%PDF-1.7\n', '\xff\xd8\xff\xe0', `\r\n--${BOUNDARY}`, `--${BOUNDARY}--`).map((s) => Buffer.from(s, 'latin1')), weight: 1 },
    )
    const part = fc
      .record({ name, filename, type: fc.option(fc.constantFrom('image/png', 'text/plain', 'application/octet-stream', 'x')), data })
      .map(({ name, filename, type, data }): Part => ({ name, data, ...(filename === null ? {} : { filename }), ...(type === null ? {} : { type }) }))
    const contentType = fc.oneof(
      { arbitrary: fc.constant(MULTIPART), weight: 6 },
      {
        arbitrary: fc.constantFrom(
          'multipart/form-data', 'multipart/form-data; boundary=', `multipart/form-data; boundary="${BOUNDARY}"`, `MULTIPART/FORM-DATA; BOUNDARY=${BOUNDARY}`,
          `multipart/form-data; charset=utf-8; boundary=${BOUNDARY}`, 'multipart/form-data; boundary=other', `multipart/mixed; boundary=${BOUNDARY}`,
          `multipart/form-data; boundary=${'b'.repeat(71)}`, 'application/json', 'text/plain', 'application/octet-stream', 'application/x-www-form-urlencoded', '',
        ),
        weight: 2,
      },
      { arbitrary: fc.string({ maxLength: 40 }), weight: 1 },
    )
    const mutation = fc.oneof(
      { arbitrary: fc.constant<Mutation>({ kind: 'none' }), weight: 4 },
      { arbitrary: fc.nat().map((at): Mutation => ({ kind: 'truncate', at })), weight: 1 },
      { arbitrary: fc.tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 8 })).map(([at, bytes]): Mutation => ({ kind: 'insert', at, bytes })), weight: 1 },
      { arbitrary: fc.constantFrom<Mutation>({ kind: 'lf' }, { kind: 'no-close' }), weight: 2 },
      { arbitrary: fc.jsonValue({ maxDepth: 2 }).map((v): Mutation => ({ kind: 'json', text: JSON.stringify(v) ?? 'null' })), weight: 1 },
    )
    const filePart = part.map((p) => ({ ...p, name: 'file' }))
    const parts = fc.oneof(
      { arbitrary: fc.tuple(filePart).map((ps): Part[] => ps), weight: 3 },
      { arbitrary: fc.tuple(filePart, part, fc.boolean()).map(([f, other, first]) => (first ? [f, other] : [other, f])), weight: 1 },
      { arbitrary: fc.array(part, { maxLength: 3 }), weight: 1 },
    )
    return fc.record({ parts, contentType: fc.option(contentType, { freq: 8 }), mutation, token: token() })
  }

  /** The body as sent, and whether it is still the whole multipart body that was built. */
  const uploadBody = (parts: Part[], mutation: Mutation): { bytes: Uint8Array; whole: boolean } => {
    const built = Buffer.from(multipartBody(parts))
    switch (mutation.kind) {
      case 'truncate':
        return { bytes: built.subarray(0, mutation.at % (built.length + 1)), whole: mutation.at % (built.length + 1) === built.length }
      case 'insert': {
        const at = mutation.at % (built.length + 1)
        return { bytes: Buffer.concat([built.subarray(0, at), mutation.bytes, built.subarray(at)]), whole: false }
      }
      case 'lf':
        return { bytes: Buffer.from(built.toString('latin1').replaceAll('\r\n', '\n'), 'latin1'), whole: false }
      case 'no-close':
        return { bytes: built.subarray(0, built.length - `--${BOUNDARY}--\r\n`.length), whole: false }
      case 'json':
        return { bytes: Buffer.from(mutation.text), whole: false }
    }
    return { bytes: built, whole: true }
  }

  test('POST /uploads with near-miss multipart bodies and content types: a contract answer; a well-formed one is stored as sent', async () => {
    await fc.assert(
      fc.asyncProperty(uploadRequest(), async ({ parts, contentType, mutation, token }) => {
        const { bytes, whole } = uploadBody(parts, mutation)
        const res = await fetch(`http://${target.base}/uploads`, {
          method: 'POST',
          headers: { ...(contentType === null ? {} : { 'content-type': contentType }), authorization: `Bearer ${token}` },
          body: bytes,
        })
        const text = await res.text()
        const label = `POST /uploads ${contentType} ${mutation.kind} ${JSON.stringify(parts.map((p) => ({ ...p, data: p.data.length })))}`
        expectContractAnswer(label, res.status, res.headers.get('content-type'), text)
        // The model: a whole body, as the contract's client builds it, with one part named "file" whose
        // headers hold no line break, by me, with a boundary that parses.
        const files = parts.filter((p) => p.name === 'file')
        const clean = parts.every((p) => !/[\r\n"]/.test(`${p.name}${p.filename ?? ''}`))
        const delimiterFree = parts.every((p) => !Buffer.from(p.data).includes(`\r\n--${BOUNDARY}`) && !Buffer.from(p.data).includes(`--${BOUNDARY}`))
        if (token !== me.token || contentType !== MULTIPART || !whole || !clean || !delimiterFree || files.length !== 1) return
        const file = files[0]!
        if (file.data.length > UPLOAD_LIMIT) return void expect({ label, status: res.status }).toEqual({ label, status: 413 })
        expect({ label, status: res.status }).toEqual({ label, status: 201 })
        expect(JSON.parse(text), label).toMatchObject({ size: file.data.length, sha256: sha256(Buffer.from(file.data)) })
      }),
      { numRuns: RUNS },
    )
  }, 60_000)

  test('GET /uploads/{id} with Bearer or ?access_token=, Range and If-None-Match: a contract answer; what it sends is what it says', async () => {
    // Over the query's bound (422 whatever the Bearer says), and a broken percent-encoding.
    const OVERLONG = 'x'.repeat(5000)
    const range = fc.option(
      fc.oneof(
        fc.tuple(fc.option(fc.nat(1100)), fc.option(fc.nat(1100))).map(([a, b]) => `bytes=${a ?? ''}-${b ?? ''}`),
        fc.constantFrom(
          'bytes=0-0', 'bytes=-1', 'bytes=-0', 'bytes=999-', 'bytes=1000-', 'bytes=0-1,5-6', 'bytes=5-2', 'bytes= 1 - 2 ', 'BYTES=1-2', 'items=0-1',
          'bytes=', 'bytes=-', 'bytes=99999999999999999999-', 'bytes=-99999999999999999999', 'bytes=1-2-3', 'bytes=a-b', '',
        ),
        fc.string({ maxLength: 20 }),
      ),
    )
    const request = fc.record({
      id: fc.oneof(
        { arbitrary: fc.constant(0).map(() => String(upload.id)), weight: 6 },
        { arbitrary: idSegment(() => upload.id), weight: 2 },
        { arbitrary: fc.constant(0).map(() => String(peerUploadId)), weight: 1 },
      ),
      bearer: fc.option(token(), { freq: 2 }),
      queryToken: fc.option(fc.oneof({ arbitrary: token(), weight: 4 }, { arbitrary: fc.constantFrom(OVERLONG, '%ZZ'), weight: 1 }), { freq: 2 }),
      range,
      etag: fc.option(fc.constantFrom(`"${upload.sha256}"`, `W/"${upload.sha256}"`, `"x", "${upload.sha256}"`, upload.sha256, '*', '"x"'), { freq: 4 }),
    })
    await fc.assert(
      fc.asyncProperty(request, async ({ id, bearer, queryToken, range, etag }) => {
        const path = `/uploads/${id}${queryToken === null ? '' : `?access_token=${queryToken.startsWith('%') ? queryToken : encode(queryToken)}`}`
        const res = await fetch(`http://${target.base}${path}`, {
          headers: {
            ...(bearer === null ? {} : { authorization: `Bearer ${bearer}` }),
            ...(range === null ? {} : { range }),
            ...(etag === null ? {} : { 'if-none-match': etag }),
          },
        })
        const body = new Uint8Array(await res.arrayBuffer())
        const label = `GET ${path.slice(0, 200)} bearer=${bearer?.slice(0, 12)} range=${range} etag=${etag} → ${res.status} ${JSON.stringify([...res.headers])}`
        const size = upload.bytes.length
        if (res.status === 416) {
          // Range Not Satisfiable answers the byte range, as HTTP says, not with an error body.
          expect(range, label).not.toBeNull()
          expect(res.headers.get('content-range'), label).toBe(`bytes */${size}`)
          return
        }
        // Not modified: the tag, weakly compared, in a list, or `*` (RFC 9110).
        if (res.status === 304) return void expect([`"${upload.sha256}"`, `W/"${upload.sha256}"`, `"x", "${upload.sha256}"`, '*'], label).toContain(etag ?? '')
        expectContractAnswer(label, res.status, res.headers.get('content-type'), new TextDecoder().decode(body))
        if (res.status !== 200 && res.status !== 206) {
          // Only someone else's upload or a bad token goes unanswered with the bytes.
          const authorized =
            bearer === null ? queryToken === me.token : bearer === me.token && queryToken !== OVERLONG && queryToken !== '%ZZ'
          if (authorized && id === String(upload.id)) throw new Error(`the uploader was refused: ${label}`)
          return
        }
        expect(id, label).toBe(String(upload.id))
        expect(res.headers.get('x-content-type-options'), label).toBe('nosniff')
        expect(res.headers.get('etag'), label).toBe(`"${upload.sha256}"`)
        if (res.status === 200) return void expect(sha256(body), label).toBe(upload.sha256)
        const [, start, end, total] = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(res.headers.get('content-range') ?? '') ?? []
        expect(Number(total), label).toBe(size)
        expect(Number(start) <= Number(end) && Number(end) < size, label).toBe(true)
        expect(Buffer.from(body).equals(Buffer.from(upload.bytes.subarray(Number(start), Number(end) + 1))), label).toBe(true)
      }),
      { numRuns: RUNS },
    )
  }, 60_000)

  test('afterwards: the process lives, logged no fault, and the bystanders got every send (201) and every message:new', async () => {
    await target.expectAlive()
    await bystanders.expectAllDelivered()
  })
})
