import { join } from 'node:path'
import type { Config } from '../config'
import type { Membership } from '../dialogs/membership'
import { AppError, invalidField, notFound } from '../errors'
import type { AttachmentDto } from '../messages/model'
import type { Db } from '../storage/database'
import { LocalBlobs, S3Blobs, type BlobStore, type BlobWriter } from './blobs'
import { boundaryOf, multipart } from './multipart'
import { isImage, sanitizeName, sniff, SNIFF_BYTES } from './sniff'
import {
  claimUpload,
  dialogOfAttachment,
  insertUpload,
  keyInUse,
  queuedBlobDeletes,
  sweepUnattached,
  unclaimUpload,
  unqueueBlobDelete,
  uploadById,
  type UploadRecord,
} from './store'
import { logFault } from '../log/fault'

export interface UploadDto {
  id: number
  name: string
  content_type: string
  size: number
  sha256: string
  created_at: string
}

/** Uploads never attached to a message are removed after this long. */
export const UNATTACHED_TTL_MS = 24 * 3600 * 1000
/** A claim this old whose message never committed belongs to a send that died: the upload goes too. */
export const STALE_CLAIM_MS = 3600 * 1000
const SWEEP_EVERY_MS = 3600 * 1000
/** Form fields other than `file` are read and dropped, up to this much. */
const MAX_OTHER_FIELDS_BYTES = 64 * 1024

const tooLarge = (limit: number) => new AppError('payload_too_large', `file over ${limit} bytes`)

/**
 * Attachments: uploads streamed into a blob store (hashed and sniffed on the way, never held whole),
 * claimed by one send, downloadable by the uploader and the members of the dialog they were sent in,
 * swept when never sent, released when their message is deleted.
 */
export class UploadService {
  readonly blobs: BlobStore
  /** Blob keys being committed or released: the two never interleave for one key (local keys are shared). */
  private readonly keyLocks = new Map<string, Promise<unknown>>()
  private sweeper: ReturnType<typeof setInterval> | undefined

  constructor(
    private readonly db: Db,
    private readonly membership: Membership,
    private readonly config: Pick<Config, 'uploadMaxBytes' | 's3' | 'dataDir'>,
  ) {
    this.blobs = config.s3 ? new S3Blobs(config.s3) : new LocalBlobs(join(config.dataDir, 'uploads'))
  }

  /** Sweeps now and then every hour (not keeping the process alive). */
  startSweeping(): void {
    const run = () => this.sweep().catch((error) => logFault('sweeping uploads failed', error))
    void run()
    this.sweeper ??= setInterval(run, SWEEP_EVERY_MS)
    this.sweeper.unref()
  }

  stopSweeping(): void {
    clearInterval(this.sweeper)
    this.sweeper = undefined
  }

  /** POST /uploads: the request's `file` part, streamed to the blob store. */
  async upload(userId: number, request: Request): Promise<UploadDto> {
    const boundary = boundaryOf(request.headers.get('content-type'))
    if (!boundary || !request.body) throw new AppError('bad_request', 'expected a multipart/form-data body with a part named "file"')
    const limit = this.config.uploadMaxBytes
    const declared = Number(request.headers.get('content-length') ?? 0)
    if (declared > limit + MAX_OTHER_FIELDS_BYTES) throw tooLarge(limit)
    // Sent chunked, a body declares no length: what is read is bounded alike.
    const body = bounded(request.body, limit + MAX_OTHER_FIELDS_BYTES, () => tooLarge(limit))

    const hasher = new Bun.CryptoHasher('sha256')
    let writer: BlobWriter | undefined
    let inFile = false
    let name = 'file'
    let size = 0
    let other = 0
    let head = new Uint8Array(0)
    try {
      for await (const event of multipart(body, boundary)) {
        if (event.kind === 'part') {
          if (event.name === 'file' && writer) throw invalidField('file', 'send one part named "file"')
          inFile = event.name === 'file'
          if (inFile) {
            name = sanitizeName(event.filename)
            writer = await this.blobs.begin()
          }
          continue
        }
        const chunk = event.chunk
        if (!inFile) {
          if ((other += chunk.byteLength) > MAX_OTHER_FIELDS_BYTES) throw tooLarge(limit)
          continue
        }
        if ((size += chunk.byteLength) > limit) throw tooLarge(limit)
        if (head.length < SNIFF_BYTES) head = Buffer.concat([head, chunk.subarray(0, SNIFF_BYTES - head.length)])
        hasher.update(chunk)
        await writer!.write(chunk)
      }
      if (!writer) throw invalidField('file', 'send one part named "file"')
      const sha256 = hasher.digest('hex')
      const w = writer
      const record = await this.locked(sha256, async () => {
        const storageKey = await w.commit(sha256)
        try {
          // Its WAL sync off the loop: the disk is busy with this and other uploads' files, and a sync inside
          // COMMIT held the event loop 9.5 ms at p90 and up to 155 ms under four concurrent uploads.
          return await this.db.tx(
            (s) => insertUpload(s, { uploaderId: userId, name, contentType: sniff(head), size, sha256, storageKey, createdAt: new Date() }),
            { syncOffLoop: true },
          )
        } catch (error) {
          await this.dropUncommitted(storageKey)
          throw error
        }
      })
      return toUploadDto(record)
    } catch (error) {
      await writer?.abort()
      throw error
    }
  }

  /** An upload its caller may download: the uploader, or a member of the dialog it was sent in; else not_found. */
  async forDownload(userId: number, uploadId: number): Promise<UploadRecord> {
    const upload = await this.db.read((s) => uploadById(s, uploadId))
    if (!upload) throw notFound('upload')
    if (upload.uploaderId === userId) return upload
    const dialogId = await this.db.read((s) => dialogOfAttachment(s, uploadId))
    if (dialogId === undefined) throw notFound('upload')
    // Not a member: the same answer as for no such upload.
    await Promise.resolve()
      .then(() => this.membership.require(dialogId, userId))
      .catch((error) => {
        throw error instanceof AppError && error.code === 'not_found' ? notFound('upload') : error
      })
    return upload
  }

  /**
   * Claims an upload for a send of `type` (image or file): its sender's own, not attached elsewhere, an
   * image type for `image`. Answers the Message `attachment` as stored with the message (JSON, no url).
   * One statement checks and claims, so a concurrent sweep either sees it claimed or has removed it first
   * (then it is no such upload, as for an id never uploaded).
   */
  async claim(
    senderId: number,
    uploadId: number,
    type: 'image' | 'file',
    send: { dialogId: number; clientMsgId: string },
  ): Promise<{ id: number; json: string }> {
    const at = new Date()
    const upload = await this.db.tx(function* (s) {
      const claimed = yield* claimUpload(s, { uploadId, uploaderId: senderId, ...send, at })
      if (!claimed) {
        const found = yield* uploadById(s, uploadId)
        throw found?.uploaderId === senderId
          ? invalidField('attachment_id', 'this upload is attached to another message')
          : invalidField('attachment_id', 'no such upload of yours')
      }
      // Thrown inside the transaction: the claim is rolled back.
      if (type === 'image' && !isImage(claimed.contentType))
        throw invalidField('attachment_id', `an image message needs an image; this upload is ${claimed.contentType}`)
      return claimed
    })
    const stored: Omit<AttachmentDto, 'url'> = { id: upload.id, name: upload.name, content_type: upload.contentType, size: upload.size }
    return { id: upload.id, json: JSON.stringify(stored) }
  }

  /** Gives back a claim whose send was a repeat of another message (which does not carry this upload). */
  async unclaim(uploadId: number, send: { dialogId: number; clientMsgId: string }): Promise<void> {
    await this.db.tx((s) => unclaimUpload(s, uploadId, send.dialogId, send.clientMsgId))
  }

  /**
   * Removes uploads no message carries — older than 24 h and never claimed, or claimed over an hour ago by
   * a send that died before its message committed — then the bytes queued for deletion (theirs, and those
   * whose delete failed before), and crashed writes' leftovers.
   */
  async sweep(now = new Date()): Promise<void> {
    const ago = (ms: number) => new Date(now.getTime() - ms)
    await this.db.tx((s) => sweepUnattached(s, ago(UNATTACHED_TTL_MS), ago(STALE_CLAIM_MS)))
    for (const key of await this.db.read(queuedBlobDeletes)) await this.dropBytes(key)
    await this.blobs.sweepPartial(SWEEP_EVERY_MS)
  }

  /**
   * Deletes a queued blob unless an upload committed meanwhile uses it again (checked under the key's lock),
   * then takes it off the queue. A message delete runs `releaseAttachment` in its own transaction
   * (MessageService.remove) and calls this with the key it answered, after the commit. Never throws: a delete
   * that fails (the bucket unavailable) is logged and the key stays queued for the next sweep.
   */
  dropBytes(key: string): Promise<void> {
    return this.locked(key, async () => {
      const stillUsed = await this.db.read((s) => keyInUse(s, key))
      if (!stillUsed) await this.blobs.delete(key)
      await this.db.tx((s) => unqueueBlobDelete(s, key))
    }).catch((error) => logFault('deleting the bytes of a removed upload failed (retried at the next sweep)', error))
  }

  /**
   * The bytes an upload committed to the store when its row then failed to commit: else they stay with
   * nothing pointing at them (no sweep looks for such files). Not deleted blindly: on disk keys are the
   * sha256, so an earlier upload of the same content shares this very file (the rename replaced it), and
   * its row must keep it; and a commit that failed late (the WAL's sync, a connection lost after COMMIT)
   * may have left our own row in. So the rows decide, as in `dropBytes`; the caller holds the key's lock,
   * so no other upload of these bytes commits between the check and the delete. If the check itself
   * fails (the database gone), the bytes are kept: a leftover file is better than a row without its file.
   */
  private async dropUncommitted(key: string): Promise<void> {
    try {
      const stillUsed = await this.db.read((s) => keyInUse(s, key))
      if (!stillUsed) await this.blobs.delete(key)
    } catch (error) {
      logFault('removing the bytes of an upload whose row failed', error)
    }
  }

  private locked<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.keyLocks.get(key) ?? Promise.resolve()
    const next = previous.then(work, work)
    const tail = next.catch(() => {})
    this.keyLocks.set(key, tail)
    void tail.then(() => {
      if (this.keyLocks.get(key) === tail) this.keyLocks.delete(key)
    })
    return next
  }
}

/**
 * The request body as read, refused past `max` bytes however they are spent (preamble, part headers, empty
 * parts). Reading it fails only when the client went away mid-body: theirs, not a fault (it is never answered).
 */
async function* bounded(body: ReadableStream<Uint8Array>, max: number, refuse: () => AppError): AsyncGenerator<Uint8Array> {
  let read = 0
  try {
    for await (const chunk of body) {
      if ((read += chunk.byteLength) > max) throw refuse()
      yield chunk
    }
  } catch (error) {
    throw error instanceof AppError ? error : new AppError('bad_request', 'upload cut short')
  }
}

export const toUploadDto = (u: UploadRecord): UploadDto => ({
  id: u.id,
  name: u.name,
  content_type: u.contentType,
  size: u.size,
  sha256: u.sha256,
  created_at: u.createdAt.toISOString(),
})
