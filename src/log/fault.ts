import { DrizzleQueryError } from 'drizzle-orm/errors'
import { driverError } from '../storage/driver-error'
import { Logger, type Fields } from './logger'

/**
 * Faults (errors nobody asked for: a failed query, a lost Redis write) are logged as one structured line,
 * through the server's logger once it has one. Until then, and in tests that build the app in-process,
 * they go to stderr as readable lines, so a fault is never silent.
 */
let sink = new Logger({ level: 'error', format: 'pretty' })

/** The logger faults go to from now on (the serving CLI's, with LOG_LEVEL and LOG_FORMAT); returns the one before. */
export function logFaultsTo(log: Logger): Logger {
  const before = sink
  sink = log
  return before
}

/** Logs `what` went wrong, with the error's fields (never its query parameters). */
export function logFault(what: string, error: unknown): void {
  sink.error(what, faultFields(error, sink.enabled('debug')))
}

/**
 * What a log line may say of an error. drizzle wraps a driver's error with the query and its
 * parameters, and the parameters hold message text, password hashes and tokens' hashes: only the SQL
 * and the driver's own error are kept. The stack only at LOG_LEVEL=debug.
 */
export function faultFields(error: unknown, withStack = false): Fields {
  const query = error instanceof DrizzleQueryError ? error.query : undefined
  const inner = driverError(error)
  if (!(inner instanceof Error)) return { error: typeof inner, reason: String(inner), query }
  const code = (inner as { code?: unknown }).code
  return {
    error: inner.name,
    reason: inner.message,
    code: typeof code === 'string' || typeof code === 'number' ? code : undefined,
    query,
    stack: withStack ? inner.stack : undefined,
  }
}

/** A warning about the outside world (a push service refusing), as a structured line. */
export function logWarning(what: string, fields?: Fields): void {
  sink.warn(what, fields)
}
