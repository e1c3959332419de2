import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createTestApp, type TestApp } from './support/app'
import { dialects } from './support/databases'

describe.each(dialects)('smoke on %s', (dialect) => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp(dialect)
  })
  afterAll(() => t.close())

  test('health answers ok once migrations are applied', async () => {
    const res = await t.call('GET', '/health')
    expect(res.status).toBe(200)
    expect(res.body).toEqual({ status: 'ok' })
  })

  test('a message sent by one member is in the other member\'s history', async () => {
    const { a, b, dialogId } = await t.pair()
    const sent = await t.call('POST', `/dialogs/${dialogId}/messages`, {
      token: a.access_token,
      body: { client_msg_id: 'c-1', type: 'text', text: 'hello' },
    })
    expect(sent.status).toBe(201)
    const page = await t.call('GET', `/dialogs/${dialogId}/messages`, { token: b.access_token })
    expect(page.body.messages.map((m: { text: string }) => m.text)).toEqual(['hello'])
  })
})
