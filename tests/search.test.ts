import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createTestApp, expectContractError, type Session, type TestApp } from './support/app'
import { dialects } from './support/databases'

type Page = { messages: { id: number; text: string; dialog_id: number }[]; has_more: boolean }

describe.each(dialects)('search on %s', (dialect) => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp(dialect)
  })
  afterAll(() => t.close())

  const send = async (s: Session, dialogId: number, text: string) =>
    (await t.call('POST', `/dialogs/${dialogId}/messages`, { token: s.access_token, body: { client_msg_id: crypto.randomUUID(), type: 'text', text } })).body as {
      id: number
    }
  const search = (s: Session, query: Record<string, string | number>) =>
    t.call<Page>('GET', `/search/messages?${new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)]))}`, { token: s.access_token })
  const texts = async (s: Session, q: string, extra: Record<string, string | number> = {}) => {
    const res = await search(s, { q, ...extra })
    expect(res.status).toBe(200)
    return res.body.messages.map((m) => m.text)
  }

  test('words of any script, case-insensitive, each also a prefix, all required; newest first', async () => {
    const { a, b, dialogId } = await t.pair()
    await send(a, dialogId, 'Привет, мир')
    await send(b, dialogId, 'Hello World from Kyiv')
    await send(a, dialogId, 'hello again, ПРИВЕТСТВУЮ')
    await send(b, dialogId, 'nothing here')
    expect(await texts(a, 'прив')).toEqual(['hello again, ПРИВЕТСТВУЮ', 'Привет, мир'])
    expect(await texts(b, 'ПРИВЕТ мир')).toEqual(['Привет, мир'])
    expect(await texts(a, 'HELLO')).toEqual(['hello again, ПРИВЕТСТВУЮ', 'Hello World from Kyiv'])
    expect(await texts(a, 'hel wor')).toEqual(['Hello World from Kyiv'])
    expect(await texts(a, 'hello kyiv again')).toEqual([])
    expect(await texts(a, 'wor', { dialog_id: dialogId })).toEqual(['Hello World from Kyiv'])
  })

  test('operator characters and quotes are words or separators, never syntax: 200, and they find what they say', async () => {
    const { a, dialogId } = await t.pair()
    await send(a, dialogId, 'meet me NEAR the station OR at home')
    await send(a, dialogId, 'it\'s "quoted" text: a&b!')
    for (const q of ['"', '*', ':', '&', '!', "'", '(', ')', '"unclosed', 'a:*', '!x', 'x | y', '-', '^', '\\', '{}', 'NOT', 'AND'])
      expect((await search(a, { q })).status).toBe(200)
    expect(await texts(a, 'NEAR')).toEqual(['meet me NEAR the station OR at home'])
    expect(await texts(a, 'station OR')).toEqual(['meet me NEAR the station OR at home'])
    expect(await texts(a, '"quoted"')).toEqual(['it\'s "quoted" text: a&b!'])
    expect(await texts(a, 'quot* text:')).toEqual(['it\'s "quoted" text: a&b!'])
    expect(await texts(a, 'home & quoted')).toEqual([])
    expect(await texts(a, '"""')).toEqual([])
  })

  test('only the caller\'s dialogs (or the one named, if theirs); paging with before_id and has_more', async () => {
    const { a, b, dialogId } = await t.pair()
    const other = await t.pair()
    const mine = []
    for (let i = 0; i < 5; i++) mine.push(await send(i % 2 ? a : b, dialogId, `zebra number ${i}`))
    await send(other.a, other.dialogId, 'zebra elsewhere')
    const first = await search(a, { q: 'zebra', limit: 2 })
    expect(first.body.messages.map((m) => m.id)).toEqual([mine[4]!.id, mine[3]!.id])
    expect(first.body.has_more).toBe(true)
    const next = await search(a, { q: 'zebra', limit: 2, before_id: mine[3]!.id })
    expect(next.body).toMatchObject({ has_more: true })
    expect(next.body.messages.map((m) => m.id)).toEqual([mine[2]!.id, mine[1]!.id])
    const last = await search(a, { q: 'zebra', limit: 2, before_id: mine[1]!.id })
    expect(last.body).toMatchObject({ has_more: false })
    expect(last.body.messages.map((m) => m.id)).toEqual([mine[0]!.id])
    expect(await texts(other.a, 'zebra')).toEqual(['zebra elsewhere'])
    expectContractError(await search(other.a, { q: 'zebra', dialog_id: dialogId }), 404, 'not_found')
  })

  test('an edit is found by its new text only; a deleted message never', async () => {
    const { a, dialogId } = await t.pair()
    const m = await send(a, dialogId, 'platypus original')
    expect(await texts(a, 'platypus')).toEqual(['platypus original'])
    await t.call('PATCH', `/dialogs/${dialogId}/messages/${m.id}`, { token: a.access_token, body: { text: 'platypus revised' } })
    expect(await texts(a, 'original')).toEqual([])
    expect(await texts(a, 'platypus revi')).toEqual(['platypus revised'])
    await t.call('DELETE', `/dialogs/${dialogId}/messages/${m.id}`, { token: a.access_token })
    expect(await texts(a, 'platypus')).toEqual([])
  })

  test('validation: q 1–200 characters, limit 1–100, ids canonical', async () => {
    const { a } = await t.pair()
    expectContractError(await t.call('GET', '/search/messages', { token: a.access_token }), 422, 'validation_failed', 'q')
    expectContractError(await search(a, { q: '' }), 422, 'validation_failed', 'q')
    expectContractError(await search(a, { q: 'x'.repeat(201) }), 422, 'validation_failed', 'q')
    expectContractError(await search(a, { q: 'x', limit: 0 }), 422, 'validation_failed', 'limit')
    expectContractError(await search(a, { q: 'x', limit: 101 }), 422, 'validation_failed', 'limit')
    expectContractError(await search(a, { q: 'x', before_id: 'abc' }), 422, 'validation_failed', 'before_id')
    expect((await t.call('GET', '/search/messages?q=x')).status).toBe(401)
  })
})
