import { expect } from 'bun:test'
import { createApp, createCore, type Core } from '../../src/app'
import { loadConfig, type Config } from '../../src/config'
import { openDatabase, type Db } from '../../src/storage/database'
import { freshDatabase, type Dialect, type FreshDatabase } from './databases'

export const TEST_SECRET = 'test-secret-that-is-long-enough-for-production-use'

/** Test configuration: cheap argon2, generous rate limits; `env` overrides any variable. */
export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({
    JWT_SECRET_KEY: TEST_SECRET,
    ARGON2_MEMORY_KIB: '256',
    ARGON2_TIME_COST: '1',
    AUTH_RATE_BURST: '100000',
    SEND_RATE_BURST: '100000',
    ...env,
  })
}

export interface Response<T = any> {
  status: number
  headers: Headers
  body: T
}

export interface Session {
  user: { id: number; username: string; created_at: string }
  access_token: string
  refresh_token: string
}

/** An app on a fresh database of one dialect, driven in-process through `app.handle`. */
export interface TestApp {
  core: Core
  db: Db
  app: ReturnType<typeof createApp>
  call<T = any>(method: string, path: string, options?: { body?: unknown; token?: string; raw?: string; headers?: Record<string, string> }): Promise<Response<T>>
  register(username?: string, password?: string): Promise<Session>
  /** Registers two users and opens their dialog. */
  pair(): Promise<{ a: Session; b: Session; dialogId: number }>
  close(): Promise<void>
}

let counter = 0
export const uniqueName = (prefix = 'user') => `${prefix}${process.pid % 1000}_${++counter}_${Math.random().toString(36).slice(2, 6)}`

/** `shared`: a database other apps use too (several nodes of one cluster); then closing does not drop it. */
export async function createTestApp(dialect: Dialect, env: Record<string, string> = {}, shared?: FreshDatabase): Promise<TestApp> {
  const fresh = shared ?? (await freshDatabase(dialect))
  const config = testConfig(env)
  const db = await openDatabase(fresh.target, { sqliteSynchronous: config.sqliteSynchronous })
  const core = createCore({ ...config, database: fresh.target }, db)
  const app = createApp(core)

  const call: TestApp['call'] = async (method, path, options = {}) => {
    const headers: Record<string, string> = { ...options.headers }
    if (options.body !== undefined || options.raw !== undefined) headers['content-type'] ??= 'application/json'
    if (options.token) headers.authorization = `Bearer ${options.token}`
    const response = await app.handle(
      new Request(`http://localhost${path}`, {
        method,
        headers,
        body: options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body)),
      }),
    )
    const text = await response.text()
    let body: unknown = text
    try {
      body = text ? JSON.parse(text) : undefined
    } catch {}
    return { status: response.status, headers: response.headers, body: body as any }
  }

  const register = async (username = uniqueName(), password = 'correct horse battery') => {
    const response = await call<Session>('POST', '/auth/register', { body: { username, password } })
    if (response.status !== 201) throw new Error(`register ${username}: ${response.status} ${JSON.stringify(response.body)}`)
    return response.body
  }

  return {
    core,
    db,
    app,
    call,
    register,
    pair: async () => {
      const a = await register()
      const b = await register()
      const dialog = await call('POST', '/dialogs', { token: a.access_token, body: { peer_user_id: b.user.id } })
      if (dialog.status !== 201) throw new Error(`open dialog: ${dialog.status}`)
      return { a, b, dialogId: dialog.body.id as number }
    },
    close: async () => {
      await core.writer.drain()
      await core.push.stop()
      await db.close()
      if (!shared) await fresh.drop()
    },
  }
}

/**
 * Asserts a response is the contract's error: that status, exactly `{"error": {"code", "message", "details"?}}`
 * as JSON (never HTML), a non-empty message, and when `field` is given, `details.field` naming it.
 */
export function expectContractError(res: Response, status: number, code: string, field?: string): void {
  expect({ status: res.status, code: res.body?.error?.code }).toEqual({ status, code })
  expect(res.headers.get('content-type') ?? '').toStartWith('application/json')
  expect(Object.keys(res.body)).toEqual(['error'])
  const keys = Object.keys(res.body.error)
  expect(keys.filter((k) => k !== 'details').sort()).toEqual(['code', 'message'])
  expect(keys.every((k) => ['code', 'message', 'details'].includes(k))).toBe(true)
  expect(typeof res.body.error.message).toBe('string')
  expect(res.body.error.message.length).toBeGreaterThan(0)
  expect(res.body.error.message).not.toMatch(/<html|<!doctype/i)
  if (res.body.error.details !== undefined) expect(typeof res.body.error.details).toBe('object')
  if (field !== undefined) expect(res.body.error.details?.field).toBe(field)
}

/** The claims of a JWT, unverified (to craft tokens for the same session in tests). */
export const claimsOf = (token: string): Record<string, unknown> =>
  JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString())
