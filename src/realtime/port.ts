import type { DialogDto } from '../dialogs/model'
import type { DeletedEvent, MessageDto, ReactionsEvent, StatusEvent } from '../messages/model'

/** A connection that caused an event: it gets an ack instead of the broadcast. */
export type Origin = unknown

/**
 * What the REST services need from the realtime layer: presence to show, events to fan out.
 * The WebSocket hub implements it (and publishes nothing until a server is attached).
 */
export interface RealtimePort {
  isOnline(userId: number): boolean
  messageNew(message: MessageDto, origin?: Origin): void
  status(event: StatusEvent, origin?: Origin): void
  /** Changes to a sent message go to every connection of both members, the acting one included. */
  messageEdited(message: MessageDto): void
  messageDeleted(event: DeletedEvent): void
  reactions(event: ReactionsEvent): void
  /** Resolves once every node has subscribed the members' connections (bounded: see Cluster.applied). */
  dialogNew(dialogId: number, views: { userId: number; dialog: DialogDto }[]): Promise<void>
  /**
   * A session was revoked (logout, refresh token reuse): its live connections close. Resolves once every
   * node has forgotten it (bounded: see Cluster.applied).
   */
  sessionEnded(sessionId: string): Promise<void>
  /** A block between two users changed: every node's block cache forgets it (resolves once told). */
  blocksChanged(a: number, b: number): Promise<void>
  /** Tells `userId`'s connections, on every node, the presence of `about` as they may now see it. */
  presenceTo(userId: number, about: number, online: boolean, lastSeenAt: Date | null): void
}
