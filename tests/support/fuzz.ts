import { expect } from 'bun:test'
import fc from 'fast-check'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { uniqueName } from './app'
import { freshDatabase, type Dialect, type FreshDatabase } from './databases'
import { MULTIPART, multipartBody, type Part } from './multipart'
import { connect, startServer, type ServerProcess } from './server-process'

/*
 * Shared by the fuzz suites (tests/fuzz-*.test.ts): a real server process to attack, the contract's answer
 * checks, bystanders whose traffic must come through untouched, and generators of near-miss values.
 */

/** The contract's error codes and their HTTP statuses; `internal` (500) is never an acceptable answer. */
export const CONTRACT_STATUS: Record<string, number> = {
  bad_request: 400,
  unauthorized: 401,
  invalid_credentials: 401,
  /** A member acting on the other member's message (v1.3). */
  forbidden: 403,
  /** A send or a new dialog between two users while either blocks the other (v1.3). */
  blocked: 403,
  not_found: 404,
  username_taken: 409,
  payload_too_large: 413,
  validation_failed: 422,
  rate_limited: 429,
}

/** Runs per property: bounded so each fuzz file stays well under a minute on both dialects. */
export const RUNS = Number(process.env.FUZZ_RUNS ?? 150)

/** A server process (`bun src/index.ts`) on a fresh database; stderr is kept to look for logged faults. */
export interface Target {
  server: ServerProcess
  base: string
  port: number
  stderr(): string
  /** The process is still running and /health answers 200. */
  expectAlive(): Promise<void>
  stop(): Promise<void>
}

export async function startTarget(dialect: Dialect, env: Record<string, string> = {}): Promise<Target> {
  const database: FreshDatabase = await freshDatabase(dialect)
  // Uploads and generated VAPID keys go to a directory of this target's own, not the checkout's ./data.
  const dataDir = mkdtempSync(join(tmpdir(), 'chat-fuzz-'))
  const server = await startServer(database.target, { DATA_DIR: dataDir, ...env })
  let stderr = ''
  void server.proc.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({
      write: (chunk) => {
        stderr += chunk
      },
    }),
  )
  let exitCode: number | undefined
  void server.exited.then((code) => (exitCode = code))
  return {
    server,
    base: server.base,
    port: Number(server.base.split(':')[1]),
    stderr: () => stderr,
    expectAlive: async () => {
      expect(exitCode).toBeUndefined()
      const health = await fetch(`http://${server.base}/health`)
      expect(health.status).toBe(200)
      // A fault the server caught is logged as an "internal error" line: there must be none.
      expect(stderr).not.toContain('internal error')
    },
    stop: async () => {
      server.proc.kill('SIGTERM')
      await server.exited
      await database.drop()
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}

export interface Account {
  token: string
  refresh: string
  userId: number
  username: string
}

export async function register(base: string, password = 'correct horse battery'): Promise<Account> {
  const username = uniqueName('fz')
  const res = await fetch(`http://${base}/auth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  })
  const body = (await res.json()) as { access_token: string; refresh_token: string; user: { id: number } }
  if (res.status !== 201) throw new Error(`register: ${res.status} ${JSON.stringify(body)}`)
  return { token: body.access_token, refresh: body.refresh_token, userId: body.user.id, username }
}

/** A text message sent over REST; its id. */
export async function sendText(base: string, from: Account, dialogId: number, clientMsgId: string, text = clientMsgId): Promise<number> {
  const res = await fetch(`http://${base}/dialogs/${dialogId}/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${from.token}` },
    body: JSON.stringify({ client_msg_id: clientMsgId, type: 'text', text }),
  })
  const body = (await res.json()) as { id: number }
  if (res.status !== 201) throw new Error(`send: ${res.status} ${JSON.stringify(body)}`)
  return body.id
}

/** An upload by `who` (a multipart body of `parts`); its id. */
export async function uploadFile(base: string, who: Account, parts: Part[]): Promise<number> {
  const res = await fetch(`http://${base}/uploads`, {
    method: 'POST',
    headers: { 'content-type': MULTIPART, authorization: `Bearer ${who.token}` },
    body: multipartBody(parts),
  })
  const body = (await res.json()) as { id: number }
  if (res.status !== 201) throw new Error(`upload: ${res.status} ${JSON.stringify(body)}`)
  return body.id
}

export async function openDialog(base: string, from: Account, to: Account): Promise<number> {
  const res = await fetch(`http://${base}/dialogs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${from.token}` },
    body: JSON.stringify({ peer_user_id: to.userId }),
  })
  return ((await res.json()) as { id: number }).id
}

/**
 * Asserts one HTTP answer keeps the contract: 2xx, or an error of the contract's shape whose status matches
 * its code; never 500, never HTML, never a stack trace.
 */
export function expectContractAnswer(label: string, status: number, contentType: string | null, text: string): void {
  const context = `${label} → ${status} ${text.slice(0, 300)}`
  expect(text, context).not.toMatch(/<html|<!doctype|<body/i)
  expect(text, context).not.toMatch(/\n\s+at |\.ts:\d+|node_modules/)
  if (status >= 200 && status < 300) return
  expect(contentType ?? '', context).toStartWith('application/json')
  let body: any
  try {
    body = JSON.parse(text)
  } catch {
    throw new Error(`not JSON: ${context}`)
  }
  expect(Object.keys(body), context).toEqual(['error'])
  expect(CONTRACT_STATUS[body.error.code], context).toBe(status)
  expect(typeof body.error.message, context).toBe('string')
}

/**
 * Users who chat while the fuzzing runs: one sends over REST at a steady pace, the other listens on a
 * WebSocket. Every send must answer 201 and reach the listener as message:new, whatever the fuzz does.
 */
export class Bystanders {
  private readonly statuses: number[] = []
  private readonly sent = new Set<number>()
  private readonly published = new Set<number>()
  private running = true
  private loop: Promise<void> | undefined
  private ws: WebSocket | undefined

  private constructor(
    private readonly base: string,
    private readonly sender: Account,
    private readonly dialogId: number,
  ) {}

  static async start(base: string): Promise<Bystanders> {
    const [sender, listener] = await Promise.all([register(base), register(base)])
    const dialogId = await openDialog(base, sender, listener)
    const bystanders = new Bystanders(base, sender, dialogId)
    bystanders.ws = await connect(base, listener.token, (frame) => {
      if (frame.type === 'message:new') bystanders.published.add(frame.message.id)
    })
    // Several sends in flight, so that they share write batches with whatever the fuzz submits.
    bystanders.loop = Promise.all([0, 1, 2, 3].map((lane) => bystanders.run(lane))).then(() => {})
    return bystanders
  }

  private async run(lane: number): Promise<void> {
    for (let i = 0; this.running; i++) {
      const res = await fetch(`http://${this.base}/dialogs/${this.dialogId}/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${this.sender.token}` },
        body: JSON.stringify({ client_msg_id: `bystander-${lane}-${i}`, type: 'text', text: `message ${i}` }),
      })
      this.statuses.push(res.status)
      const body = (await res.json()) as { id?: number }
      if (typeof body.id === 'number') this.sent.add(body.id)
      await Bun.sleep(2)
    }
  }

  /** Stops sending; every send was 201 and every message reached the listener. */
  async expectAllDelivered(): Promise<void> {
    this.running = false
    await this.loop
    const deadline = Date.now() + 5_000
    while ([...this.sent].some((id) => !this.published.has(id)) && Date.now() < deadline) await Bun.sleep(20)
    this.ws?.close()
    expect(this.statuses.length).toBeGreaterThan(10)
    expect(this.statuses.filter((s) => s !== 201)).toEqual([])
    expect([...this.sent].filter((id) => !this.published.has(id))).toEqual([])
  }
}

/** encodeURIComponent, except that a lone surrogate (which it refuses) is sent as its raw UTF-8-ish bytes. */
export const encode = (value: string) => {
  try {
    return encodeURIComponent(value)
  } catch {
    return '%ED%A0%80'
  }
}

/** The parts of an ISO 8601 date-time with an offset, each ranging a little past its valid values. */
export interface StampParts {
  year: number
  month: number
  day: number
  hour: number
  minute: number
  second: number | null
  fraction: string | null
  /** null: Z; else sign, hours, minutes and spelling (`hh:mm`, `hhmm`, `hh`). */
  offset: { sign: '+' | '-'; hours: number; minutes: number; form: 'colon' | 'basic' | 'hours' } | null
  separator: 'T' | 't' | ' '
  zulu: 'Z' | 'z'
}

const pad = (n: number, width: number) => String(n).padStart(width, '0')

export const stampParts: fc.Arbitrary<StampParts> = fc.record({
  // Half the time at the ends of the range, where an offset can carry an instant out of it.
  year: fc.oneof(fc.constantFrom(0, 1, 9999), fc.integer({ min: 0, max: 9999 })),
  month: fc.integer({ min: 0, max: 13 }),
  day: fc.integer({ min: 0, max: 32 }),
  hour: fc.integer({ min: 0, max: 24 }),
  minute: fc.integer({ min: 0, max: 60 }),
  second: fc.option(fc.integer({ min: 0, max: 60 })),
  fraction: fc.option(fc.stringMatching(/^[0-9]{1,9}$/)),
  offset: fc.option(
    fc.record({
      sign: fc.constantFrom('+' as const, '-' as const),
      hours: fc.integer({ min: 0, max: 24 }),
      minutes: fc.integer({ min: 0, max: 60 }),
      form: fc.constantFrom('colon' as const, 'basic' as const, 'hours' as const),
    }),
  ),
  separator: fc.constantFrom('T' as const, 'T' as const, 't' as const, ' ' as const),
  zulu: fc.constantFrom('Z' as const, 'z' as const),
})

export function formatStamp(p: StampParts): string {
  const time = `${pad(p.hour, 2)}:${pad(p.minute, 2)}${p.second === null ? '' : `:${pad(p.second, 2)}${p.fraction === null ? '' : `.${p.fraction}`}`}`
  const offset =
    p.offset === null
      ? p.zulu
      : `${p.offset.sign}${pad(p.offset.hours, 2)}${p.offset.form === 'hours' ? '' : `${p.offset.form === 'colon' ? ':' : ''}${pad(p.offset.minutes, 2)}`}`
  return `${pad(p.year, 4)}-${pad(p.month, 2)}-${pad(p.day, 2)}${p.separator}${time}${offset}`
}

/** Timestamps across the whole four-digit range with offsets, plus other ISO 8601 spellings and junk. */
export const timestamp: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: stampParts.map(formatStamp), weight: 8 },
  {
    arbitrary: fc.constantFrom(
      '+010000-01-01T00:00:00Z', '-000001-12-31T23:59:59Z', '+002026-11-23T10:15:30Z', '20261123T101530Z', '2026-W47-1T10:15:30Z',
      '2026-327T10:15:30Z', '2026-11-23T10:15:30', '2026-11-23', '2026-11-23T24:00:00Z', '2026-11-23T10:15:60Z', 'now', '',
      '2026-11-23T10:15:30.123456789012345678901234567890Z', '1e3', '9999-12-31T23:59:59.9999999-00:00',
    ),
    weight: 1,
  },
)

/** Values that sit next to valid ones: wrong types, bounds, odd numbers and strings. */
export const nearMissValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    0, -1, 1, 2 ** 31 - 1, 2 ** 31, 2 ** 53, -(2 ** 53), 1.5, 1e308, -0, '1', '01', '+1', '1e3', '0x10', '', ' ', '\u0000',
    'a'.repeat(65), '😀'.repeat(64), '😀'.repeat(65), 'x'.repeat(5000), '\ud800', null, true, false, [], {}, [1], { id: 1 },
    '2026-11-23T10:15:30.123Z', '0000-01-01T00:00:00Z', '9999-12-31T23:59:59-23:59', 'text', 'image', 'start',
  ),
  timestamp,
  fc.integer(),
  fc.double(),
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.jsonValue({ maxDepth: 2 }),
)

/** A near miss for a field: timestamps (`…_at`, `before`) mostly get timestamps across the whole range. */
export const nearMissFor = (key: string): fc.Arbitrary<unknown> =>
  /_at$|^before$/.test(key) ? fc.oneof({ arbitrary: timestamp, weight: 3 }, { arbitrary: nearMissValue, weight: 1 }) : nearMissValue

/** A valid object with one field removed, replaced by a near miss, or an extra (odd) key added. */
export function nearMiss(valid: Record<string, unknown>): fc.Arbitrary<unknown> {
  const keys = Object.keys(valid)
  const extraKey = fc.oneof(fc.constantFrom('__proto__', 'constructor', 'prototype', 'type', 'id', ''), fc.string({ maxLength: 12 }))
  return fc.oneof(
    fc.constant(valid),
    keys.length === 0
      ? fc.constant(valid)
      : fc.constantFrom(...keys).map((k) => Object.fromEntries(Object.entries(valid).filter(([key]) => key !== k))),
    keys.length === 0 ? fc.constant(valid) : fc.constantFrom(...keys).chain((k) => nearMissFor(k).map((v) => ({ ...valid, [k]: v }))),
    // fromEntries defines keys as own properties, so "__proto__" is sent as a key, not a prototype.
    fc.tuple(extraKey, nearMissValue).map(([k, v]) => Object.fromEntries([[k, v], ...Object.entries(valid)])),
  )
}

/** Body text: arbitrary JSON, a near miss of the valid body, or broken JSON text. */
export function bodyText(valid: Record<string, unknown>): fc.Arbitrary<string> {
  const validText = JSON.stringify(valid)
  return fc.oneof(
    { arbitrary: nearMiss(valid).map((v) => JSON.stringify(v) ?? 'null'), weight: 4 },
    { arbitrary: fc.jsonValue().map((v) => JSON.stringify(v) ?? 'null'), weight: 2 },
    { arbitrary: fc.nat(validText.length).map((n) => validText.slice(0, n)), weight: 1 },
    { arbitrary: fc.tuple(fc.nat(validText.length), fc.string({ unit: 'binary', maxLength: 4 })).map(([n, s]) => validText.slice(0, n) + s + validText.slice(n)), weight: 1 },
    { arbitrary: fc.string({ unit: 'binary', maxLength: 40 }), weight: 1 },
  )
}

/**
 * What every fuzz suite attacks: a server, a user with a dialog holding one message from the peer
 * (`messageId`: the caller may react, not edit) and one of the user's own (`ownMessageId`: to edit),
 * bystanders.
 */
export interface Scene {
  target: Target
  me: Account
  peer: Account
  dialogId: number
  messageId: number
  ownMessageId: number
  bystanders: Bystanders
}

export async function startScene(dialect: Dialect, env: Record<string, string> = {}): Promise<Scene> {
  const target = await startTarget(dialect, env)
  const [me, peer] = await Promise.all([register(target.base), register(target.base)])
  const dialogId = await openDialog(target.base, me, peer)
  const messageId = await sendText(target.base, peer, dialogId, 'seed')
  const ownMessageId = await sendText(target.base, me, dialogId, 'own', 'own fuzz привет')
  return { target, me, peer, dialogId, messageId, ownMessageId, bystanders: await Bystanders.start(target.base) }
}
