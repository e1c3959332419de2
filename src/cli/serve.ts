import { createCore } from '../app'
import { Cluster } from '../cluster/cluster'
import type { Config } from '../config'
import { logFaultsTo } from '../log/fault'
import type { Logger } from '../log/logger'
import { startSessionCheck } from '../ops/session-check'
import { serve } from '../server'
import { openDatabase, type Db } from '../storage/database'
import { CliError, databaseFailure, redisFailure } from './fail'
import { markServing } from './running'

/** Seconds to wait for Postgres before saying it cannot be reached. */
export const DB_CONNECT_TIMEOUT_SEC = 5

/** Opens (and migrates) the configured database, or fails with one line naming DATABASE_URL. */
export async function open(config: Config): Promise<Db> {
  try {
    return await openDatabase(config.database, {
      sqliteSynchronous: config.sqliteSynchronous,
      pgPoolMax: config.pgPoolMax,
      connectTimeoutSec: DB_CONNECT_TIMEOUT_SEC,
      stallTimeoutMs: config.pgStallTimeoutMs,
    })
  } catch (error) {
    throw databaseFailure(config.database, error, DB_CONNECT_TIMEOUT_SEC)
  }
}

/** `serve`: every dependency first (database, Redis, the port), each failing with its own line; then runs until a signal. */
export async function runServer(config: Config, log: Logger): Promise<void> {
  logFaultsTo(log)
  const db = await open(config)
  const core = createCore(config, db, log)
  if (config.cluster) {
    try {
      core.hub.join(await Cluster.join(config.cluster, core.hub, core.metrics))
    } catch (error) {
      await db.close()
      throw redisFailure(config.cluster.redisUrl, error)
    }
  }
  let running
  try {
    running = serve(core, { port: config.port, hostname: config.host, reusePort: config.reusePort })
  } catch (error) {
    await core.hub.leave()
    await db.close()
    const code = (error as { code?: string }).code
    if (code === 'EADDRINUSE') throw new CliError(`PORT ${config.port} is in use (HOST ${config.host})`)
    if (code === 'EACCES') throw new CliError(`PORT ${config.port}: not allowed to listen on it (HOST ${config.host})`)
    throw new CliError(`PORT ${config.port} / HOST ${config.host}: cannot listen: ${(error as Error).message}`)
  }
  const unmark = config.database.dialect === 'sqlite' && config.database.path !== ':memory:' ? markServing(config.database.path) : () => {}
  const stopChecks = startSessionCheck(db, core.hub, config.sessionCheckMs)
  const stopSampling = core.metrics.sampleEventLoop()
  log.info(
    `chat server on ${running.url} (${config.database.dialect}${config.database.dialect === 'sqlite' ? ` ${config.database.path}` : ''}` +
      `${config.cluster ? `, cluster channel ${config.cluster.channel}` : ''})`,
  )

  const stop = (signal: string) => {
    log.info(`${signal}: shutting down`)
    stopChecks()
    stopSampling()
    const deadline = setTimeout(() => {
      log.error('shutdown took over 10 s; exiting')
      unmark()
      process.exit(1)
    }, 10_000)
    running.shutdown().then(
      () => {
        clearTimeout(deadline)
        unmark()
        process.exit(0)
      },
      (error) => {
        log.error('shutdown failed', { error: String(error) })
        unmark()
        process.exit(1)
      },
    )
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
}
