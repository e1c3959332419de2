import type { AppError } from '../errors'
import { errorFrame, type RawFrame } from './protocol'

/**
 * How frames are written on one kind of connection. Everything above the wire speaks our JSON frames
 * (text, `type` first); a wire turns them into its own text once per publish, not once per subscriber.
 */
export interface Wire {
  /** The wire's subscribers listen on `prefix + topic`, so that each gets the text of its own wire. */
  readonly prefix: string
  /** A server frame pushed to the client (message:new, typing, …). */
  event(frame: string): string
  /** The answer to a client frame (message:ack to message:send, pong to ping, auth:ok to auth). */
  answer(frame: string, request: RawFrame | undefined): string
  /** A client frame failed (or the connection must go: unauthorized). */
  failure(error: AppError, request: RawFrame | undefined): string
  /**
   * A client frame that has no answer of its own was acted on: what the client is told, if anything.
   * `event`: the frame the action published to everyone, this connection included (message:edited),
   * whose payload is the confirmation; else a bare `ok`.
   */
  done(request: RawFrame, event?: string): string | undefined
}

/** Our own protocol: frames are sent as they are. */
export const jsonWire: Wire = {
  prefix: '',
  event: (frame) => frame,
  answer: (frame) => frame,
  failure: (error, request) => errorFrame(error, request),
  done: () => undefined,
}
