import { cors } from '@elysiajs/cors'
import { openapi } from '@elysiajs/openapi'
import { Elysia } from 'elysia'
import { authRoutes } from './auth'
import { blockRoutes } from './blocks'
import { BlockCache } from './blocks/cache'
import { BlockService } from './blocks/service'
import { Passwords } from './auth/passwords'
import { AuthService } from './auth/service'
import { Tokens } from './auth/tokens'
import type { Config } from './config'
import { dialogRoutes } from './dialogs'
import { Membership } from './dialogs/membership'
import { DialogService } from './dialogs/service'
import { edge } from './http/edge'
import { messageRoutes } from './messages'
import { MessageService } from './messages/service'
import { MessageWriter } from './messages/writer'
import { opsRoutes } from './ops'
import { isUploadRequest, uploadRoutes } from './uploads'
import { UploadService } from './uploads/service'
import { Metrics } from './ops/metrics'
import { Hub } from './realtime/hub'
import type { Db } from './storage/database'
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
  membership: Membership
  blocks: BlockService
  uploads: UploadService
  writer: MessageWriter
  /** The realtime port the services publish through; a no-op until serve() attaches a server. */
  hub: Hub
  /** False once shutdown has begun: /health answers 503. */
  accepting: boolean
}

export function createCore(config: Config, db: Db): Core {
  const metrics = new Metrics()
  const blockCache = new BlockCache(db)
  const hub = new Hub(db, metrics, config.wsBackpressureBytes, blockCache)
  const tokens = new Tokens(config.jwtSecret, config.accessTtlSeconds, config.refreshTtlSeconds)
  const membership = new Membership(db)
  const uploads = new UploadService(db, membership, config)
  const writer = new MessageWriter(db, { batchMax: config.writerBatchMax, batchWaitMs: config.writerBatchWaitMs }, metrics, () =>
    hub.flushReplies(),
  )
  return {
    config,
    db,
    metrics,
    auth: new AuthService(db, tokens, new Passwords(config.argon2MemoryKib, config.argon2TimeCost), hub),
    users: new UserService(db),
    dialogs: new DialogService(db, membership, hub, blockCache),
    messages: new MessageService(db, writer, membership, hub, blockCache, uploads),
    membership,
    blocks: new BlockService(db, blockCache, hub),
    uploads,
    writer,
    hub,
    accepting: true,
  }
}

/** The HTTP application: buildable without listening, so tests can call `app.handle(request)`. */
export function createApp(core: Core) {
  const { config } = core
  return new Elysia()
    .use(edge(config.maxBodyBytes, core.metrics, isUploadRequest))
    .use(cors({ origin: config.corsOrigins === '*' ? true : config.corsOrigins }))
    .use(
      openapi({
        path: '/docs',
        documentation: { info: { title: 'Chat server', version: '1.0.0', description: 'REST half of CONTRACT.md' } },
      }),
    )
    .use(opsRoutes(core.db, core.metrics, { accepting: () => core.accepting }))
    .use(authRoutes(core.auth, { burst: config.authRateBurst, perSec: config.authRatePerSec }))
    .use(blockRoutes(core.auth, core.blocks))
    .use(uploadRoutes(core.auth, core.uploads))
    .use(userRoutes(core.auth, core.users))
    .use(dialogRoutes(core.auth, core.dialogs))
    .use(messageRoutes(core.auth, core.messages, { burst: config.sendRateBurst, perSec: config.sendRatePerSec }))
}

export type App = ReturnType<typeof createApp>
