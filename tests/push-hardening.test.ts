import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { generateVAPIDKeys } from 'web-push'
import { createTestApp, type Session } from './support/app'
import { dialects } from './support/databases'
import { Browser, LocalPushService } from './support/push-service'
import { startLive, type LiveServer } from './support/ws'

/*
 * Web Push against what a security review found: a retried push carried the text of a message deleted
 * meanwhile, and production took endpoints on the server's own network.
 */

describe.each(dialects)('Web Push after a message changes, on %s', (dialect) => {
  let live: LiveServer
  let service: LocalPushService
  beforeAll(async () => {
    service = new LocalPushService()
    live = await startLive(dialect)
  }, 20_000)
  afterAll(async () => {
    await live.close()
    service.stop()
  })
  const call = (method: string, path: string, token?: string, body?: unknown) => live.t.call(method, path, { token, body })
  const subscribe = (session: Session, browser: Browser) => call('POST', '/push/subscriptions', session.access_token, browser.subscription())

  test('a push waiting for its retry is dropped once its message is deleted for everyone; an edit is pushed as its new text', async () => {
    const { a: alice, b: bob, dialogId } = await live.t.pair()
    const browser = new Browser(service)
    // The push service is busy a moment (as FCM/Mozilla are under load): 503, try again in 1 s.
    service.plan(browser.name, { status: 503, retryAfter: '1' })
    expect((await subscribe(bob, browser)).status).toBe(201)

    const sent = await call('POST', `/dialogs/${dialogId}/messages`, alice.access_token, {
      client_msg_id: 'oops',
      type: 'text',
      text: 'the vault code is 4471-9902',
    })
    expect(sent.status).toBe(201)
    await service.waitFor(browser.name, 1)
    // Alice notices at once and deletes it for everyone: history, search and every event say it is gone.
    expect((await call('DELETE', `/dialogs/${dialogId}/messages/${sent.body.id}`, alice.access_token)).status).toBe(204)
    const history = await call('GET', `/dialogs/${dialogId}/messages`, bob.access_token)
    expect(history.body.messages[0]).toMatchObject({ id: sent.body.id, deleted: true, text: '' })

    // The retry comes up ~1 s later. Whatever it does, it must not hand bob's browser the deleted text.
    await Bun.sleep(2_500)
    const leaked = service
      .of(browser.name)
      .slice(1)
      .map((r) => browser.decrypt(r.body))
      .filter((p) => p.message_id === sent.body.id && p.preview !== '')
    expect(leaked).toEqual([])

    // Edited while the push waits: the retry carries the new text, not the old.
    service.plan(browser.name, { status: 503, retryAfter: '1' })
    const before = service.of(browser.name).length
    const second = await call('POST', `/dialogs/${dialogId}/messages`, alice.access_token, { client_msg_id: 'typo', type: 'text', text: 'see you at 9' })
    await service.waitFor(browser.name, before + 1)
    expect((await call('PATCH', `/dialogs/${dialogId}/messages/${second.body.id}`, alice.access_token, { text: 'see you at 10' })).status).toBe(200)
    await service.waitFor(browser.name, before + 2)
    const retried = browser.decrypt(service.of(browser.name)[before + 1]!.body)
    expect(retried).toMatchObject({ message_id: second.body.id, preview: 'see you at 10' })
  }, 20_000)
})

/** Only for a Browser's keys: no server. */
class LocalPushServiceStub {
  origin = 'https://push.example'
}

describe('push endpoints the server itself will POST to (production)', () => {
  // Any user could make the server POST (host, port and path of their choosing, retried for up to a day) to
  // its own network, and learn from the answers whether something listens there.
  test('https:// endpoints on loopback, private and link-local addresses are refused in production', async () => {
    const keys = generateVAPIDKeys()
    const t = await createTestApp('sqlite', { NODE_ENV: 'production', VAPID_PUBLIC_KEY: keys.publicKey, VAPID_PRIVATE_KEY: keys.privateKey })
    try {
      const mallory = await t.register()
      const browserKeys = new Browser(new LocalPushServiceStub() as unknown as LocalPushService).subscription().keys
      const answers: Record<string, number> = {}
      for (const endpoint of [
        'https://169.254.169.254/latest/meta-data/iam/security-credentials/',
        'https://127.0.0.1:6443/api/v1/namespaces',
        'https://localhost/admin/shutdown',
        'https://[::1]:8443/internal',
        'https://10.0.0.5/actuator/shutdown',
        'https://192.168.1.1/cgi-bin/reboot',
        // Reserved ranges no push service is in: benchmarking, IETF assignments, documentation, IPv6 site-local
        // and documentation, and 6to4 and NAT64 addresses carrying an internal IPv4 address.
        'https://198.18.0.1/',
        'https://192.0.0.8/',
        'https://192.0.2.10/',
        'https://198.51.100.7/',
        'https://203.0.113.9/',
        'https://[fec0::1]/',
        'https://[2001:db8::1]/',
        'https://[2002:a9fe:a9fe::]/latest/meta-data/',
        'https://[64:ff9b::10.0.0.5]/actuator/shutdown',
      ]) {
        const res = await t.call('POST', '/push/subscriptions', { token: mallory.access_token, body: { endpoint, keys: browserKeys } })
        answers[endpoint] = res.status
      }
      expect(answers).toEqual(Object.fromEntries(Object.keys(answers).map((endpoint) => [endpoint, 422])))
      // `localhost.` is the same name, fully qualified (and `%2e` a dot).
      for (const endpoint of ['https://localhost./x', 'https://api.localhost./x', 'https://localhost%2e/x']) {
        const res = await t.call('POST', '/push/subscriptions', { token: mallory.access_token, body: { endpoint, keys: browserKeys } })
        expect([endpoint, res.status]).toEqual([endpoint, 422])
      }
      // A public push service's endpoint is still taken.
      const fine = await t.call('POST', '/push/subscriptions', { token: mallory.access_token, body: { endpoint: 'https://fcm.googleapis.com/fcm/send/abc', keys: browserKeys } })
      expect(fine.status).toBe(201)
    } finally {
      await t.close()
    }
  }, 20_000)
})
