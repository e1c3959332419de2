import { DrizzleQueryError } from 'drizzle-orm/errors'

/**
 * The database driver's own error: drizzle wraps what the driver threw (with the query and its
 * parameters) for statements it runs, such as a transaction's; anything else is returned as it is.
 */
export const driverError = (error: unknown): unknown =>
  error instanceof DrizzleQueryError && error.cause !== undefined ? error.cause : error
