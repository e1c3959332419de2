import { resolve } from 'node:path'
import pkg from '../../package.json'
import { ConfigError, isProduction, loadConfig, type Config } from '../config'
import type { DotenvResult } from '../config/dotenv'
import { Logger, logOptions } from '../log/logger'
import { backup, restore, restoredLine } from './database-files'
import { CliError, describe } from './fail'
import { backupUploadsDir, copyUploads, localUploadsDir, type FilesCopied } from './upload-files'
import { open, runServer } from './serve'
import { USER_ACTIONS, userCommand } from './users'

export const HELP = `chat-server ${pkg.version}: a 1:1 chat server (REST + WebSocket)

Usage: chat-server [command] [arguments]

Commands:
  serve                          run the server (the default); migrations are applied first
  migrate                        apply pending migrations and exit
  backup <file>                  write a consistent copy of the running SQLite database to <file>, and
                                 the attachments' files to uploads/ beside it (Postgres: use pg_dump)
  restore <file>                 replace the SQLite database with a backup, and put back the attachments'
                                 files from uploads/ beside it; only while no server runs
  user create <username>         create a user; the password is read from the terminal or stdin
  user reset-password <username> set a new password (read likewise), end the user's sessions, enable
  user disable <username>        refuse the user's logins, end its sessions and close its sockets

Options:
  -h, --help                     this text
  -v, --version                  the version

Configuration comes from the environment and a .env file (PORT, DATABASE_URL, REDIS_URL, LOG_LEVEL, …;
see the README). A failure prints one line naming what failed and exits with status 1 (2 for usage).
`

/** What `backup` and `restore` did with the attachments' files, for their one line. */
const filesLine = (files: FilesCopied | undefined, done: string) => {
  if (!files) return '; attachments are in the S3 bucket, which is not copied: back it up on its side'
  if (files.copied === 0 && files.missing === 0) return ''
  const missing = files.missing > 0 ? ` (${files.missing} named by the database were not found: their downloads answer 404)` : ''
  return `; ${files.copied} attachment file(s) ${done} ${files.into}${missing}`
}

/** Runs one command; resolves with the exit status, except for `serve`, which runs until a signal. */
/** `dotenv`: what reading `.env` said (src/index.ts reads it first), told through the log once it is set up. */
export async function main(argv: string[], dotenv: DotenvResult = { warnings: [] }): Promise<number | 'serving'> {
  if (argv.includes('-h') || argv.includes('--help') || argv[0] === 'help') {
    process.stdout.write(HELP)
    return 0
  }
  if (argv.includes('-v') || argv.includes('--version') || argv[0] === 'version') {
    process.stdout.write(`${pkg.version}\n`)
    return 0
  }
  const [command = 'serve', ...args] = argv
  const usage = USAGE[command]
  if (!usage) return usageError(`unknown command "${command}"`)
  if (args.length !== usage.args) return usageError(`${command}: expected ${usage.text}`)
  // Before the configuration or the database is touched: a mistyped action changes nothing.
  if (usage.actions && !usage.actions.includes(args[0]!)) return usageError(`${command}: unknown action "${args[0]}", expected ${usage.text}`)

  let log = new Logger({ level: 'info', format: 'pretty' })
  try {
    log = new Logger(logOptions(process.env, isProduction(process.env)))
    if (dotenv.failure) throw new CliError(dotenv.failure)
    for (const warning of dotenv.warnings) log.warn(warning)
    const config = loadConfig()
    switch (command) {
      case 'serve':
        await runServer(config, log)
        return 'serving'
      case 'migrate': {
        const db = await open(config)
        await db.close()
        log.info(`migrations applied to ${where(config)}`)
        return 0
      }
      case 'backup': {
        const written = backup(config, args[0]!)
        const uploads = localUploadsDir(config)
        const files = uploads === undefined ? undefined : copyUploads(written, uploads, backupUploadsDir(written), false)
        log.info(`backup written to ${written}${filesLine(files, 'added to')}`)
        return 0
      }
      case 'restore': {
        const restored = restore(config, args[0]!)
        const uploads = localUploadsDir(config)
        const files = uploads === undefined ? undefined : copyUploads(restored.restored, backupUploadsDir(resolve(args[0]!)), uploads, true)
        log.info(`${restoredLine(restored)}${filesLine(files, 'put back in')}`)
        return 0
      }
      case 'user': {
        const db = await open(config)
        try {
          log.info(await userCommand(config, db, log, args[0]!, args[1]!))
        } finally {
          await db.close()
        }
        return 0
      }
    }
    return usageError(`unknown command "${command}"`)
  } catch (error) {
    const { line, stack } = describe(error)
    writeFailure(log, line)
    if (stack && log.enabled('debug') && !(error instanceof ConfigError)) process.stderr.write(`${stack}\n`)
    return 1
  }
}

const USAGE: Record<string, { args: number; text: string; actions?: readonly string[] }> = {
  serve: { args: 0, text: 'no arguments' },
  migrate: { args: 0, text: 'no arguments' },
  backup: { args: 1, text: 'backup <file>' },
  restore: { args: 1, text: 'restore <file>' },
  user: { args: 2, text: `user ${USER_ACTIONS.join('|')} <username>`, actions: USER_ACTIONS },
}

function usageError(message: string): number {
  process.stderr.write(`${message}; see chat-server --help\n`)
  return 2
}


const where = (config: Config) => (config.database.dialect === 'sqlite' ? config.database.path : 'Postgres')

/** The failure's one line: plain text, or a JSON line when logs are JSON (a collector reads those). */
function writeFailure(log: Logger, line: string): void {
  process.stderr.write(
    log.options.format === 'json' ? `${JSON.stringify({ time: new Date().toISOString(), level: 'fatal', msg: line })}\n` : `${line}\n`,
  )
}

