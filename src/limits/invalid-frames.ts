import { TokenBucket } from './token-bucket'

/** Close code for a connection that keeps sending invalid frames (WebSocket's "policy violation"). */
export const CLOSE_POLICY_VIOLATION = 1008

// Generous for a client with a bug (each refusal still gets its error frame), short for a flood: answering
// garbage costs the server a parse and an error frame each, which other clients' latency pays for.
const INVALID_FRAME_BURST = 50
const INVALID_FRAMES_PER_SEC = 10

/** Frames refused as invalid (bad_request, validation_failed), budgeted per connection of any wire. */
export class InvalidFrames {
  private readonly budgets = new WeakMap<object, TokenBucket>()

  /** Counts one invalid frame of `connection`; false once it has spent its budget: close it with 1008. */
  take(connection: object): boolean {
    let budget = this.budgets.get(connection)
    if (!budget) this.budgets.set(connection, (budget = new TokenBucket(INVALID_FRAME_BURST, INVALID_FRAMES_PER_SEC)))
    return budget.take() === 0
  }
}
