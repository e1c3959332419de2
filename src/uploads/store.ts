import { and, eq, inArray, isNull, lt, notExists, or, sql } from 'drizzle-orm'
import { exec, rows, type Routine, type Scope } from '../storage/database'

export interface UploadRecord {
  id: number
  uploaderId: number
  name: string
  contentType: string
  size: number
  sha256: string
  storageKey: string
  createdAt: Date
  dialogId: number | null
  clientMsgId: string | null
}

const columns = ({ t }: Scope) => ({
  id: t.uploads.id,
  uploaderId: t.uploads.uploaderId,
  name: t.uploads.name,
  contentType: t.uploads.contentType,
  size: t.uploads.size,
  sha256: t.uploads.sha256,
  storageKey: t.uploads.storageKey,
  createdAt: t.uploads.createdAt,
  dialogId: t.uploads.dialogId,
  clientMsgId: t.uploads.clientMsgId,
})

export function* insertUpload(
  scope: Scope,
  upload: Omit<UploadRecord, 'id' | 'dialogId' | 'clientMsgId'>,
): Routine<UploadRecord> {
  const [row] = yield* rows(scope.db.insert(scope.t.uploads).values(upload).returning(columns(scope)))
  return row!
}

export function* uploadById(scope: Scope, id: number): Routine<UploadRecord | undefined> {
  const [row] = yield* rows(scope.db.select(columns(scope)).from(scope.t.uploads).where(eq(scope.t.uploads.id, id)))
  return row
}

/** The dialog of the message that carries the upload, if one does. */
export function* dialogOfAttachment({ db, t }: Scope, uploadId: number): Routine<number | undefined> {
  const [row] = yield* rows(db.select({ dialogId: t.messages.dialogId }).from(t.messages).where(eq(t.messages.attachmentId, uploadId)))
  return row?.dialogId
}

/**
 * Claims an upload for one send in one statement: its uploader's, not claimed yet, or claimed by this very
 * send (a retry). Answers the upload, or undefined when another send has it or it is gone (swept).
 */
export function* claimUpload(
  scope: Scope,
  claim: { uploadId: number; uploaderId: number; dialogId: number; clientMsgId: string; at: Date },
): Routine<UploadRecord | undefined> {
  const u = scope.t.uploads
  const [claimed] = yield* rows(
    scope.db
      .update(u)
      .set({ dialogId: claim.dialogId, clientMsgId: claim.clientMsgId, claimedAt: claim.at })
      .where(
        and(
          eq(u.id, claim.uploadId),
          eq(u.uploaderId, claim.uploaderId),
          or(isNull(u.dialogId), and(eq(u.dialogId, claim.dialogId), eq(u.clientMsgId, claim.clientMsgId))),
        ),
      )
      .returning(columns(scope)),
  )
  return claimed
}

/** Gives a claim back (its send turned out to be a repeat of another message). */
export function* unclaimUpload({ db, t }: Scope, uploadId: number, dialogId: number, clientMsgId: string): Routine<void> {
  const u = t.uploads
  yield* exec(
    db
      .update(u)
      .set({ dialogId: null, clientMsgId: null, claimedAt: null })
      .where(and(eq(u.id, uploadId), eq(u.dialogId, dialogId), eq(u.clientMsgId, clientMsgId))),
  )
}

/**
 * Detaches a message's attachment and deletes its upload row; answers the storage key when no other
 * upload still uses those bytes (so they can go: queued in `blob_deletes`), else undefined.
 */
export function* releaseAttachment(scope: Scope, messageId: number): Routine<string | undefined> {
  const { db, t } = scope
  const [message] = yield* rows(db.select({ uploadId: t.messages.attachmentId }).from(t.messages).where(eq(t.messages.id, messageId)))
  if (!message?.uploadId) return undefined
  yield* exec(db.update(t.messages).set({ attachmentId: null, attachment: null }).where(eq(t.messages.id, messageId)))
  const gone = yield* rows(db.delete(t.uploads).where(eq(t.uploads.id, message.uploadId)).returning({ key: t.uploads.storageKey }))
  const [unused] = yield* unusedKeys(scope, gone.map((g) => g.key))
  if (unused) yield* queueBlobDeletes(scope, [unused])
  return unused
}

/**
 * Deletes the uploads no message carries that were created before `cutoff` and never claimed, or claimed
 * before `claimCutoff` by a send whose message never committed (its process died mid-send: a send that
 * fails gives its claim back); queues for deletion the storage keys no upload uses any more. The claim is
 * checked in this very statement, as `claimUpload` checks that the row is there: a send claiming an old
 * upload either claims it first (the sweep leaves it) or finds it gone (not found), never a message carrying
 * a deleted upload. `claimCutoff` is far longer ago than any send takes, so no live send loses its claim.
 */
export function* sweepUnattached(scope: Scope, cutoff: Date, claimCutoff: Date): Routine<void> {
  const { db, t } = scope
  const u = t.uploads
  const gone = yield* rows(
    db
      .delete(u)
      .where(
        and(
          or(and(lt(u.createdAt, cutoff), isNull(u.dialogId)), lt(u.claimedAt, claimCutoff)),
          notExists(db.select({ one: sql`1` }).from(t.messages).where(eq(t.messages.attachmentId, u.id))),
        ),
      )
      .returning({ key: t.uploads.storageKey }),
  )
  yield* queueBlobDeletes(scope, yield* unusedKeys(scope, [...new Set(gone.map((g) => g.key))]))
}

/** Bytes to delete, in the transaction that removed their last row: none is forgotten if its delete fails. */
function* queueBlobDeletes({ db, t }: Scope, keys: string[]): Routine<void> {
  if (keys.length === 0) return
  yield* exec(db.insert(t.blobDeletes).values(keys.map((storageKey) => ({ storageKey }))).onConflictDoNothing())
}

/** The keys queued for deletion and not deleted yet. */
export function* queuedBlobDeletes({ db, t }: Scope): Routine<string[]> {
  return (yield* rows(db.select({ key: t.blobDeletes.storageKey }).from(t.blobDeletes))).map((r) => r.key)
}

/** Done with a queued key: its bytes are deleted, or an upload uses them again. */
export function* unqueueBlobDelete({ db, t }: Scope, key: string): Routine<void> {
  yield* exec(db.delete(t.blobDeletes).where(eq(t.blobDeletes.storageKey, key)))
}

export function* keyInUse(scope: Scope, key: string): Routine<boolean> {
  return (yield* unusedKeys(scope, [key])).length === 0
}

function* unusedKeys({ db, t }: Scope, keys: string[]): Routine<string[]> {
  if (keys.length === 0) return []
  const used = yield* rows(db.selectDistinct({ key: t.uploads.storageKey }).from(t.uploads).where(inArray(t.uploads.storageKey, keys)))
  const stillUsed = new Set(used.map((u) => u.key))
  return keys.filter((k) => !stillUsed.has(k))
}
