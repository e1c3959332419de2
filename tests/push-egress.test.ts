import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Server, TCPSocketListener } from 'bun'
import { eq } from 'drizzle-orm'
import { generateVAPIDKeys } from 'web-push'
import { isInternalAddress, isInternalHost } from '../src/push/address'
import { PUBLIC_EGRESS, type Egress } from '../src/push/egress'
import { sendPush, VapidSigner } from '../src/push/sender'
import { liveSubscriptions } from '../src/push/store'
import { exec } from '../src/storage/database'
import { createTestApp } from './support/app'
import { Browser, verifyVapid, type LocalPushService } from './support/push-service'

/*
 * Where the server's pushes may go in production. Any user can register an endpoint, and the server POSTs to
 * it: a host name that resolves into the server's own network (or starts to, after the check: DNS
 * rebinding) must not turn that POST into a request to an internal service.
 */

/** Each range's first and last addresses are internal, the neighbours either side are not. */
const RANGES: [string, Record<string, boolean>][] = [
  ['0.0.0.0/8', { '0.0.0.0': true, '0.255.255.255': true, '1.0.0.0': false }],
  ['10.0.0.0/8', { '9.255.255.255': false, '10.0.0.0': true, '10.255.255.255': true, '11.0.0.0': false }],
  ['100.64.0.0/10', { '100.63.255.255': false, '100.64.0.0': true, '100.127.255.255': true, '100.128.0.0': false }],
  ['127.0.0.0/8', { '126.255.255.255': false, '127.0.0.1': true, '127.255.255.255': true, '128.0.0.0': false }],
  ['169.254.0.0/16', { '169.253.255.255': false, '169.254.0.0': true, '169.254.169.254': true, '169.254.255.255': true, '169.255.0.0': false }],
  ['172.16.0.0/12', { '172.15.255.255': false, '172.16.0.0': true, '172.31.255.255': true, '172.32.0.0': false }],
  ['192.0.0.0/24', { '191.255.255.255': false, '192.0.0.0': true, '192.0.0.255': true, '192.0.1.0': false }],
  ['192.0.2.0/24', { '192.0.1.255': false, '192.0.2.0': true, '192.0.2.255': true, '192.0.3.0': false }],
  ['192.168.0.0/16', { '192.167.255.255': false, '192.168.0.0': true, '192.168.255.255': true, '192.169.0.0': false }],
  ['198.18.0.0/15', { '198.17.255.255': false, '198.18.0.0': true, '198.19.255.255': true, '198.20.0.0': false }],
  ['198.51.100.0/24', { '198.51.99.255': false, '198.51.100.0': true, '198.51.100.255': true, '198.51.101.0': false }],
  ['203.0.113.0/24', { '203.0.112.255': false, '203.0.113.0': true, '203.0.113.255': true, '203.0.114.0': false }],
  ['224.0.0.0/4 and 240.0.0.0/4', { '223.255.255.255': false, '224.0.0.0': true, '239.255.255.255': true, '240.0.0.0': true, '255.255.255.255': true }],
  ['::/8', { '::': true, '::1': true, '::102:304': true, 'ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff': true, '100::': false }],
  ['2001::/32 (Teredo)', { '2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff': false, '2001::': true, '2001:0:4136:e378:8000:63bf:3fff:fdd2': true, '2001:1::': false }],
  ['2001:db8::/32', { '2001:db7:ffff:ffff:ffff:ffff:ffff:ffff': false, '2001:db8::': true, '2001:db8:ffff:ffff:ffff:ffff:ffff:ffff': true, '2001:db9::': false }],
  ['fc00::/7', { 'fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff': false, 'fc00::': true, 'fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff': true, 'fe00::': false }],
  ['fe80::/10', { 'fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff': false, 'fe80::': true, 'febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff': true }],
  // Its neighbours are link-local below and multicast above, both internal.
  ['fec0::/10', { 'fec0::': true, 'fec0::1': true, 'feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff': true }],
  ['ff00::/8', { 'ff00::': true, 'ff02::1': true, 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff': true }],
  // Judged by the IPv4 address inside, in either notation.
  [
    '::ffff:0:0/96',
    { '::ffff:127.0.0.1': true, '::ffff:7f00:1': true, '::ffff:a9fe:a9fe': true, '::ffff:8.8.8.8': false, '::ffff:808:808': false, '::fffe:808:808': true },
  ],
  [
    '64:ff9b::/96',
    // c633:6401 is 198.51.100.1 (documentation).
    { '64:ff9b::a9fe:a9fe': true, '64:ff9b::10.0.0.1': true, '64:ff9b::c633:6401': true, '64:ff9b::808:808': false, '64:ff9b::8.8.8.8': false },
  ],
  // Past the /96, or the local-use prefix 64:ff9b:1::/48: judged as the rest of ::/8.
  ['64:ff9b::/96, just outside', { '64:ff9b::1:808:808': true, '64:ff9b:1::808:808': true }],
  ['2002::/16', { '2002:7f00:1::': true, '2002:a00:1:ffff::1': true, '2002:c000:2ff::': true, '2002:808:808::1': false }],
  ['2002::/16, neighbours', { '2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff': false, '2003::': false }],
  [
    'public, and what is no address',
    { '8.8.8.8': false, '142.250.74.46': false, '2606:4700:4700::1111': false, '2a00:1450:4001:830::200e': false, 'push.example': true, '': true },
  ],
]

describe('internal addresses', () => {
  test.each(RANGES)('%s', (_range, expected) => {
    const actual = Object.fromEntries(Object.keys(expected).map((address) => [address, isInternalAddress(address)]))
    expect(actual).toEqual(expected)
  })

  test('URL hosts: localhost and names under it, bracketed IPv6 literals, the same predicate for addresses', () => {
    const hosts = ['localhost', 'LOCALHOST.', 'api.localhost', '[::1]', '[fec0::1]', '[2002:a9fe:a9fe::]', '198.18.0.1', '[64:ff9b::808:808]', 'fcm.googleapis.com']
    expect(Object.fromEntries(hosts.map((host) => [host, isInternalHost(host)]))).toEqual({
      localhost: true,
      'LOCALHOST.': true,
      'api.localhost': true,
      '[::1]': true,
      '[fec0::1]': true,
      '[2002:a9fe:a9fe::]': true,
      '198.18.0.1': true,
      '[64:ff9b::808:808]': false,
      'fcm.googleapis.com': false,
    })
  })
})

/** A self-signed certificate for `name`, made by openssl. */
function certificateFor(dir: string, name: string): { cert: string; key: string } {
  const [cert, key] = [join(dir, `${name}.pem`), join(dir, `${name}.key`)]
  const run = Bun.spawnSync(
    ['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1'].concat(
      ['-subj', `/CN=${name}`, '-addext', `subjectAltName=DNS:${name}`, '-keyout', key, '-out', cert],
    ),
  )
  if (!run.success) throw new Error(`openssl: ${run.stderr.toString()}`)
  return { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') }
}

describe('pushes in production go to the addresses checked', () => {
  // `.test` names never resolve in DNS: a request that arrives went to the address our lookup gave.
  const NAMES = ['push.test', 'other.test']
  let dir: string
  let ca: string
  let server: Server<undefined>
  const received: { host: string | null; path: string; body: Buffer; authorization: string | null }[] = []
  const vapid = new VapidSigner({ ...generateVAPIDKeys(), subject: 'mailto:ops@example.com' })

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'push-egress-'))
    const certificates = NAMES.map((name) => ({ serverName: name, ...certificateFor(dir, name) }))
    ca = certificates.map((c) => c.cert).join('')
    // A push service on loopback holding a certificate for each name; it picks one by the TLS server name.
    server = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      tls: certificates,
      fetch: async (request) => {
        const url = new URL(request.url)
        received.push({
          host: request.headers.get('host'),
          path: url.pathname + url.search,
          body: Buffer.from(await request.arrayBuffer()),
          authorization: request.headers.get('authorization'),
        })
        return new Response(null, { status: 201 })
      },
    })
  })
  afterAll(() => {
    server.stop(true)
    rmSync(dir, { recursive: true, force: true })
  })

  const origin = (name: string) => `https://${name}:${server.port}`
  const browserAt = (name: string) => new Browser({ origin: origin(name) } as unknown as LocalPushService)
  const push = (browser: Browser, egress: Egress, { endpoint = browser.endpoint, ms = 5_000 } = {}) => {
    const sub = { id: 1, userId: 1, endpoint, ...browser.subscription().keys }
    return sendPush(vapid, sub, JSON.stringify({ hello: browser.name }), 60, AbortSignal.timeout(ms), egress)
  }
  const resolvingTo = (addresses: string[], asked: string[] = []) => async (host: string) => {
    asked.push(host)
    return addresses
  }

  test('a name that resolves to an internal address, alone or beside a public one, is refused: nothing is sent', async () => {
    for (const addresses of [['127.0.0.1'], ['93.184.215.14', '10.1.2.3'], ['2606:4700:4700::1111', 'fd00::2']]) {
      const asked: string[] = []
      // Trusting the test's certificates: were the check skipped, the push to loopback would go through.
      const egress: Egress = { ...PUBLIC_EGRESS, lookup: resolvingTo(addresses, asked), ca }
      expect([addresses, await push(browserAt('push.test'), egress)]).toEqual([addresses, { kind: 'internal' }])
      expect(asked).toEqual(['push.test'])
    }
    expect(received).toEqual([])
  })

  test('the request connects to the checked address, naming the endpoint host in Host, SNI and the certificate check', async () => {
    // Loopback stands in for a public push service here; the policy is tested above.
    const egress: Egress = { lookup: resolvingTo(['127.0.0.1']), refuses: () => false, ca }
    const browser = browserAt('push.test')
    expect(await push(browser, egress, { endpoint: `${browser.endpoint}?route=7` })).toEqual({ kind: 'sent' })
    const [request] = received.splice(0)
    expect(request!.host).toBe(`push.test:${server.port}`)
    expect(request!.path).toBe(`/push/${browser.name}?route=7`)
    expect(browser.decrypt(request!.body)).toEqual({ hello: browser.name })
    expect((await verifyVapid(request!.authorization)).claims.aud).toBe(origin('push.test'))

    // The server picks the certificate by the name we send (SNI)…
    expect(await push(browserAt('other.test'), egress)).toEqual({ kind: 'sent' })
    expect(received.splice(0).map((r) => r.host)).toEqual([`other.test:${server.port}`])
    // …and a certificate for another name is refused, though its issuer is trusted.
    expect(await push(browserAt('wrong.test'), egress)).toEqual({ kind: 'retry', reason: 'network' })
    expect(received).toEqual([])
  })

  test('an address that refuses the connection is passed over for the next one the name has', async () => {
    // The push service listens on 127.0.0.1 only: 127.0.0.2 refuses (as an IPv6 address does on a host without IPv6).
    const both: Egress = { lookup: resolvingTo(['127.0.0.2', '127.0.0.1']), refuses: () => false, ca }
    expect(await push(browserAt('push.test'), both)).toEqual({ kind: 'sent' })
    expect(received.splice(0)).toHaveLength(1)
    const none: Egress = { lookup: resolvingTo(['127.0.0.2']), refuses: () => false, ca }
    expect(await push(browserAt('push.test'), none)).toEqual({ kind: 'retry', reason: 'network' })
  })

  test('a lookup that outlasts the request timeout ends the attempt as a timeout', async () => {
    const stuck: Egress = { ...PUBLIC_EGRESS, lookup: () => new Promise<string[]>(() => {}) }
    const started = Date.now()
    expect(await push(browserAt('push.test'), stuck, { ms: 200 })).toEqual({ kind: 'retry', reason: 'timeout' })
    expect(Date.now() - started).toBeLessThan(2_000)
  })
})

describe('a production server', () => {
  test('deletes a stored subscription whose host the system resolves to loopback, without connecting to it', async () => {
    // Counts TCP connections, so "not connected" means not even a handshake.
    let connections = 0
    const listener: TCPSocketListener = Bun.listen({
      hostname: '127.0.0.1',
      port: 0,
      socket: { open: () => void connections++, data: () => {} },
    })
    const keys = generateVAPIDKeys()
    const t = await createTestApp('sqlite', { NODE_ENV: 'production', VAPID_PUBLIC_KEY: keys.publicKey, VAPID_PRIVATE_KEY: keys.privateKey })
    try {
      const { a: alice, b: bob, dialogId } = await t.pair()
      const browser = new Browser({ origin: 'https://push.example.net' } as unknown as LocalPushService)
      expect((await t.call('POST', '/push/subscriptions', { token: bob.access_token, body: browser.subscription() })).status).toBe(201)
      // Stored before the name moved (or before this check): `localhost` passes no literal check at send time,
      // it is resolved by the system, as any name is.
      const endpoint = `https://localhost:${listener.port}/push/${browser.name}`
      await t.db.tx(function* (s) {
        yield* exec(s.db.update(s.t.pushSubscriptions).set({ endpoint }).where(eq(s.t.pushSubscriptions.userId, bob.user.id)))
      })
      const gone = () => Number(/^chat_push_failed_total\{reason="gone"\} (\d+)$/m.exec(t.core.metrics.render())?.[1] ?? 0)
      const before = gone()

      const sent = await t.call('POST', `/dialogs/${dialogId}/messages`, { token: alice.access_token, body: { client_msg_id: 'x', type: 'text', text: 'hi' } })
      expect(sent.status).toBe(201)
      const subs = () => t.db.read((s) => liveSubscriptions(s, [bob.user.id], new Date()))
      for (let i = 0; i < 150 && (await subs()).length > 0; i++) await Bun.sleep(20)
      expect(await subs()).toEqual([])
      expect(gone() - before).toBe(1)
      expect(connections).toBe(0)
    } finally {
      await t.close()
      listener.stop(true)
    }
  }, 20_000)
})
