import { createCore } from './app'
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
const running = serve(createCore(config, db), { port: config.port, hostname: config.host })
console.log(
  `chat server on ${running.url} (${config.database.dialect}${config.database.dialect === 'sqlite' ? ` ${config.database.path}` : ''})`,
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
