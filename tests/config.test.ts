import { afterAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError, loadConfig, parseDatabaseUrl } from '../src/config'

const dirs: string[] = []
const scratch = () => {
  const dir = mkdtempSync(join(tmpdir(), 'chat-config-'))
  dirs.push(dir)
  return dir
}
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })))

const failure = (fn: () => unknown) => {
  try {
    fn()
  } catch (error) {
    return error
  }
  throw new Error('expected a ConfigError')
}

describe('configuration', () => {
  test('defaults: port 5000 on 0.0.0.0, SQLite in ./data/chat.db, synchronous FULL', () => {
    const cwd = scratch()
    const config = loadConfig({}, cwd)
    expect(config.port).toBe(5000)
    expect(config.host).toBe('0.0.0.0')
    expect(config.database).toEqual({ dialect: 'sqlite', path: join(cwd, 'data', 'chat.db') })
    expect(config.sqliteSynchronous).toBe('FULL')
    expect(config.corsOrigins).toBe('*')
    expect(config.accessTtlSeconds).toBe(900)
    expect(config.refreshTtlSeconds).toBe(30 * 86400)
  })

  test('DATABASE_URL forms, including the original sqlite:///chat.db and postgresql://', () => {
    const cwd = '/srv/app'
    expect(parseDatabaseUrl('sqlite:///chat.db', cwd)).toEqual({ dialect: 'sqlite', path: '/srv/app/chat.db' })
    expect(parseDatabaseUrl('sqlite://./data/x.db', cwd)).toEqual({ dialect: 'sqlite', path: '/srv/app/data/x.db' })
    expect(parseDatabaseUrl('sqlite:///var/lib/chat/x.db', cwd)).toEqual({ dialect: 'sqlite', path: '/var/lib/chat/x.db' })
    expect(parseDatabaseUrl('sqlite:////x.db', cwd)).toEqual({ dialect: 'sqlite', path: '/x.db' })
    expect(parseDatabaseUrl('sqlite::memory:', cwd)).toEqual({ dialect: 'sqlite', path: ':memory:' })
    expect(parseDatabaseUrl('postgresql://u:p@db:5432/chat', cwd)).toEqual({ dialect: 'pg', url: 'postgresql://u:p@db:5432/chat' })
    expect(parseDatabaseUrl('postgres://localhost/chat', cwd)).toEqual({ dialect: 'pg', url: 'postgres://localhost/chat' })
  })

  test('a malformed DATABASE_URL fails fast, naming the variable and hiding the password', () => {
    for (const url of ['mysql://localhost/db', 'chat.db', 'sqlite://', 'postgres://u:secret@host:99999999/x']) {
      const error = failure(() => loadConfig({ DATABASE_URL: url }, scratch()))
      expect(error).toBeInstanceOf(ConfigError)
      expect((error as Error).message).toStartWith('DATABASE_URL: ')
      expect((error as Error).message).not.toContain('secret')
    }
  })

  test('production demands JWT_SECRET_KEY of at least 32 bytes (NODE_ENV or FLASK_ENV)', () => {
    for (const env of [{ NODE_ENV: 'production' }, { FLASK_ENV: 'production' }, { NODE_ENV: 'production', JWT_SECRET_KEY: 'short' }]) {
      const error = failure(() => loadConfig(env, scratch()))
      expect(error).toBeInstanceOf(ConfigError)
      expect((error as Error).message).toStartWith('JWT_SECRET_KEY: ')
    }
    const ok = loadConfig({ NODE_ENV: 'production', JWT_SECRET_KEY: 'k'.repeat(32) }, scratch())
    expect(ok.production).toBe(true)
    expect(ok.jwtSecret).toBe('k'.repeat(32))
  })

  test('outside production a missing secret is generated once into the data folder (0600) and kept', () => {
    const cwd = scratch()
    const first = loadConfig({}, cwd)
    const file = join(cwd, 'data', 'jwt-secret')
    expect(readFileSync(file, 'utf8').trim()).toBe(first.jwtSecret)
    expect(first.jwtSecret.length).toBeGreaterThanOrEqual(32)
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(loadConfig({}, cwd).jwtSecret).toBe(first.jwtSecret)
  })

  test('numbers and enumerations are checked, naming the variable', () => {
    for (const [name, value] of [
      ['PORT', 'http'],
      ['PORT', '70000'],
      ['SQLITE_SYNCHRONOUS', 'off'],
      ['PG_POOL_MAX', '0'],
      ['ACCESS_TOKEN_TTL_SECONDS', '1.5'],
    ]) {
      const error = failure(() => loadConfig({ [name!]: value, JWT_SECRET_KEY: 'x'.repeat(32) }, scratch()))
      expect((error as Error).message).toStartWith(`${name}: `)
    }
    const custom = loadConfig({ SQLITE_SYNCHRONOUS: 'normal', CORS_ORIGINS: 'https://a.example, https://b.example', JWT_SECRET_KEY: 'x' }, scratch())
    expect(custom.sqliteSynchronous).toBe('NORMAL')
    expect(custom.corsOrigins).toEqual(['https://a.example', 'https://b.example'])
  })
})
