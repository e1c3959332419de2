import { afterAll, describe, expect, test } from 'bun:test'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateVAPIDKeys } from 'web-push'
import { ConfigError, loadConfig, parseDatabaseUrl, redact, redactIn } from '../src/config'
import { pgConnection } from '../src/storage/pg-url'
import { runCli } from './support/cli'

// Production also requires VAPID keys (tests/push.test.ts checks them); these tests are about the rest.
const keys = generateVAPIDKeys()
const VAPID = { VAPID_PUBLIC_KEY: keys.publicKey, VAPID_PRIVATE_KEY: keys.privateKey }

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

  test('DATA_DIR= and DATABASE_URL= (empty, as a .env may leave them) are the defaults', () => {
    const config = loadConfig({ DATA_DIR: '', DATABASE_URL: ' ', SQLITE_SYNCHRONOUS: '' }, '/srv/app')
    expect({ dataDir: config.dataDir, database: config.database, synchronous: config.sqliteSynchronous }).toEqual({
      dataDir: '/srv/app/data',
      database: { dialect: 'sqlite', path: '/srv/app/data/chat.db' },
      synchronous: 'FULL',
    })
  })

  test('DATABASE_URL forms, including the original sqlite:///chat.db and postgresql://', () => {
    const cwd = '/srv/app'
    expect(parseDatabaseUrl('sqlite:///chat.db', cwd)).toEqual({ dialect: 'sqlite', path: '/srv/app/chat.db' })
    expect(parseDatabaseUrl('sqlite://./data/x.db', cwd)).toEqual({ dialect: 'sqlite', path: '/srv/app/data/x.db' })
    expect(parseDatabaseUrl('sqlite:///var/lib/chat/x.db', cwd)).toEqual({ dialect: 'sqlite', path: '/var/lib/chat/x.db' })
    expect(parseDatabaseUrl('sqlite:////x.db', cwd)).toEqual({ dialect: 'sqlite', path: '/x.db' })
    // `./` and `../` are relative whatever follows (they were taken for files at the root).
    expect(parseDatabaseUrl('sqlite:///./chat.db', cwd)).toEqual({ dialect: 'sqlite', path: '/srv/app/chat.db' })
    expect(parseDatabaseUrl('sqlite:///../data/chat.db', cwd)).toEqual({ dialect: 'sqlite', path: '/srv/data/chat.db' })
    // SQLAlchemy's connect arguments for Python's driver are no part of the file name.
    expect(parseDatabaseUrl('sqlite:///chat.db?check_same_thread=False', cwd)).toEqual({ dialect: 'sqlite', path: '/srv/app/chat.db' })
    expect(parseDatabaseUrl('sqlite:///var/lib/chat/x.db?timeout=20', cwd)).toEqual({ dialect: 'sqlite', path: '/var/lib/chat/x.db' })
    expect(parseDatabaseUrl('sqlite::memory:', cwd)).toEqual({ dialect: 'sqlite', path: ':memory:' })
    expect(parseDatabaseUrl('postgresql://u:p@db:5432/chat', cwd)).toEqual({ dialect: 'pg', url: 'postgresql://u:p@db:5432/chat' })
    expect(parseDatabaseUrl('postgres://localhost/chat', cwd)).toEqual({ dialect: 'pg', url: 'postgres://localhost/chat' })
    // libpq's and SQLAlchemy's way to a local server's Unix socket: no host, the socket's directory in the query.
    const socketUrl = 'postgresql://chat@/chat?host=/var/run/postgresql'
    expect(parseDatabaseUrl(socketUrl, cwd)).toEqual({ dialect: 'pg', url: socketUrl })
    // SQLAlchemy's scheme with its Python driver, as the original's .env may have it.
    expect(parseDatabaseUrl('postgresql+psycopg2://u:p@db/chat', cwd)).toEqual({ dialect: 'pg', url: 'postgresql://u:p@db/chat' })
    expect(parseDatabaseUrl('sqlite+pysqlite:///chat.db', cwd)).toEqual({ dialect: 'sqlite', path: '/srv/app/chat.db' })
  })

  test('Postgres URLs as libpq reads them: the Unix socket by directory, host and port in the query', () => {
    expect(pgConnection('postgresql://chat@/chat?host=/var/run/postgresql')).toEqual({
      url: 'postgresql://chat@localhost/chat',
      path: '/var/run/postgresql/.s.PGSQL.5432',
    })
    expect(pgConnection('postgres://chat:pw@%2Ftmp%2Fpg/chat?sslmode=disable')).toEqual({
      url: 'postgres://chat:pw@localhost/chat?sslmode=disable',
      path: '/tmp/pg/.s.PGSQL.5432',
    })
    expect(pgConnection('postgresql:///chat?host=/tmp/&port=5433')).toEqual({ url: 'postgresql://localhost/chat', path: '/tmp/.s.PGSQL.5433' })
    expect(pgConnection('postgresql:///chat?host=db.internal&port=6000')).toEqual({ url: 'postgresql://db.internal:6000/chat' })
    expect(pgConnection('postgresql://chat@/chat')).toEqual({ url: 'postgresql://chat@localhost/chat' })
    expect(pgConnection('postgres://u:p@db:5432/chat?sslmode=require')).toEqual({ url: 'postgres://u:p@db:5432/chat?sslmode=require' })
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
    // An empty NODE_ENV (`NODE_ENV=` in a .env) is no value: the original's FLASK_ENV still says production.
    for (const env of [{ NODE_ENV: 'production' }, { FLASK_ENV: 'production' }, { NODE_ENV: '', FLASK_ENV: 'production' }, { NODE_ENV: 'production', JWT_SECRET_KEY: 'short' }]) {
      const error = failure(() => loadConfig(env, scratch()))
      expect(error).toBeInstanceOf(ConfigError)
      expect((error as Error).message).toStartWith('JWT_SECRET_KEY: ')
    }
    const ok = loadConfig({ NODE_ENV: 'production', JWT_SECRET_KEY: 'k'.repeat(32), ...VAPID }, scratch())
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

  test('processes starting together on one empty data folder (REUSE_PORT) all sign with the one secret kept', async () => {
    // Each process loads the configuration at the same instant (spinning until it), as nodes started together do.
    const child = `
      import { loadConfig } from ${JSON.stringify(join(import.meta.dir, '..', 'src', 'config'))}
      const [dir, at] = [process.argv[2], Number(process.argv[3])]
      while (Date.now() < at) {}
      const config = loadConfig({ DATA_DIR: dir, DATABASE_URL: 'sqlite::memory:' }, dir)
      console.log(JSON.stringify([config.jwtSecret, config.push.vapidPublicKey]))`
    const env = { ...process.env }
    for (const name of ['JWT_SECRET_KEY', 'NODE_ENV', 'FLASK_ENV', 'DATA_DIR', 'VAPID_PUBLIC_KEY', 'VAPID_PRIVATE_KEY']) delete env[name]
    for (let round = 0; round < 4; round++) {
      const dir = scratch()
      const script = join(dir, 'child.ts')
      await Bun.write(script, child)
      const at = Date.now() + 900
      const procs = Array.from({ length: 6 }, () => Bun.spawn([process.execPath, script, dir, String(at)], { env, stdout: 'pipe', stderr: 'inherit' }))
      const used = await Promise.all(procs.map(async (p) => JSON.parse(await new Response(p.stdout).text()) as [string, string]))
      const secret = readFileSync(join(dir, 'jwt-secret'), 'utf8').trim()
      const vapid = JSON.parse(readFileSync(join(dir, 'vapid-keys.json'), 'utf8')).publicKey
      expect(used).toEqual(procs.map(() => [secret, vapid]))
    }
  }, 60_000)

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

  test('REDIS_URL turns clustering on (channel and heartbeat default); a malformed one or a bad REUSE_PORT fails fast', () => {
    const base = { JWT_SECRET_KEY: 'x' }
    expect(loadConfig(base, scratch()).cluster).toBeUndefined()
    expect(loadConfig({ ...base, REDIS_URL: 'redis://127.0.0.1:6379' }, scratch()).cluster).toEqual({
      redisUrl: 'redis://127.0.0.1:6379',
      channel: 'chat:cluster',
      heartbeatMs: 2000,
    })
    const custom = loadConfig({ ...base, REDIS_URL: 'rediss://:pw@cache:6380/2', REDIS_CHANNEL: 'team-a', CLUSTER_HEARTBEAT_MS: '500', REUSE_PORT: 'true' }, scratch())
    expect(custom.cluster).toEqual({ redisUrl: 'rediss://:pw@cache:6380/2', channel: 'team-a', heartbeatMs: 500 })
    expect(custom.reusePort).toBe(true)
    for (const [name, value] of [
      ['REDIS_URL', 'localhost:6379'],
      ['REDIS_URL', 'http://cache'],
      ['CLUSTER_HEARTBEAT_MS', '10'],
      ['REUSE_PORT', 'maybe'],
    ]) {
      const env = { ...base, REDIS_URL: 'redis://cache', [name!]: value }
      expect((failure(() => loadConfig(env, scratch())) as Error).message).toStartWith(`${name}: `)
    }
  })
})

describe('configuration: more forms and the data folder', () => {
  test('loadConfig reads every DATABASE_URL form the original and the contract use', () => {
    const cwd = scratch()
    const db = (url: string) => loadConfig({ DATABASE_URL: url, JWT_SECRET_KEY: 'k' }, cwd).database
    expect(db('sqlite:///chat.db')).toEqual({ dialect: 'sqlite', path: join(cwd, 'chat.db') })
    expect(db('sqlite://./rel/chat.db')).toEqual({ dialect: 'sqlite', path: join(cwd, 'rel', 'chat.db') })
    expect(db('sqlite:///tmp/abs/chat.db')).toEqual({ dialect: 'sqlite', path: '/tmp/abs/chat.db' })
    expect(db('sqlite::memory:')).toEqual({ dialect: 'sqlite', path: ':memory:' })
    expect(db('  sqlite::memory:  ')).toEqual({ dialect: 'sqlite', path: ':memory:' })
    expect(db('postgresql://chat:pw@db.internal:5432/chat?sslmode=require')).toEqual({
      dialect: 'pg',
      url: 'postgresql://chat:pw@db.internal:5432/chat?sslmode=require',
    })
    expect(db('postgres://127.0.0.1/chat')).toEqual({ dialect: 'pg', url: 'postgres://127.0.0.1/chat' })
  })

  test('a bad DATABASE_URL throws a ConfigError whose variable is DATABASE_URL', () => {
    for (const url of ['bogus://x', 'mysql://localhost/chat', 'sqlite:', 'postgres://', 'http://example.com/db']) {
      const error = failure(() => loadConfig({ DATABASE_URL: url, JWT_SECRET_KEY: 'k' }, scratch()))
      expect(error).toBeInstanceOf(ConfigError)
      expect((error as ConfigError).variable).toBe('DATABASE_URL')
      expect((error as Error).message).toContain('DATABASE_URL')
    }
  })

  test('production without JWT_SECRET_KEY, or with one under 32 bytes, names JWT_SECRET_KEY; 32 bytes of UTF-8 count', () => {
    for (const env of [
      { NODE_ENV: 'production' },
      { FLASK_ENV: 'production' },
      { NODE_ENV: 'Production', JWT_SECRET_KEY: '' },
      { NODE_ENV: 'production', JWT_SECRET_KEY: 'x'.repeat(31) },
      { FLASK_ENV: 'production', JWT_SECRET_KEY: '   ' },
    ]) {
      const dir = scratch()
      const error = failure(() => loadConfig({ DATABASE_URL: 'sqlite::memory:', ...env }, dir))
      expect(error).toBeInstanceOf(ConfigError)
      expect((error as ConfigError).variable).toBe('JWT_SECRET_KEY')
      // Production never falls back to a generated secret.
      expect(existsSync(join(dir, 'data', 'jwt-secret'))).toBe(false)
    }
    // 16 two-byte characters are 32 bytes.
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET_KEY: 'é'.repeat(16), ...VAPID }, scratch()).jwtSecret).toBe('é'.repeat(16))
  })

  test('outside production the generated secret goes to DATA_DIR/jwt-secret (0600), is reused, and a given one wins', () => {
    const cwd = scratch()
    const dataDir = join(cwd, 'state', 'chat')
    const first = loadConfig({ DATA_DIR: dataDir }, cwd)
    const file = join(dataDir, 'jwt-secret')
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(readFileSync(file, 'utf8').trim()).toBe(first.jwtSecret)
    expect(Buffer.byteLength(first.jwtSecret)).toBeGreaterThanOrEqual(32)
    expect(loadConfig({ DATA_DIR: dataDir }, cwd).jwtSecret).toBe(first.jwtSecret)
    expect(existsSync(join(cwd, 'data'))).toBe(false)
    // A relative DATA_DIR is relative to the working directory.
    const relative = loadConfig({ DATA_DIR: 'state/chat' }, cwd)
    expect(relative.dataDir).toBe(dataDir)
    expect(relative.jwtSecret).toBe(first.jwtSecret)
    // Another folder, another secret.
    expect(loadConfig({ DATA_DIR: join(cwd, 'other') }, cwd).jwtSecret).not.toBe(first.jwtSecret)
    // An explicit key is used as is and the file is left alone.
    expect(loadConfig({ DATA_DIR: dataDir, JWT_SECRET_KEY: 'given' }, cwd).jwtSecret).toBe('given')
    expect(readFileSync(file, 'utf8').trim()).toBe(first.jwtSecret)
  })
})

describe('the entry point', () => {
  test('DATABASE_URL=bogus://x: exits non-zero with one line naming the variable', async () => {
    const cwd = scratch()
    const env: Record<string, string> = { PATH: process.env.PATH ?? '', DATABASE_URL: 'bogus://x', DATA_DIR: join(cwd, 'data'), PORT: '0' }
    const proc = Bun.spawn([join(import.meta.dir, '..', 'node_modules', '.bin', 'bun'), join(import.meta.dir, '..', 'src', 'index.ts')], {
      cwd,
      env,
      stdout: 'pipe',
      stderr: 'pipe',
    })
    const timer = setTimeout(() => proc.kill(), 10_000)
    const code = await proc.exited
    clearTimeout(timer)
    const stderr = (await new Response(proc.stderr).text()).trim()
    expect(code).not.toBe(0)
    expect(stderr.split('\n')).toHaveLength(1)
    expect(stderr).toContain('DATABASE_URL')
    expect(stderr).not.toMatch(/\bat \/|\.ts:\d+/)
    expect((await new Response(proc.stdout).text()).trim()).toBe('')
  })
})

describe('secrets in failure lines', () => {
  // README: `REDIS_URL: cannot connect to redis://… within 5 s`, DATABASE_URL shown as `postgres://app:***@db…`.
  // `redis://:password@host` (no user name: Redis's AUTH with only a password) is the usual form.
  test('REDIS_URL with a password and no user name: the failure line does not print the password', async () => {
    const dir = scratch()
    const run = await runCli([], { DATABASE_URL: `sqlite://${join(dir, 'chat.db')}`, DATA_DIR: dir, REDIS_URL: 'redis://:s3cretpw@127.0.0.1:1' })
    expect(run.code).toBe(1)
    expect(run.stderr).toStartWith('REDIS_URL: cannot connect to')
    expect(run.stderr).not.toContain('s3cretpw')
  })

  // A password made with `openssl rand -base64` (as deploy.md makes the JWT secret) holds `/` and `+`.
  test('DATABASE_URL whose password holds an unencoded "/": the config error does not print the password', async () => {
    const run = await runCli([], { DATABASE_URL: 'postgres://chat:Ab/Cd+Ef9secret@127.0.0.1:1/chat' })
    expect(run.code).toBe(1)
    expect(run.stderr).toStartWith('config error: DATABASE_URL')
    expect(run.stderr).not.toContain('Cd+Ef9secret')
  })

  test('DATABASE_URL whose password holds "@": the failure line prints no part of the password', async () => {
    const run = await runCli([], { DATABASE_URL: 'postgres://postgres:first@secondhalf@127.0.0.1:1/chat' })
    expect(run.code).toBe(1)
    expect(run.stderr).toStartWith('DATABASE_URL: cannot connect to')
    expect(run.stderr).not.toContain('secondhalf')
  })

  test('redact masks up to the last "@" (as URL parsers split), keeping the user name, whatever the URL holds', () => {
    expect(redact('redis://:s3cretpw@127.0.0.1:1')).toBe('redis://:***@127.0.0.1:1')
    expect(redact('postgres://chat:Ab/Cd+Ef9secret@127.0.0.1:1/chat')).toBe('postgres://chat:***@127.0.0.1:1/chat')
    expect(redact('postgres://postgres:first@secondhalf@127.0.0.1:1/chat')).toBe('postgres://postgres:***@127.0.0.1:1/chat')
    expect(redact('postgres://u:p#x?y@db/chat')).toBe('postgres://u:***@db/chat')
    expect(redact('rediss://user:p@ss:w/rd@cache:6380/2')).toBe('rediss://user:***@cache:6380/2')
    // A Postgres user alone is shown; a Redis user information alone may be a password.
    expect(redact('postgres://postgres@127.0.0.1:1/chat')).toBe('postgres://postgres@127.0.0.1:1/chat')
    expect(redact('postgresql://chat@/chat?host=/var/run/postgresql')).toBe('postgresql://chat@/chat?host=/var/run/postgresql')
    expect(redact('redis://secretonly@cache:6379')).toBe('redis://***@cache:6379')
    // No "@": a password in the query, or in a value that does not parse.
    expect(redact('postgres://db/chat?sslmode=require&password=hunter22')).toBe('postgres://db/chat?sslmode=require&password=***')
    expect(redact('redis://:pw')).toBe('redis://:***')
    expect(redact('postgres://chat:Ab/Cd')).toBe('postgres://chat:***')
    expect(redact('user:pw@host')).toBe('user:***@host')
    for (const plain of ['redis://127.0.0.1:6379', 'mysql://localhost/db', 'chat.db', 'sqlite:', 'bogus://x']) expect(redact(plain)).toBe(plain)
    // In a driver's message too.
    expect(redactIn('AUTH s3cretpw refused by redis://:s3cretpw@h', 'redis://:s3cretpw@h')).toBe('AUTH *** refused by redis://:***@h')
  })
})

describe('bad values at start: one line naming what failed', () => {
  // README: "A bad value stops the server at start with one line naming the variable"; the VAPID keys
  // "generated into DATA_DIR/vapid-keys.json … checked at start" (checkVapidPair names the file).
  test('an unusable DATA_DIR/vapid-keys.json is named in the failure line', async () => {
    const dir = scratch()
    writeFileSync(join(dir, 'vapid-keys.json'), '{}\n')
    const run = await runCli(['migrate'], { DATABASE_URL: `sqlite://${join(dir, 'chat.db')}`, DATA_DIR: dir })
    expect(run.code).toBe(1)
    expect(run.stderr).toContain('vapid-keys.json')
  })

  test('a DATA_DIR that is a file is named as DATA_DIR', async () => {
    const dir = scratch()
    writeFileSync(join(dir, 'not-a-dir'), 'x')
    const run = await runCli(['migrate'], { DATABASE_URL: `sqlite://${join(dir, 'chat.db')}`, DATA_DIR: join(dir, 'not-a-dir'), JWT_SECRET_KEY: '' })
    expect(run.code).toBe(1)
    expect(run.stderr).toContain('DATA_DIR')
  })

  test('loadConfig: vapid-keys.json that is not a key pair, and a DATA_DIR through a file, are ConfigErrors naming DATA_DIR', () => {
    for (const content of ['{}', 'not json', '{"publicKey": 1, "privateKey": 2}']) {
      const dir = scratch()
      writeFileSync(join(dir, 'vapid-keys.json'), content)
      const error = failure(() => loadConfig({ DATA_DIR: dir, JWT_SECRET_KEY: 'x' }, dir))
      expect(error).toBeInstanceOf(ConfigError)
      expect((error as ConfigError).variable).toBe('DATA_DIR')
      expect((error as Error).message).toContain(join(dir, 'vapid-keys.json'))
    }
    const dir = scratch()
    writeFileSync(join(dir, 'file'), 'x')
    for (const dataDir of [join(dir, 'file'), join(dir, 'file', 'below')]) {
      const error = failure(() => loadConfig({ DATA_DIR: dataDir }, dir))
      expect((error as ConfigError).variable).toBe('DATA_DIR')
      expect((error as Error).message).toContain(dataDir)
    }
  })
})

describe('docs/deploy.md', () => {
  /** The ```sh blocks that follow a heading or line naming the env file, read as systemd's EnvironmentFile does. */
  const deploy = readFileSync(join(import.meta.dir, '..', 'docs', 'deploy.md'), 'utf8')
  const envBlocks = [...deploy.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!).filter((block) => /^[A-Z_]+=/m.test(block))
  // systemd: lines starting with # are comments; everything after the first `=` is the value, a `#` included.
  const asSystemd = (block: string) =>
    Object.fromEntries(
      block
        .split('\n')
        .filter((line) => line.trim() && !line.startsWith('#'))
        .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
    )
  // The placeholders a reader fills in.
  const filled = (env: Record<string, string>) => ({
    ...env,
    JWT_SECRET_KEY: 'x'.repeat(48),
    VAPID_PUBLIC_KEY: keys.publicKey,
    VAPID_PRIVATE_KEY: keys.privateKey,
    ...(env.DATABASE_URL?.includes('…') ? { DATABASE_URL: env.DATABASE_URL.replace('…', 'secret') } : {}),
  })

  test('the env files it shows are accepted as systemd reads them: one node, and several nodes on top of it', () => {
    expect(envBlocks.length).toBe(2)
    const single = asSystemd(envBlocks[0]!)
    expect(single.NODE_ENV).toBe('production')
    const config = loadConfig(filled(single), scratch())
    expect(config.production).toBe(true)
    const cluster = loadConfig(filled({ ...single, ...asSystemd(envBlocks[1]!) }), scratch())
    expect(cluster.cluster?.redisUrl).toBe('redis://redis.internal:6379')
  })
})
