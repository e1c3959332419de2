import type { ErrorCode } from './types'

/** `network`: the server could not be reached (or answered something that is not the contract's). */
export type ClientErrorCode = ErrorCode | 'network' | (string & {})

/** A failure with the contract's machine-readable code, from REST or from an `error` frame. */
export class ChatError extends Error {
  constructor(
    readonly code: ClientErrorCode,
    message: string,
    /** HTTP status; 0 for WebSocket errors and network failures. */
    readonly status = 0,
    readonly details?: Record<string, unknown>,
    /** Seconds to wait before retrying (`rate_limited`). */
    readonly retryAfter?: number,
  ) {
    super(message)
    this.name = 'ChatError'
  }
}
