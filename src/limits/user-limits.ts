import { AppError } from '../errors'
import { KeyedRateLimit } from './token-bucket'

/** Close code for a connection over WS_MAX_CONNECTIONS_PER_USER (4000 + the HTTP status of rate limits). */
export const CLOSE_TOO_MANY_CONNECTIONS = 4429

/**
 * What one user may do on this node, whatever the wire or the number of devices: one send bucket shared by
 * REST sends and every connection's message:send / delivered / read, and at most `maxConnections`
 * authenticated connections. Per node: in a cluster a user's figures are these times the nodes they reach.
 */
export class UserLimits {
  private readonly sends: KeyedRateLimit<number>
  private readonly maxConnections: number
  private readonly connections = new Map<number, Set<object>>()

  constructor(options: { sendBurst: number; sendPerSec: number; maxConnections: number }) {
    this.sends = new KeyedRateLimit(options.sendBurst, options.sendPerSec)
    this.maxConnections = options.maxConnections
  }

  /** Takes one send from the user's bucket, or throws rate_limited with the seconds to wait. */
  takeSend(userId: number): void {
    const wait = this.sends.take(userId)
    if (wait > 0) throw new AppError('rate_limited', 'sending too fast', undefined, wait)
  }

  /**
   * Counts an authenticated connection (any wire's connection object) against the user's cap; throws
   * rate_limited when the user already has the maximum here. `release` forgets it.
   */
  admit(userId: number, connection: object): void {
    let open = this.connections.get(userId)
    if ((open?.size ?? 0) >= this.maxConnections)
      throw new AppError('rate_limited', `too many connections for this user (at most ${this.maxConnections})`)
    if (!open) this.connections.set(userId, (open = new Set()))
    open.add(connection)
  }

  release(userId: number, connection: object): void {
    const open = this.connections.get(userId)
    if (open?.delete(connection) && open.size === 0) this.connections.delete(userId)
  }
}
