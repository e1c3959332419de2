import { afterAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { io } from 'socket.io-client'
import { clientAddress, parseTrustProxy } from '../src/http/trust-proxy'
import { createTestApp } from './support/app'
import { freshDatabase, pgAvailable } from './support/databases'
import { eventually, serveCli, type Served } from './support/cli'
import { sendingPair } from './support/sending-pair'
import { partitionable, servedBehindProxy, partitionableOn } from './support/pg-proxy'
import { connect, databaseUrl, http } from './support/server-process'

setDefaultTimeout(60_000)

const dirs: string[] = []
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })))
const sqliteUrl = () => {
  const dir = mkdtempSync(join(tmpdir(), 'chat-ops-'))
  dirs.push(dir)
  return `sqlite://${join(dir, 'chat.db')}`
}

const logLines = (server: Served) =>
  server
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line))

describe('request and connection logs (JSON lines)', () => {
  test('one line per request with method, route pattern, status, duration, request id; the token in the query never appears', async () => {
    const server = await serveCli({ DATABASE_URL: sqliteUrl(), LOG_FORMAT: 'json' })
    try {
      const secret = 'eyJhbGciOiJIUzI1NiJ9.SECRET-TOKEN-VALUE.sig'
      const res = await fetch(`http://${server.base}/dialogs/42/messages?access_token=${secret}&limit=5`, {
        headers: { 'x-request-id': 'req-abc.123' },
      })
      expect(res.status).toBe(401)
      expect(res.headers.get('x-request-id')).toBe('req-abc.123')
      const generated = await fetch(`http://${server.base}/health/live`)
      const id = generated.headers.get('x-request-id')
      expect(id).toMatch(/^[0-9a-f-]{36}$/)
      // A client id that is not a plain token is replaced, not echoed.
      const odd = await fetch(`http://${server.base}/health/live`, { headers: { 'x-request-id': 'a b<script>' } })
      expect(odd.headers.get('x-request-id')).not.toBe('a b<script>')

      const registered = await http(server.base, 'POST', '/auth/register', { username: 'logger', password: 'a-secret-password' })
      const ws = await connect(server.base, registered.body.access_token, () => {})
      ws.send(JSON.stringify({ type: 'ping' }))
      ws.close(1000, 'bye')
      // A token in a WebSocket URL is not logged either.
      const viaQuery = new WebSocket(`ws://${server.base}/ws?access_token=${registered.body.access_token}`)
      await new Promise((resolve) => (viaQuery.onmessage = resolve))
      viaQuery.close()

      await eventually(() => logLines(server).filter((l) => l.msg === 'ws close').length === 2, 'the ws close lines')
      const lines = logLines(server)
      const line = lines.find((l) => l.request_id === 'req-abc.123')
      expect(line).toMatchObject({ level: 'info', msg: 'http', method: 'GET', route: '/dialogs/:dialog_id/messages', status: 401, client: '127.0.0.1' })
      expect(typeof line.ms).toBe('number')
      expect(typeof line.time).toBe('string')
      expect(lines.find((l) => l.request_id === id)).toMatchObject({ route: '/health/live', status: 200 })
      expect(lines.find((l) => l.msg === 'ws open')).toBeDefined()
      expect(lines.find((l) => l.msg === 'ws close')).toMatchObject({ user_id: registered.body.user.id, code: 1000, reason: 'bye' })

      const everything = server.output()
      for (const hidden of [secret, 'SECRET-TOKEN-VALUE', registered.body.access_token, registered.body.refresh_token, 'a-secret-password'])
        expect(everything).not.toContain(hidden)
    } finally {
      await server.stop()
    }
  })

  test('Socket.IO sessions log one open and one close line each, over long-polling or a WebSocket (upgrade probes included); frames out are counted by type', async () => {
    const server = await serveCli({ DATABASE_URL: sqliteUrl(), LOG_FORMAT: 'json' })
    try {
      const registered = await http(server.base, 'POST', '/auth/register', { username: 'sio-logger', password: 'a-secret-password' })
      const token = registered.body.access_token
      for (const transports of [['polling'], ['polling', 'websocket'], ['websocket']]) {
        const socket = io(`http://${server.base}`, { transports, auth: { access_token: token }, reconnection: false, forceNew: true })
        await new Promise((resolve) => socket.once('auth:ok', resolve))
        expect(await socket.timeout(3_000).emitWithAck('ping')).toEqual({})
        socket.close()
      }
      const sio = () => logLines(server).filter((l) => l.wire === 'socket.io')
      await eventually(() => sio().filter((l) => l.msg === 'ws close').length === 3, 'the socket.io close lines')
      expect(sio().filter((l) => l.msg === 'ws open')).toHaveLength(3)
      for (const line of sio().filter((l) => l.msg === 'ws open')) expect(line).toMatchObject({ client: '127.0.0.1' })
      for (const line of sio().filter((l) => l.msg === 'ws close')) expect(line).toMatchObject({ user_id: registered.body.user.id, ms: expect.any(Number) })
      // Their Bun sockets (the WebSocket transports, the upgrade's probe) are not logged besides.
      expect(logLines(server).filter((l) => l.msg === 'ws open' && l.wire === undefined)).toHaveLength(0)
      expect(server.output()).not.toContain(token)
      const metrics = await (await fetch(`http://${server.base}/metrics`)).text()
      expect(metrics).toContain('chat_ws_frames_out_total{type="auth:ok"} 3')
      expect(metrics).toContain('chat_ws_frames_out_total{type="pong"} 3')
    } finally {
      await server.stop()
    }
  })

  test('what the server answers outside the app (the web app, WebSocket upgrades, Socket.IO) gets the same line, latency and echoed id; no token or sid in them', async () => {
    const server = await serveCli({ DATABASE_URL: sqliteUrl(), LOG_FORMAT: 'json' })
    try {
      const base = `http://${server.base}`
      const secret = 'SECRET-QUERY-TOKEN'
      const page = await fetch(`${base}/?access_token=${secret}`, { headers: { 'x-request-id': 'web-page' } })
      expect(page.status).toBe(200)
      expect(page.headers.get('x-request-id')).toBe('web-page')
      const script = /<script[^>]+src="([^"]+)"/.exec(await page.text())![1]!
      const asset = await fetch(`${base}${script}?token=${secret}`, { headers: { 'x-request-id': 'web-asset' } })
      expect(asset.status).toBe(200)
      expect(asset.headers.get('x-request-id')).toBe('web-asset')
      expect(await asset.text()).toContain('message:send')
      const cached = await fetch(`${base}${script}`, { headers: { 'if-none-match': asset.headers.get('etag')!, 'x-request-id': 'web-304' } })
      expect(cached.status).toBe(304)

      const registered = await http(server.base, 'POST', '/auth/register', { username: 'outside', password: 'a-secret-password' })
      const token = registered.body.access_token
      // The 101 of an upgrade carries the id too.
      expect(await upgradeHead(server.base, `/ws?access_token=${token}&token=${secret}`, 'ws-upgrade')).toMatch(/^HTTP\/1\.1 101[^]*\r\nx-request-id: ws-upgrade\r\n/i)

      const sio = `${base}/socket.io/?EIO=4&transport=polling`
      const handshake = await fetch(`${sio}&access_token=${secret}`, { headers: { 'x-request-id': 'sio-open' } })
      expect(handshake.headers.get('x-request-id')).toBe('sio-open')
      const sid = JSON.parse((await handshake.text()).slice(1)).sid as string
      // A long-poll waits for packets: its line comes when it ends.
      const poll = fetch(`${sio}&sid=${sid}`, { headers: { 'x-request-id': 'sio-poll' } })
      await Bun.sleep(300)
      expect(logLines(server).some((l) => l.request_id === 'sio-poll')).toBe(false)
      const post = await fetch(`${sio}&sid=${sid}`, { method: 'POST', body: `40${JSON.stringify({ access_token: token })}`, headers: { 'x-request-id': 'sio-post' } })
      expect(post.headers.get('x-request-id')).toBe('sio-post')
      const polled = await poll
      expect(polled.headers.get('x-request-id')).toBe('sio-poll')
      expect(await polled.text()).toStartWith('40')
      expect(await upgradeHead(server.base, `/socket.io/?EIO=4&transport=websocket&token=${secret}`, 'sio-ws')).toMatch(/^HTTP\/1\.1 101[^]*\r\nx-request-id: sio-ws\r\n/i)

      const expected = {
        'web-page': { route: '/', status: 200 },
        'web-asset': { route: '/:asset', status: 200 },
        'web-304': { route: '/:asset', status: 304 },
        'ws-upgrade': { route: '/ws', status: 101 },
        'sio-open': { route: '/socket.io/', status: 200 },
        'sio-post': { route: '/socket.io/', status: 200 },
        'sio-poll': { route: '/socket.io/', status: 200 },
        'sio-ws': { route: '/socket.io/', status: 101 },
      }
      const lineOf = (id: string) => logLines(server).find((l) => l.request_id === id)
      await eventually(() => Object.keys(expected).every(lineOf), 'a line for each request')
      for (const [id, fields] of Object.entries(expected))
        expect(lineOf(id)).toMatchObject({ level: 'info', msg: 'http', method: 'GET', client: '127.0.0.1', ms: expect.any(Number), ...fields, ...(id === 'sio-post' && { method: 'POST' }) })
      expect(lineOf('sio-poll').ms).toBeGreaterThanOrEqual(300)
      expect(logLines(server).find((l) => l.msg === 'ws open' && l.wire === undefined)).toMatchObject({ client: '127.0.0.1' })

      const metrics = await (await fetch(`${base}/metrics`)).text()
      for (const route of ['/', '/:asset', '/ws', '/socket.io/']) expect(metrics).toContain(`chat_http_request_duration_seconds_count{route="${route}"}`)
      // Counted by status as well, whoever answered (the app's routes and the server's own alike).
      for (const series of ['route="/",status="200"', 'route="/ws",status="101"', 'route="/socket.io/",status="101"', 'route="/socket.io/",status="200"'])
        expect(metrics).toContain(`chat_http_requests_total{${series}}`)
      const everything = server.output()
      for (const hidden of [secret, token, sid]) expect(everything).not.toContain(hidden)
    } finally {
      await server.stop()
    }
  })

  test('LOG_HTTP_SAMPLE=0 drops successful request lines but keeps errors', async () => {
    const server = await serveCli({ DATABASE_URL: sqliteUrl(), LOG_FORMAT: 'json', LOG_HTTP_SAMPLE: '0' })
    try {
      await fetch(`http://${server.base}/health/live`, { headers: { 'x-request-id': 'ok-1' } })
      await fetch(`http://${server.base}/`, { headers: { 'x-request-id': 'ok-web' } })
      await fetch(`http://${server.base}/me`, { headers: { 'x-request-id': 'err-1' } })
      // Outside the app alike: an Engine.IO version we do not speak is a 400.
      await fetch(`http://${server.base}/socket.io/?EIO=3&transport=polling`, { headers: { 'x-request-id': 'err-sio' } })
      await eventually(() => ['err-1', 'err-sio'].every((id) => logLines(server).some((l) => l.request_id === id)), 'the error lines')
      expect(logLines(server).find((l) => l.request_id === 'err-sio')).toMatchObject({ route: '/socket.io/', status: 400 })
      expect(logLines(server).some((l) => l.request_id === 'ok-1' || l.request_id === 'ok-web')).toBe(false)
      // Unlogged requests are still measured.
      expect(await (await fetch(`http://${server.base}/metrics`)).text()).toContain('chat_http_request_duration_seconds_count{route="/"} 1')
    } finally {
      await server.stop()
    }
  })
})


/** The head of the answer to a WebSocket handshake written by hand (a WebSocket client does not show it). */
async function upgradeHead(base: string, path: string, requestId: string): Promise<string> {
  const [hostname, port] = base.split(':')
  const head = Promise.withResolvers<string>()
  let got = ''
  const socket = await Bun.connect({
    hostname: hostname!,
    port: Number(port),
    socket: {
      data(_socket, data) {
        got += data.toString('latin1')
        if (got.includes('\r\n\r\n')) head.resolve(got.slice(0, got.indexOf('\r\n\r\n') + 2))
      },
      close: () => head.resolve(got),
      error: () => head.resolve(got),
    },
  })
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: ${base}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Request-Id: ${requestId}\r\n\r\n`,
  )
  const text = await head.promise
  socket.end()
  return text
}

/** Three failed logins, each claiming another client address in X-Forwarded-For: their statuses. */
async function loginsFromThreeClaimedAddresses(base: string): Promise<number[]> {
  const statuses = []
  for (let i = 0; i < 3; i++) {
    const res = await fetch(`http://${base}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': `198.51.100.${i}` },
      body: JSON.stringify({ username: 'nobody', password: 'whatever-1' }),
    })
    statuses.push(res.status)
  }
  return statuses
}
describe('TRUST_PROXY', () => {
  const clientOf = async (server: Served, headers: Record<string, string>) => {
    const id = `t-${Math.random().toString(36).slice(2)}`
    await fetch(`http://${server.base}/health/live`, { headers: { ...headers, 'x-request-id': id } })
    await eventually(() => logLines(server).some((l) => l.request_id === id), 'the line')
    return logLines(server).find((l) => l.request_id === id).client
  }

  // The client a WebSocket's `ws open` line names, and its upgrade's request line.
  const socketClientOf = async (server: Served, headers: Record<string, string>) => {
    const id = `w-${Math.random().toString(36).slice(2)}`
    const ws = new WebSocket(`ws://${server.base}/ws`, { headers: { ...headers, 'x-request-id': id } } as unknown as string[])
    await new Promise((resolve, reject) => ((ws.onopen = resolve), (ws.onerror = reject)))
    ws.close()
    await eventually(() => logLines(server).some((l) => l.msg === 'ws close'), 'the ws close line')
    const opens = logLines(server).filter((l) => l.msg === 'ws open')
    expect(opens).toHaveLength(1)
    return { open: opens[0].client, upgrade: logLines(server).find((l) => l.request_id === id).client }
  }

  test('off (default): spoofed X-Forwarded-For and Forwarded are ignored, for logs and the auth rate limit', async () => {
    const server = await serveCli({ DATABASE_URL: sqliteUrl(), LOG_FORMAT: 'json', AUTH_RATE_BURST: '2', AUTH_RATE_PER_SEC: '0.001' })
    try {
      expect(await clientOf(server, { 'x-forwarded-for': '203.0.113.7' })).toBe('127.0.0.1')
      expect(await clientOf(server, { forwarded: 'for=203.0.113.8' })).toBe('127.0.0.1')
      expect(await socketClientOf(server, { 'x-forwarded-for': '203.0.113.7' })).toEqual({ open: '127.0.0.1', upgrade: '127.0.0.1' })
      // Every attempt shares the peer's bucket, whatever the header claims.
      const statuses = await loginsFromThreeClaimedAddresses(server.base)
      expect(statuses).toEqual([401, 401, 429])
    } finally {
      await server.stop()
    }
  })

  test('trusting the loopback proxy: the forwarded client is used, and gets its own rate-limit bucket', async () => {
    const server = await serveCli({
      DATABASE_URL: sqliteUrl(),
      LOG_FORMAT: 'json',
      TRUST_PROXY: 'loopback',
      AUTH_RATE_BURST: '2',
      AUTH_RATE_PER_SEC: '0.001',
    })
    try {
      expect(await clientOf(server, { 'x-forwarded-for': '203.0.113.7' })).toBe('203.0.113.7')
      // Forwarded is not the header this proxy sets (TRUST_PROXY_HEADER): a client's own, never read.
      expect(await clientOf(server, { forwarded: 'for="[2001:db8::1]:4711"' })).toBe('127.0.0.1')
      // The client wrote its own header before the proxy appended the real address: only the real one counts.
      expect(await clientOf(server, { 'x-forwarded-for': '6.6.6.6, 203.0.113.9' })).toBe('203.0.113.9')
      // A WebSocket's open line names the client as its upgrade's request line does, not the proxy.
      expect(await socketClientOf(server, { 'x-forwarded-for': '6.6.6.6, 203.0.113.9' })).toEqual({ open: '203.0.113.9', upgrade: '203.0.113.9' })
      const statuses = await loginsFromThreeClaimedAddresses(server.base)
      expect(statuses).toEqual([401, 401, 401])
    } finally {
      await server.stop()
    }
  })

  test('an untrusted peer (trusted range elsewhere) cannot spoof', async () => {
    const server = await serveCli({ DATABASE_URL: sqliteUrl(), LOG_FORMAT: 'json', TRUST_PROXY: '10.0.0.0/8' })
    try {
      expect(await clientOf(server, { 'x-forwarded-for': '203.0.113.7' })).toBe('127.0.0.1')
    } finally {
      await server.stop()
    }
  })
})

describe('TRUST_PROXY resolution', () => {
  const h = (init: Record<string, string>) => new Headers(init)
  test('hop count trusts that many nearest proxies', () => {
    const two = parseTrustProxy('2')
    expect(clientAddress(two, '10.0.0.1', h({ 'x-forwarded-for': '1.1.1.1, 2.2.2.2, 10.0.0.2' }))).toBe('2.2.2.2')
    expect(clientAddress(parseTrustProxy('1'), '10.0.0.1', h({ 'x-forwarded-for': '1.1.1.1, 2.2.2.2' }))).toBe('2.2.2.2')
  })
  test('a list walks past trusted proxies only; CIDRs in v4 and v6; garbage ends the walk', () => {
    const list = parseTrustProxy('10.0.0.0/8, fd00::/8')
    expect(clientAddress(list, '10.1.2.3', h({ 'x-forwarded-for': '9.9.9.9, 5.5.5.5, 10.9.9.9' }))).toBe('5.5.5.5')
    expect(clientAddress(list, 'fd00::5', h({ 'x-forwarded-for': '5.5.5.5' }))).toBe('5.5.5.5')
    expect(clientAddress(list, '11.0.0.1', h({ 'x-forwarded-for': '5.5.5.5' }))).toBe('11.0.0.1')
    expect(clientAddress(list, '10.0.0.1', h({ 'x-forwarded-for': 'not-an-ip' }))).toBe('10.0.0.1')
    const standard = parseTrustProxy('10.0.0.0/8, fd00::/8', 'forwarded')
    expect(clientAddress(standard, '::ffff:10.0.0.1', h({ forwarded: 'for=192.0.2.60;proto=http, for=10.0.0.7' }))).toBe('192.0.2.60')
  })
  test('only the header the proxies set is read: the other one is the client\'s own, passed through', () => {
    // A proxy setting X-Forwarded-For (nginx, as docs/deploy.md has it) passes a client's Forwarded on untouched:
    // read, each request could name a new address, and the auth limit would never apply.
    const xff = parseTrustProxy('loopback')
    const spoofed = h({ 'x-forwarded-for': '203.0.113.9', forwarded: 'for=198.51.100.1' })
    expect(clientAddress(xff, '127.0.0.1', spoofed)).toBe('203.0.113.9')
    expect(clientAddress(xff, '127.0.0.1', h({ forwarded: 'for=198.51.100.1' }))).toBe('127.0.0.1')
    const standard = parseTrustProxy('loopback', 'Forwarded')
    expect(clientAddress(standard, '127.0.0.1', spoofed)).toBe('198.51.100.1')
    expect(clientAddress(standard, '127.0.0.1', h({ 'x-forwarded-for': '203.0.113.9' }))).toBe('127.0.0.1')
  })
  test('a bad value names TRUST_PROXY, or TRUST_PROXY_HEADER', () => {
    expect(() => parseTrustProxy('10.0.0.0/33')).toThrow('TRUST_PROXY')
    expect(() => parseTrustProxy('loopback', 'x-real-ip')).toThrow('TRUST_PROXY_HEADER')
    expect(() => parseTrustProxy('off', 'x-real-ip')).toThrow('TRUST_PROXY_HEADER')
  })
})

describe('health and metrics', () => {
  test('/health/live, /health/ready and /health; metrics carry latency histograms, frames out, process metrics', async () => {
    const server = await serveCli({ DATABASE_URL: sqliteUrl() })
    try {
      expect(await http(server.base, 'GET', '/health/live')).toEqual({ status: 200, body: { status: 'ok' } })
      expect(await http(server.base, 'GET', '/health/ready')).toEqual({ status: 200, body: { status: 'ok' } })
      expect(await http(server.base, 'GET', '/health')).toEqual({ status: 200, body: { status: 'ok' } })
      const registered = await http(server.base, 'POST', '/auth/register', { username: 'metric', password: 'a-secret-password' })
      const ws = await connect(server.base, registered.body.access_token, () => {})
      ws.close()
      await Bun.sleep(250)
      const text = await (await fetch(`http://${server.base}/metrics`)).text()
      for (const needle of [
        'chat_http_request_duration_seconds_bucket{route="/auth/register",le="0.5"}',
        'chat_ws_frames_out_total{type="auth:ok"} 1',
        'chat_writer_commit_seconds_count',
        'chat_cluster_forward_lag_seconds_count',
        'chat_event_loop_lag_seconds_count',
        'process_cpu_seconds_total',
        'process_resident_memory_bytes',
        'process_open_fds',
        'process_start_time_seconds',
        'nodejs_heap_size_total_bytes',
        'nodejs_external_memory_bytes',
      ])
        expect(text).toContain(needle)
      expect(Number(/process_open_fds (\d+)/.exec(text)?.[1])).toBeGreaterThan(2)
      const heapUsed = Number(/^nodejs_heap_size_used_bytes (\d+)$/m.exec(text)?.[1])
      const rss = Number(/^process_resident_memory_bytes (\d+)$/m.exec(text)?.[1])
      // A running server holds megabytes of JavaScript, and less than its whole resident memory.
      expect(heapUsed).toBeGreaterThan(1024 * 1024)
      expect(heapUsed).toBeLessThan(rss)
    } finally {
      await server.stop()
    }
  })
})


describe.skipIf(!pgAvailable)('sends while Postgres cannot be reached', () => {
  test('every send of a burst gets its error within seconds (not one slow failure after another), and sends work again once it is back', async () => {
    const fresh = await freshDatabase('pg')
    const url = new URL(databaseUrl(fresh.target))
    let proxy = partitionable(Number(url.port || 5432))
    const port = proxy.port
    url.port = String(port)
    const server = await serveCli({ DATABASE_URL: url.toString() })
    try {
      const { answers, ws, send } = await sendingPair(server.base, 'down')
      send('before')
      await eventually(() => answers.get('before') === 'ack', 'the first ack')
      // Postgres goes away: its connections cut, new ones refused.
      proxy.stop()
      const burst = Array.from({ length: 20 }, (_, i) => `down-${i}`)
      for (const id of burst) send(id)
      // Each is answered (an error: none can commit), all within seconds, not minutes.
      await eventually(() => burst.every((id) => answers.has(id)), 'an answer to every send of the burst', 15_000)
      expect(burst.filter((id) => answers.get(id) === 'ack')).toEqual([])
      // Back on the same port: sends commit again.
      proxy = partitionableOn(port, Number(new URL(databaseUrl(fresh.target)).port || 5432))
      await eventually(async () => {
        send(`after-${answers.size}`)
        await Bun.sleep(300)
        return [...answers].some(([id, answer]) => id.startsWith('after-') && answer === 'ack')
      }, 'a send acknowledged again', 20_000)
      ws.close()
    } finally {
      server.proc.kill('SIGKILL')
      await server.proc.exited
      proxy.stop()
      await fresh.drop()
    }
  }, 60_000)
})

describe.skipIf(!pgAvailable)('health while Postgres is partitioned', () => {
  test('a database that holds its connections and answers nothing: /health answers 503 naming it, within seconds', async () => {
    const { proxy, server, close } = await servedBehindProxy()
    try {
      expect(await http(server.base, 'GET', '/health')).toEqual({ status: 200, body: { status: 'ok' } })
      proxy.silence()
      // A load balancer gives up after a few seconds: the answer must come before that, and say why.
      const res = await fetch(`http://${server.base}/health`, { signal: AbortSignal.timeout(6_000) })
      expect(res.status).toBe(503)
      expect(((await res.json()) as { checks: unknown }).checks).toMatchObject({ database: false, migrations: false, accepting: true })
      expect((await fetch(`http://${server.base}/health/live`)).status).toBe(200)
    } finally {
      await close()
    }
  })
})

describe.skipIf(!pgAvailable)('sends while open connections to Postgres go silent', () => {
  test('the silent connections are dropped after PG_STALL_TIMEOUT_MS and the sends waiting on them commit, each once', async () => {
    const { proxy, server, close } = await servedBehindProxy({ PG_STALL_TIMEOUT_MS: '1000' })
    try {
      const { a, dialog, answers, ws, send } = await sendingPair(server.base, 'stall')
      const acked = (id: string) => answers.get(id) === 'ack'
      send('before')
      await eventually(() => acked('before'), 'the first ack')
      proxy.silenceOpen()
      const burst = Array.from({ length: 10 }, (_, i) => `stalled-${i}`)
      for (const id of burst) send(id)
      // Without a deadline they wait for as long as the kernel keeps the dead connections: hours.
      await eventually(() => burst.every(acked), 'every send of the burst acknowledged', 15_000)
      const history = await http(server.base, 'GET', `/dialogs/${dialog.id}/messages?limit=100`, undefined, a.access_token)
      expect(history.body.messages.map((m: { client_msg_id: string }) => m.client_msg_id).sort()).toEqual(['before', ...burst].sort())
      expect(server.output()).toContain('Postgres answered nothing')
      ws.close()
    } finally {
      await close()
    }
  }, 60_000)

  test('while the database answers nothing, sends past WRITER_QUEUE_MAX are refused rate_limited at once, with a retry_after', async () => {
    const { proxy, server, close } = await servedBehindProxy({ WRITER_QUEUE_MAX: '5', WRITER_BATCH_MAX: '2' })
    try {
      const a = (await http(server.base, 'POST', '/auth/register', { username: 'full-a', password: 'a-secret-password' })).body
      const b = (await http(server.base, 'POST', '/auth/register', { username: 'full-b', password: 'a-secret-password' })).body
      const dialog = (await http(server.base, 'POST', '/dialogs', { peer_user_id: b.user.id }, a.access_token)).body
      const errors = new Map<string, { code: string; retry_after?: number }>()
      const ws = await connect(server.base, a.access_token, (frame) => {
        if (frame.type === 'error' && frame.client_msg_id) errors.set(frame.client_msg_id, frame)
      })
      proxy.silence()
      // One batch in flight (one or two sends: a dialog's next batch waits for it), five waiting, the rest refused.
      const ids = Array.from({ length: 15 }, (_, i) => `queued-${i}`)
      for (const id of ids) ws.send(JSON.stringify({ type: 'message:send', dialog_id: dialog.id, client_msg_id: id, msg_type: 'text', text: id }))
      await eventually(() => errors.size >= 15 - 2 - 5, 'the sends past the queue refused', 5_000)
      await Bun.sleep(300)
      expect(errors.size).toBeLessThanOrEqual(15 - 1 - 5)
      expect([...errors.values()].every((e) => e.code === 'rate_limited' && e.retry_after === 1)).toBe(true)
      // The refused are the last ones sent; the queue kept the first.
      expect([...errors.keys()]).toContain('queued-14')
      expect([...errors.keys()]).not.toContain('queued-0')
      ws.close()
    } finally {
      await close()
    }
  }, 60_000)
})

describe('the example Grafana dashboard', () => {
  test('parses, and charts only metrics the server exports', async () => {
    const dashboard = JSON.parse(await Bun.file(join(import.meta.dir, '..', 'docs', 'grafana-dashboard.json')).text())
    const t = await createTestApp('sqlite')
    try {
      const exported = new Set([...(await t.call('GET', '/metrics')).body.matchAll(/^# TYPE (\S+) (\w+)/gm)].map((m: RegExpMatchArray) => m[1]))
      const used = new Set<string>()
      for (const panel of dashboard.panels)
        for (const target of panel.targets)
          for (const name of target.expr.match(/\b(chat|process|nodejs)_[a-z_]+/g) ?? []) used.add(name.replace(/_(bucket|sum|count)$/, ''))
      expect(used.size).toBeGreaterThan(10)
      for (const name of used) expect(exported.has(name), name).toBe(true)
    } finally {
      await t.close()
    }
  })
})
