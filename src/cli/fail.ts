import { ConfigError, redact, redactIn, type DatabaseTarget } from '../config'
import { RedisUnreachable, REDIS_CONNECT_TIMEOUT_MS } from '../cluster/cluster'

/** A failure the CLI reports as its one line (already naming the variable or the command's argument). */
export class CliError extends Error {}

const reason = (error: unknown) => {
  const e = error as { code?: unknown; message?: unknown }
  const message = typeof e?.message === 'string' && e.message ? e.message : String(error)
  return typeof e?.code === 'string' && !message.includes(e.code) ? `${message} (${e.code})` : message
}

/** A database that could not be opened or migrated, said with the variable and what was tried. */
export function databaseFailure(target: DatabaseTarget, error: unknown, timeoutSec: number): CliError {
  if (target.dialect === 'sqlite') return new CliError(`DATABASE_URL: cannot open SQLite database ${target.path}: ${reason(error)}`)
  const code = (error as { code?: unknown })?.code
  // The URL's password is masked wherever it shows: in the URL and in the driver's message.
  const where = redact(target.url)
  const why = redactIn(reason(error), target.url)
  if (code === 'CONNECT_TIMEOUT' || code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EHOSTUNREACH')
    return new CliError(`DATABASE_URL: cannot connect to ${where} within ${timeoutSec} s: ${why}`)
  return new CliError(`DATABASE_URL: ${where}: ${why}`)
}

export function redisFailure(url: string, error: unknown): CliError {
  return new CliError(
    `REDIS_URL: cannot connect to ${redact(url)} within ${REDIS_CONNECT_TIMEOUT_MS / 1000} s: ${redactIn(error instanceof RedisUnreachable ? error.message : reason(error), url)}`,
  )
}

/** The one line for any failure; unexpected ones keep their stack for LOG_LEVEL=debug. */
export function describe(error: unknown): { line: string; stack?: string } {
  if (error instanceof ConfigError) return { line: `config error: ${error.message}` }
  if (error instanceof CliError) return { line: error.message, stack: error.stack }
  return { line: `error: ${reason(error)}`, stack: error instanceof Error ? error.stack : undefined }
}
