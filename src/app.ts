import { cors } from '@elysiajs/cors'
import { Elysia, type AnyElysia } from 'elysia'
import { authRoutes } from './auth'
import { blockRoutes } from './blocks'
import { BlockCache } from './blocks/cache'
import { BlockService } from './blocks/service'
import { Passwords } from './auth/passwords'
import { AuthService } from './auth/service'
import { revokedUnseen, SessionCache } from './auth/session-cache'
import { Tokens } from './auth/tokens'
import type { Config } from './config'
import { dialogRoutes } from './dialogs'
import { logFault } from './log/fault'
import { endRevokedSessions } from './ops/session-check'
import { docsRoutes } from './docs'
import { Membership } from './dialogs/membership'
import { DialogService } from './dialogs/service'
import { edge } from './http/edge'
import { requestLog } from './http/request-log'
import { Logger } from './log/logger'
import { messageRoutes } from './messages'
import { MessageService } from './messages/service'
import { MessageWriter } from './messages/writer'
import { opsRoutes } from './ops'
import { isUploadRequest, uploadRoutes } from './uploads'
import { UploadService } from './uploads/service'
import { Metrics } from './ops/metrics'
import { PresenceService } from './users/presence'
import { pushRoutes } from './push'
import { PushService } from './push/service'
import { Hub } from './realtime/hub'
import { UserLimits } from './limits/user-limits'
import { searchRoutes } from './search'
import { SearchService } from './search/service'
import type { Db } from './storage/database'
import { CommitWatch } from './storage/commit-watch'
import { LocalChanges } from './storage/local-changes'
import { userRoutes } from './users'
import { UserService } from './users/service'

/** Everything the routes and the WebSocket layer share, built once per server (and once per test). */
export interface Core {
  config: Config
  db: Db
  metrics: Metrics
  auth: AuthService
  users: UserService
  dialogs: DialogService
  messages: MessageService
  search: SearchService
  membership: Membership
  blocks: BlockService
  uploads: UploadService
  writer: MessageWriter
  /** last_seen_at and the links a user's connections follow (the hub's database work). */
  presence: PresenceService
  push: PushService
  /** Per-user send rate and connection cap, shared by REST and every WebSocket wire. */
  limits: UserLimits
  /** The realtime port the services publish through; a no-op until serve() attaches a server. */
  hub: Hub
  /** False once shutdown has begun: /health answers 503. */
  accepting: boolean
  log: Logger
}

/** Apps built in-process (tests) log nothing unless given a logger; the serving CLI passes the real one. */
const QUIET = new Logger({ level: 'silent', format: 'pretty' })

export function createCore(config: Config, db: Db, log: Logger = QUIET): Core {
  const metrics = new Metrics()
  const blockCache = new BlockCache(db)
  // Revocations from elsewhere reach a Postgres node only over the cluster channel (see SessionCache).
  const commits = new CommitWatch(() => db.commitsElsewhere())
  const sessions: SessionCache = new SessionCache(config.sessionCheckMs, revokedUnseen(commits, () => config.cluster !== undefined && hub.clusterJoined()))
  // Dialog lists and history pages kept unread while no change is reported: SQLite only (LocalChanges).
  const changes = new LocalChanges(commits)
  const presence = new PresenceService(db, changes)
  const hub = new Hub(presence, metrics, config.wsBackpressureBytes, blockCache, sessions)
  // Sessions ended elsewhere while this node could not hear the cluster: their sockets here close at once.
  hub.onResubscribed(() => void endRevokedSessions(db, hub).catch((error) => logFault('checking sessions after a Redis drop failed', error)))
  const tokens = new Tokens(config.jwtSecret, config.accessTtlSeconds, config.refreshTtlSeconds)
  const membership = new Membership(db)
  const uploads = new UploadService(db, membership, config)
  // Two Postgres batches overlap their round trips; a SQLite commit blocks the loop, so one at a time.
  const writerOptions = {
    batchMax: config.writerBatchMax,
    batchWaitMs: config.writerBatchWaitMs,
    batchesInFlight: db.dialect === 'pg' ? 2 : 1,
    queueMax: config.writerQueueMax,
  }
  const writer = new MessageWriter(db, writerOptions, metrics, () => hub.flushReplies())
  const push = new PushService(db, { ...config.push, production: config.production }, metrics, {
    isOnline: (id) => hub.isOnline(id),
    blocked: (a, b) => blockCache.between(a, b),
  })
  return {
    config,
    db,
    metrics,
    auth: new AuthService(db, tokens, new Passwords(config.argon2MemoryKib, config.argon2TimeCost), hub, sessions),
    users: new UserService(db),
    dialogs: new DialogService(db, membership, hub, blockCache, changes),
    messages: new MessageService(db, writer, membership, hub, blockCache, uploads, changes, (message, recipientId) =>
      push.messageNew(message, recipientId),
    ),
    search: new SearchService(db, membership),
    membership,
    blocks: new BlockService(db, blockCache, hub),
    uploads,
    writer,
    presence,
    push,
    limits: new UserLimits({
      sendBurst: config.sendRateBurst,
      sendPerSec: config.sendRatePerSec,
      maxConnections: config.wsMaxConnectionsPerUser,
    }),
    hub,
    accepting: true,
    log,
  }
}

/** Response headers the docs tell clients to read, which browsers hide from other origins unless exposed. */
const EXPOSED_HEADERS = ['Retry-After', 'X-Request-Id', 'ETag', 'Content-Range', 'Content-Disposition', 'Accept-Ranges']

/** The HTTP application: buildable without listening, so tests can call `app.handle(request)`. */
export function createApp(core: Core) {
  const { config } = core
  // The docs describe the whole app: they read it once it is built.
  const root: { app?: AnyElysia } = {}
  const app = new Elysia()
    .use(requestLog(core.log, core.metrics, config.logHttpSample))
    .use(edge(config.maxBodyBytes, isUploadRequest))
    // Any origin: `*`, which browsers never pair with credentials. Credentials only for origins listed by name.
    .use(
      cors({
        ...(config.corsOrigins === '*' ? { origin: '*', credentials: false } : { origin: config.corsOrigins, credentials: true }),
        // Headers a script on another origin may read: what the docs tell clients to read.
        exposeHeaders: EXPOSED_HEADERS,
      }),
    )
    // The plugin answers `*` with `Vary: *`, which keeps browsers from caching anything (downloads' ETags
    // included); the answer does not vary with the origin then.
    .onRequest(({ set }) => {
      if (set.headers.vary === '*') delete set.headers.vary
    })
    .use(docsRoutes(root))
    .use(opsRoutes(core.db, core.metrics, { accepting: () => core.accepting, clusterJoined: () => core.hub.clusterJoined() }))
    .use(authRoutes(core.auth, { burst: config.authRateBurst, perSec: config.authRatePerSec }))
    .use(blockRoutes(core.auth, core.blocks))
    .use(uploadRoutes(core.auth, core.uploads))
    .use(userRoutes(core.auth, core.users))
    .use(dialogRoutes(core.auth, core.dialogs))
    .use(messageRoutes(core.auth, core.messages, core.limits))
    .use(pushRoutes(core.auth, core.push))
    .use(searchRoutes(core.auth, core.search))
  root.app = app
  return app
}

export type App = ReturnType<typeof createApp>
