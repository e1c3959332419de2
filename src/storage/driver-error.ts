import { DrizzleQueryError } from 'drizzle-orm/errors'

/**
 * The database driver's own error: drizzle wraps what the driver threw (with the query and its
 * parameters) for statements it runs, such as a transaction's; anything else is returned as it is.
 */
export const driverError = (error: unknown): unknown =>
  error instanceof DrizzleQueryError && error.cause !== undefined ? error.cause : error

/** Codes of a database that could not be reached at all: the statement never left, so nothing committed. */
const NEVER_REACHED = new Set(['ECONNREFUSED', 'CONNECT_TIMEOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH'])

/** The database could not be reached (see NEVER_REACHED): no retry of a batch's items one by one can help now. */
export const unreachable = (error: unknown): boolean => {
  const code = (driverError(error) as { code?: unknown } | undefined)?.code
  return typeof code === 'string' && NEVER_REACHED.has(code)
}
