import { createCore } from './app'
import { Cluster } from './cluster/cluster'
import { ConfigError, loadConfig } from './config'
import { serve } from './server'
import { openDatabase } from './storage/database'

let config
try {
  config = loadConfig()
} catch (error) {
  if (!(error instanceof ConfigError)) throw error
  console.error(`config error: ${error.message}`)
  process.exit(1)
}

const db = await openDatabase(config.database, {
  sqliteSynchronous: config.sqliteSynchronous,
  pgPoolMax: config.pgPoolMax,
})
const core = createCore(config, db)
if (config.cluster) core.hub.join(await Cluster.join(config.cluster, core.hub))
const running = serve(core, { port: config.port, hostname: config.host, reusePort: config.reusePort })
console.log(
  `chat server on ${running.url} (${config.database.dialect}${config.database.dialect === 'sqlite' ? ` ${config.database.path}` : ''}` +
    `${config.cluster ? `, cluster channel ${config.cluster.channel}` : ''})`,
)

const stop = (signal: string) => {
  console.log(`${signal}: shutting down`)
  const deadline = setTimeout(() => process.exit(1), 10_000)
  running.shutdown().then(
    () => {
      clearTimeout(deadline)
      process.exit(0)
    },
    (error) => {
      console.error('shutdown failed:', error)
      process.exit(1)
    },
  )
}
process.on('SIGTERM', () => stop('SIGTERM'))
process.on('SIGINT', () => stop('SIGINT'))
