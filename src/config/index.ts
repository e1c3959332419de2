import { chmodSync, existsSync, linkSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import { parseTrustProxy, type TrustProxy } from '../http/trust-proxy'
import { logOptions, type LogOptions } from '../log/logger'
import { pgConnection } from '../storage/pg-url'
import { createECDH, randomBytes } from 'node:crypto'

export type DatabaseTarget =
  | { dialect: 'sqlite'; path: string }
  | { dialect: 'pg'; url: string }

export interface Config {
  port: number
  host: string
  production: boolean
  database: DatabaseTarget
  /** SQLite `PRAGMA synchronous`: FULL survives power loss; NORMAL only process crashes. */
  sqliteSynchronous: 'FULL' | 'NORMAL'
  pgPoolMax: number
  /** Postgres work waiting this long on connections that answer nothing drops them (storage/pg-stall.ts). */
  pgStallTimeoutMs: number
  jwtSecret: string
  accessTtlSeconds: number
  /** argon2id cost (OWASP's baseline by default: 19 MiB, 2 passes). */
  argon2MemoryKib: number
  argon2TimeCost: number
  refreshTtlSeconds: number
  corsOrigins: string[] | '*'
  /**
   * Several nodes as one service, over Redis pub/sub on `channel`: set when REDIS_URL is. A node says it
   * is alive every `heartbeatMs`; one silent for three of these is gone.
   */
  cluster: { redisUrl: string; channel: string; heartbeatMs: number } | undefined
  /** SO_REUSEPORT: several nodes on one machine share the listening port (the kernel spreads connections). */
  reusePort: boolean
  dataDir: string
  maxBodyBytes: number
  /** Login/register/refresh attempts per client address: bucket size and refill per second. */
  authRateBurst: number
  authRatePerSec: number
  /** Message sends (and WebSocket receipts) per user, across REST and all the user's connections, per node. */
  sendRateBurst: number
  sendRatePerSec: number
  /** Group commit: a batch closes at this many sends or this many ms after its first. */
  writerBatchMax: number
  writerBatchWaitMs: number
  /** Sends and receipts waiting to be written, at most; more are answered `rate_limited`. */
  writerQueueMax: number
  wsAuthTimeoutMs: number
  wsIdleTimeoutSec: number
  wsBackpressureBytes: number
  /** When the forwarding header the proxies set names the client (see src/http/trust-proxy.ts). */
  trustProxy: TrustProxy
  log: LogOptions
  /** Share of successful HTTP requests logged (errors always are): 1 all, 0 none. */
  logHttpSample: number
  /** How often live connections' sessions are checked for revocation by another process (the CLI). */
  sessionCheckMs: number
  /** Authenticated WebSocket connections per user, per node. */
  wsMaxConnectionsPerUser: number
  /** Largest file POST /uploads accepts. */
  uploadMaxBytes: number
  /** Uploads go to this S3-compatible bucket when S3_BUCKET is set, else to DATA_DIR/uploads. */
  s3: { bucket: string; endpoint?: string; accessKeyId?: string; secretAccessKey?: string; region?: string } | undefined
  push: PushConfig
}

/** Web Push (see docs/push.md). Keys are base64url: the public one a 65-byte P-256 point, the private one 32 bytes. */
export interface PushConfig {
  vapidPublicKey: string
  vapidPrivateKey: string
  vapidSubject: string
  /** False: pushes carry no text of the message (`preview: ""`). */
  preview: boolean
  /** Pushes waiting (retries included) before the oldest is dropped. */
  queueMax: number
  /** Requests to push services in flight at once. */
  concurrency: number
  timeoutMs: number
}

export class ConfigError extends Error {
  constructor(readonly variable: string, detail: string) {
    super(`${variable}: ${detail}`)
  }
}

type Env = Record<string, string | undefined>

const SECRET_FILE = 'jwt-secret'
const MIN_PRODUCTION_SECRET_BYTES = 32

/** NODE_ENV, else the original's FLASK_ENV, says production; an empty value is no value (`NODE_ENV=` in a .env). */
export const isProduction = (env: Env): boolean => (env.NODE_ENV?.trim() || env.FLASK_ENV?.trim() || '').toLowerCase() === 'production'

/** Reads the configuration from an environment (src/index.ts has already applied `.env` to process.env: ./dotenv.ts). */
export function loadConfig(env: Env = process.env, cwd = process.cwd()): Config {
  const production = isProduction(env)
  // Empty is unset, as for the other variables (`DATA_DIR=` in a .env is not the working directory).
  const dataDir = resolve(cwd, env.DATA_DIR?.trim() || './data')
  const database = parseDatabaseUrl(env.DATABASE_URL?.trim() || 'sqlite://./data/chat.db', cwd)
  checkDataDir(dataDir)

  return {
    port: int(env, 'PORT', 5000, 0, 65535),
    host: env.HOST?.trim() || '0.0.0.0',
    production,
    database,
    sqliteSynchronous: parseSynchronous(env.SQLITE_SYNCHRONOUS),
    pgPoolMax: int(env, 'PG_POOL_MAX', 10, 1, 1000),
    pgStallTimeoutMs: int(env, 'PG_STALL_TIMEOUT_MS', 15_000, 0, 3_600_000),
    jwtSecret: resolveSecret(env.JWT_SECRET_KEY, production, dataDir),
    argon2MemoryKib: int(env, 'ARGON2_MEMORY_KIB', 19_456, 8, 4_194_304),
    argon2TimeCost: int(env, 'ARGON2_TIME_COST', 2, 1, 100),
    accessTtlSeconds: int(env, 'ACCESS_TOKEN_TTL_SECONDS', 15 * 60, 1, 365 * 86400),
    refreshTtlSeconds: int(env, 'REFRESH_TOKEN_TTL_SECONDS', 30 * 86400, 1, 3650 * 86400),
    corsOrigins: parseOrigins(env.CORS_ORIGINS),
    cluster: parseCluster(env),
    reusePort: bool(env, 'REUSE_PORT', false),
    dataDir,
    maxBodyBytes: int(env, 'MAX_BODY_BYTES', 64 * 1024, 1024, 64 * 1024 * 1024),
    authRateBurst: int(env, 'AUTH_RATE_BURST', 20, 1, 1e12),
    authRatePerSec: num(env, 'AUTH_RATE_PER_SEC', 1, 0.001, 1e12),
    sendRateBurst: int(env, 'SEND_RATE_BURST', 200, 1, 1e12),
    sendRatePerSec: num(env, 'SEND_RATE_PER_SEC', 100, 0.001, 1e12),
    writerBatchMax: int(env, 'WRITER_BATCH_MAX', 256, 1, 10_000),
    writerBatchWaitMs: num(env, 'WRITER_BATCH_WAIT_MS', 0, 0, 1000),
    writerQueueMax: int(env, 'WRITER_QUEUE_MAX', 50_000, 1, 10_000_000),
    wsAuthTimeoutMs: int(env, 'WS_AUTH_TIMEOUT_MS', 10_000, 1, 3_600_000),
    wsIdleTimeoutSec: int(env, 'WS_IDLE_TIMEOUT_SEC', 120, 0, 960),
    wsBackpressureBytes: int(env, 'WS_BACKPRESSURE_BYTES', 1024 * 1024, 1024, 1024 * 1024 * 1024),
    trustProxy: parseTrustProxy(env.TRUST_PROXY, env.TRUST_PROXY_HEADER),
    log: logOptions(env, production),
    logHttpSample: num(env, 'LOG_HTTP_SAMPLE', 1, 0, 1),
    sessionCheckMs: int(env, 'SESSION_CHECK_MS', 5000, 50, 3_600_000),
    push: {
      ...resolveVapid(env, production, dataDir),
      vapidSubject: parseVapidSubject(env.VAPID_SUBJECT),
      preview: bool(env, 'PUSH_PREVIEW', true),
      queueMax: int(env, 'PUSH_QUEUE_MAX', 10_000, 1, 10_000_000),
      concurrency: int(env, 'PUSH_CONCURRENCY', 16, 1, 10_000),
      timeoutMs: int(env, 'PUSH_TIMEOUT_MS', 10_000, 1, 600_000),
    },
    wsMaxConnectionsPerUser: int(env, 'WS_MAX_CONNECTIONS_PER_USER', 20, 1, 1_000_000),
    uploadMaxBytes: int(env, 'UPLOAD_MAX_BYTES', 25 * 1024 * 1024, 1, 2 ** 40),
    s3: parseS3(env),
  }
}

/**
 * `sqlite:///abs/dir/file.db` is absolute; `sqlite:///file.db` (the original's form, SQLAlchemy's
 * meaning) and `sqlite://./file.db` are relative to the working directory; `sqlite:////abs.db` is absolute.
 */
export function parseDatabaseUrl(url: string, cwd = process.cwd()): DatabaseTarget {
  // SQLAlchemy names its driver in the scheme (`postgresql+psycopg2://`, `sqlite+pysqlite:///`); the original's
  // .env may say so. The driver is Python's business, so it is dropped.
  const value = url.trim().replace(/^(postgres(?:ql)?|sqlite)\+[a-z0-9_]+:/i, '$1:')
  if (value === 'sqlite::memory:' || value === 'sqlite://:memory:') return { dialect: 'sqlite', path: ':memory:' }
  if (/^postgres(ql)?:\/\/[^\s]+$/i.test(value)) {
    try {
      pgConnection(value)
    } catch {
      const hint = value.lastIndexOf('@') > 0 ? ' (percent-encode / @ : ? # in the user name or password)' : ''
      throw new ConfigError('DATABASE_URL', `not a valid URL: ${redact(value)}${hint}`)
    }
    return { dialect: 'pg', url: value }
  }
  // A query (SQLAlchemy's connect arguments for Python's driver, `?check_same_thread=False`) is no part of the file.
  const sqlite = /^sqlite:\/\/([^?#]+)(?:[?#].*)?$/i.exec(value)
  if (sqlite?.[1]) {
    const rest = sqlite[1]
    let path: string
    if (rest.startsWith('//')) path = rest.slice(1)
    // `sqlite:///./chat.db`, `sqlite:///../data/chat.db`: relative, whatever else holds a directory.
    else if (rest.startsWith('/./') || rest.startsWith('/../')) path = resolve(cwd, rest.slice(1))
    else if (rest.startsWith('/')) path = rest.indexOf('/', 1) === -1 ? resolve(cwd, rest.slice(1)) : resolve(rest)
    else path = resolve(cwd, rest)
    if (!isAbsolute(path) || path.endsWith('/')) throw new ConfigError('DATABASE_URL', `no database file in ${value}`)
    return { dialect: 'sqlite', path }
  }
  throw new ConfigError(
    'DATABASE_URL',
    `expected sqlite:///abs/path.db, sqlite://./rel.db, sqlite::memory: or postgres://…, got "${redact(value)}"`,
  )
}

/**
 * A URL with its password masked, for messages. URL parsers take the user information up to the LAST `@`, so
 * everything from after `scheme://` to that `@` is masked, whatever it holds (an unencoded `/`, `@`, `#`):
 * `user:***@host`, or `:***@host` with no user name. A user information without `:` is a user name for
 * Postgres (`postgresql://chat@/chat`), shown; for Redis it may be a password alone, masked (`***@`).
 * With no `@`, a value that does not parse keeps nothing after the authority's first `:`, and a parsed
 * one has its password-like query parameters (`?password=…`) masked.
 */
export function redact(url: string): string {
  const parts = userinfoOf(url)
  if (parts) return `${parts.scheme}${parts.shown}${redactQuery(url.slice(parts.at))}`
  const scheme = schemeOf(url)
  if (!URL.canParse(url)) {
    const colon = url.indexOf(':', scheme.length)
    return colon === -1 || !scheme.endsWith('//') ? url : `${url.slice(0, colon)}:***`
  }
  return redactQuery(url)
}

const schemeOf = (url: string) => /^[a-z][a-z0-9+.-]*:(?:\/\/)?/i.exec(url)?.[0] ?? ''

/**
 * A URL's user information as URL parsers take it (up to the LAST `@`): what of it may be shown, and the
 * secret. Without `:`, a Postgres user information is a user name (`postgresql://chat@/chat`); a Redis one
 * may be a password alone.
 */
function userinfoOf(url: string): { scheme: string; at: number; shown: string; secret: string } | undefined {
  const scheme = schemeOf(url)
  const at = url.lastIndexOf('@')
  if (at < scheme.length) return undefined
  const userinfo = url.slice(scheme.length, at)
  const colon = userinfo.indexOf(':')
  if (colon >= 0) return { scheme, at, shown: `${userinfo.slice(0, colon)}:***`, secret: userinfo.slice(colon + 1) }
  if (/^postgres(ql)?:\/\//i.test(scheme) && /^[^/?#\s]*$/.test(userinfo)) return { scheme, at, shown: userinfo, secret: '' }
  return { scheme, at, shown: '***', secret: userinfo }
}

const redactQuery = (text: string) => text.replace(/([?&](?:[^=&#]*(?:pass|pwd|secret|token|key)[^=&#]*)=)[^&#]*/gi, '$1***')

/** `text` (an error's message) with `url`, and the password in it, masked as `redact` masks them. */
export function redactIn(text: string, url: string): string {
  let out = text.split(url).join(redact(url))
  const secret = userinfoOf(url)?.secret ?? ''
  let decoded = secret
  try {
    decoded = decodeURIComponent(secret)
  } catch {}
  // A short one would mask ordinary words of the message; a password that short is no secret anyway.
  for (const s of new Set([secret, decoded])) if (s.length >= 4) out = out.split(s).join('***')
  return out
}

/** DATA_DIR need not exist yet (it is made when first written), but what is there must be a folder. */
function checkDataDir(dataDir: string): void {
  try {
    if (!statSync(dataDir).isDirectory()) throw new ConfigError('DATA_DIR', `${dataDir} is not a directory`)
  } catch (error) {
    if (error instanceof ConfigError) throw error
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return
    if (code === 'ENOTDIR') throw new ConfigError('DATA_DIR', `${dataDir}: part of its path is a file, not a directory`)
    throw new ConfigError('DATA_DIR', `cannot use ${dataDir}: ${(error as Error).message}`)
  }
}

function resolveSecret(given: string | undefined, production: boolean, dataDir: string): string {
  const secret = given?.trim()
  if (production) {
    if (!secret) throw new ConfigError('JWT_SECRET_KEY', 'required when NODE_ENV=production')
    if (Buffer.byteLength(secret) < MIN_PRODUCTION_SECRET_BYTES)
      throw new ConfigError('JWT_SECRET_KEY', `must be at least ${MIN_PRODUCTION_SECRET_BYTES} bytes in production`)
    return secret
  }
  if (secret) return secret
  const file = join(dataDir, SECRET_FILE)
  return keptOnce(file, () => randomBytes(48).toString('base64url') + '\n').trim()
}

/**
 * The content of a file generated once in the data folder: what is there, or `generate()` written aside and
 * linked into place, which fails if another process got there first (nodes starting together on one
 * folder, REUSE_PORT): then theirs is read back. Either way every process uses the one kept, whole.
 */
function keptOnce(file: string, generate: () => string): string {
  try {
    return keptOnceIn(file, generate)
  } catch (error) {
    // A folder the user cannot write, a read-only file system, a directory where the file should be.
    throw new ConfigError('DATA_DIR', `cannot keep ${file}: ${(error as Error).message}`)
  }
}

function keptOnceIn(file: string, generate: () => string): string {
  if (existsSync(file)) {
    const kept = readFileSync(file, 'utf8')
    if (kept.trim()) return kept
    // Left empty by a release that wrote the file in place: generated anew.
    unlinkSync(file)
  }
  mkdirSync(dirname(file), { recursive: true })
  const aside = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`
  const generated = generate()
  writeFileSync(aside, generated, { mode: 0o600 })
  chmodSync(aside, 0o600)
  try {
    linkSync(aside, file)
    return generated
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    return readFileSync(file, 'utf8')
  } finally {
    unlinkSync(aside)
  }
}

const VAPID_FILE = 'vapid-keys.json'

/**
 * VAPID keys as the JWT secret: from the environment, or generated once into DATA_DIR outside production.
 * Production requires them: keys made per machine would differ between the nodes of a cluster and change
 * with a lost data folder, and every browser subscription is bound to the key it was made with.
 */
function resolveVapid(env: Env, production: boolean, dataDir: string): { vapidPublicKey: string; vapidPrivateKey: string } {
  const publicKey = env.VAPID_PUBLIC_KEY?.trim()
  const privateKey = env.VAPID_PRIVATE_KEY?.trim()
  if (publicKey || privateKey) {
    if (!publicKey) throw new ConfigError('VAPID_PUBLIC_KEY', 'required when VAPID_PRIVATE_KEY is set')
    if (!privateKey) throw new ConfigError('VAPID_PRIVATE_KEY', 'required when VAPID_PUBLIC_KEY is set')
    checkVapidPair(publicKey, privateKey)
    return { vapidPublicKey: publicKey, vapidPrivateKey: privateKey }
  }
  if (production)
    throw new ConfigError('VAPID_PUBLIC_KEY', 'VAPID_PUBLIC_KEY and VAPID_PRIVATE_KEY are required when NODE_ENV=production (npx web-push generate-vapid-keys)')
  const file = join(dataDir, VAPID_FILE)
  const text = keptOnce(file, () => {
    const ecdh = createECDH('prime256v1')
    ecdh.generateKeys()
    // A private key with leading zero bytes comes out short; VAPID wants all 32.
    const raw = ecdh.getPrivateKey()
    const privateKey = Buffer.concat([Buffer.alloc(32 - raw.length), raw]).toString('base64url')
    return JSON.stringify({ publicKey: ecdh.getPublicKey('base64url'), privateKey }) + '\n'
  })
  let kept: { publicKey?: unknown; privateKey?: unknown } | null = null
  try {
    kept = JSON.parse(text)
  } catch {}
  if (typeof kept?.publicKey !== 'string' || typeof kept.privateKey !== 'string')
    throw new ConfigError(
      'DATA_DIR',
      `${file} holds no VAPID key pair (expected {"publicKey": …, "privateKey": …}): restore it, or remove it to have a new pair generated (push subscriptions made with the old one then stop working)`,
    )
  checkVapidPair(kept.publicKey, kept.privateKey, file)
  return { vapidPublicKey: kept.publicKey, vapidPrivateKey: kept.privateKey }
}

const BASE64URL = /^[A-Za-z0-9_-]+$/

function checkVapidPair(publicKey: string, privateKey: string, source?: string): void {
  const where = source ? ` (in ${source})` : ''
  const pub = BASE64URL.test(publicKey) ? Buffer.from(publicKey, 'base64url') : Buffer.alloc(0)
  if (pub.length !== 65 || pub[0] !== 4)
    throw new ConfigError('VAPID_PUBLIC_KEY', `expected a base64url P-256 public key (65 bytes, uncompressed)${where}`)
  const priv = BASE64URL.test(privateKey) ? Buffer.from(privateKey, 'base64url') : Buffer.alloc(0)
  if (priv.length !== 32) throw new ConfigError('VAPID_PRIVATE_KEY', `expected a base64url P-256 private key (32 bytes)${where}`)
  const ecdh = createECDH('prime256v1')
  try {
    ecdh.setPrivateKey(priv)
  } catch {
    throw new ConfigError('VAPID_PRIVATE_KEY', `not a valid P-256 private key${where}`)
  }
  if (!ecdh.getPublicKey().equals(pub)) throw new ConfigError('VAPID_PUBLIC_KEY', `is not the public key of VAPID_PRIVATE_KEY${where}`)
}

/** RFC 8292: a mailto: or https: URI the push service can reach the operator at. */
function parseVapidSubject(value: string | undefined): string {
  const subject = value?.trim() || 'mailto:admin@localhost'
  if (!/^(mailto:\S+@\S+|https:\/\/\S+)$/i.test(subject) || !URL.canParse(subject))
    throw new ConfigError('VAPID_SUBJECT', `expected mailto:you@example.com or https://…, got "${value}"`)
  return subject
}

function parseSynchronous(value: string | undefined): 'FULL' | 'NORMAL' {
  const v = (value?.trim() || 'full').toUpperCase()
  if (v === 'FULL' || v === 'NORMAL') return v
  throw new ConfigError('SQLITE_SYNCHRONOUS', `expected "full" or "normal", got "${value}"`)
}

function parseOrigins(value: string | undefined): string[] | '*' {
  const list = (value ?? '*').split(',').map((s) => s.trim()).filter(Boolean)
  return list.length === 0 || list.includes('*') ? '*' : list
}

function parseCluster(env: Env): Config['cluster'] {
  const url = env.REDIS_URL?.trim()
  if (!url) return undefined
  if (!/^(redis|rediss|valkey|valkeys):\/\/\S*$/i.test(url) || !URL.canParse(url))
    throw new ConfigError('REDIS_URL', `expected redis://host:port or rediss://…, got "${redact(url)}"`)
  const channel = env.REDIS_CHANNEL?.trim() || 'chat:cluster'
  return { redisUrl: url, channel, heartbeatMs: int(env, 'CLUSTER_HEARTBEAT_MS', 2000, 50, 60_000) }
}

function parseS3(env: Env): Config['s3'] {
  const bucket = env.S3_BUCKET?.trim()
  if (!bucket) return undefined
  const endpoint = env.S3_ENDPOINT?.trim() || undefined
  if (endpoint && !/^https?:\/\//i.test(endpoint)) throw new ConfigError('S3_ENDPOINT', `expected http(s)://…, got "${redact(endpoint)}"`)
  const pick = (name: string) => env[name]?.trim() || undefined
  return {
    bucket,
    endpoint,
    accessKeyId: pick('S3_ACCESS_KEY_ID'),
    secretAccessKey: pick('S3_SECRET_ACCESS_KEY'),
    region: pick('S3_REGION'),
  }
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase()
  if (!raw) return fallback
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true
  if (['0', 'false', 'no', 'off'].includes(raw)) return false
  throw new ConfigError(name, `expected true or false, got "${env[name]}"`)
}

function num(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name]?.trim()
  if (!raw) return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value < min || value > max)
    throw new ConfigError(name, `expected a number from ${min} to ${max}, got "${raw}"`)
  return value
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const value = num(env, name, fallback, min, max)
  if (!Number.isInteger(value)) throw new ConfigError(name, `expected an integer, got "${env[name]}"`)
  return value
}
