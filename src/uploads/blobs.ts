import { S3Client, type BunFile } from 'bun'
import { randomUUID } from 'node:crypto'
import { closeSync, fdatasync, fsync, openSync, write } from 'node:fs'
import { mkdir, readdir, rename, stat, unlink } from 'node:fs/promises'
import { dirname, join } from 'node:path'

/** A blob being written: bytes in, then kept under a key (or thrown away). */
export interface BlobWriter {
  write(chunk: Uint8Array): Promise<void>
  /** Makes the bytes durable and visible under their key, which is returned. */
  commit(sha256: string): Promise<string>
  abort(): Promise<void>
}

/**
 * Where uploaded bytes live: the local disk or an S3-compatible bucket. Keys are the store's own; the
 * uploads table keeps them.
 */
export interface BlobStore {
  begin(): Promise<BlobWriter>
  /** Bytes [start, end) of a blob, as a response body streamed from the store. */
  read(key: string, start: number, end: number): Blob | ReadableStream
  /** The whole blob as a file, when the store has files: served with sendfile, ranges and all. */
  file?(key: string): BunFile
  delete(key: string): Promise<void>
  /** Removes what writes cut short by a crash left behind (older than `maxAgeMs`). */
  sweepPartial(maxAgeMs: number): Promise<void>
}

/** Writes are gathered to this size before going to the file: few system calls, bounded memory. */
const WRITE_BATCH = 1024 * 1024

/** A local blob's key: its sha256, in hex. */
export const isLocalBlobKey = (key: string) => /^[0-9a-f]{64}$/.test(key)

/** Where the local blob `key` lives under `dir` (`ab/abcdef…`); the backup's copy has the same layout. */
export function localBlobPath(dir: string, key: string): string {
  if (!isLocalBlobKey(key)) throw new Error(`not a blob key: ${key}`)
  return join(dir, key.slice(0, 2), key)
}

/**
 * DATA_DIR/uploads: content-addressed (`ab/abcdef…`, the sha256), so equal files are kept once. A blob is
 * written to `tmp/` and renamed into place after an fsync, so a crash never leaves part of a file under
 * a real name; what `tmp/` holds after a crash is swept. The rename is made durable by an fsync of the
 * directory before `commit` answers (so before the upload's row commits): else a power loss could undo
 * the rename under a committed row.
 */
export class LocalBlobs implements BlobStore {
  private readonly tmp: string
  /** Directories whose own entry this process has synced: `uploads/` and the `ab/` in it. */
  private readonly durableDirs = new Set<string>()

  constructor(private readonly dir: string) {
    this.tmp = join(dir, 'tmp')
  }

  async begin(): Promise<BlobWriter> {
    await mkdir(this.tmp, { recursive: true })
    const path = join(this.tmp, randomUUID())
    const fd = openSync(path, 'wx', 0o600)
    const file = new StagedFile(fd)
    let closed = false
    const close = () => {
      if (closed) return
      closed = true
      closeSync(fd)
    }
    return {
      write: (chunk) => file.write(chunk),
      commit: async (sha256) => {
        await file.end()
        await new Promise<void>((resolve, reject) => fdatasync(fd, (error) => (error ? reject(error) : resolve())))
        close()
        const target = this.pathOf(sha256)
        const shard = dirname(target)
        await this.durableDir(this.dir)
        await this.durableDir(shard)
        // Already there (the same bytes uploaded before): replacing it is harmless and atomic.
        await rename(path, target)
        // The rename is an entry of the directory, durable only once the directory is synced: one fsync per
        // upload (the file's data was synced above, before the rename), off the loop like the fdatasync.
        await syncDir(shard)
        return sha256
      },
      abort: async () => {
        // The pool may still be writing to the descriptor: closing it first could let its number be reused.
        await file.settle()
        try {
          close()
        } catch {
          // Already closed or never opened: nothing to release.
        }
        await unlink(path).catch(() => {})
      },
    }
  }

  /**
   * Makes `dir` (one level below an existing directory) and its entry in its parent durable: a file renamed
   * into an `ab/` whose own entry a power loss undid would be gone too. The parent is synced when `dir` is
   * made, and once per process anyway (another upload may have made it and not synced yet): at most 257
   * syncs per process, not one per upload.
   */
  private async durableDir(dir: string): Promise<void> {
    const made = await mkdir(dir, { recursive: true })
    if (made === undefined && this.durableDirs.has(dir)) return
    await syncDir(dirname(dir))
    this.durableDirs.add(dir)
  }

  read(key: string, start: number, end: number): Blob | ReadableStream {
    return this.file(key).slice(start, end)
  }

  file(key: string): BunFile {
    return Bun.file(this.pathOf(key))
  }

  async delete(key: string): Promise<void> {
    await unlink(this.pathOf(key)).catch((error) => {
      if (error?.code !== 'ENOENT') throw error
    })
  }

  async sweepPartial(maxAgeMs: number): Promise<void> {
    const names = await readdir(this.tmp).catch(() => [] as string[])
    const cutoff = Date.now() - maxAgeMs
    for (const name of names) {
      const path = join(this.tmp, name)
      const info = await stat(path).catch(() => undefined)
      if (info && info.mtimeMs < cutoff) await unlink(path).catch(() => {})
    }
  }

  private pathOf(key: string): string {
    return localBlobPath(this.dir, key)
  }
}

/**
 * fsync(2) of a directory, making the entries made in it (a rename, a new directory) durable. Some file
 * systems (FUSE, network ones) cannot sync a directory and say EINVAL or ENOTSUP: there it is skipped, as
 * databases do, rather than failing every upload.
 */
async function syncDir(dir: string): Promise<void> {
  const fd = openSync(dir, 'r')
  try {
    await new Promise<void>((resolve, reject) =>
      fsync(fd, (error) => (error && error.code !== 'EINVAL' && error.code !== 'ENOTSUP' ? reject(error) : resolve())),
    )
  } finally {
    closeSync(fd)
  }
}

/** Staging buffers whose write is done, kept for the next ones: a fresh megabyte is a megabyte of page faults. */
const spare: Buffer[] = []
const SPARE_MAX = 16
/** Writes in flight per file, while the next buffer fills (4 and 8 measured the same as 2). */
const IN_FLIGHT = 2

/**
 * A file written from the thread pool: chunks are copied into 1 MiB buffers, and each full buffer is written
 * at its offset by a thread of the pool while the next one fills. The kernel's copy into the page cache was
 * a quarter to a half of the event loop's time under four concurrent 10 MiB uploads (perf); written from the
 * pool, /health answered beside the uploads in 17–22 ms at the median instead of 36–39 (p99 88–97 against
 * 142–149 ms), at the same MiB/s.
 */
class StagedFile {
  private staging: Buffer | undefined
  private used = 0
  private offset = 0
  private readonly inFlight: Promise<void>[] = []
  private failed: unknown

  constructor(private readonly fd: number) {}

  async write(chunk: Uint8Array): Promise<void> {
    for (let at = 0; at < chunk.byteLength; ) {
      const n = Math.min(chunk.byteLength - at, WRITE_BATCH - this.used)
      this.staging ??= takeBuffer()
      this.staging.set(chunk.subarray(at, at + n), this.used)
      this.used += n
      at += n
      if (this.used === WRITE_BATCH) await this.flush()
    }
  }

  /** Writes what is staged and waits for every write, or throws the first write's error. */
  async end(): Promise<void> {
    if (this.used > 0) await this.flush()
    await this.settle()
    if (this.failed) throw this.failed
  }

  /** Waits for the writes in flight, whatever their outcome. */
  async settle(): Promise<void> {
    await Promise.all(this.inFlight.splice(0))
  }

  private async flush(): Promise<void> {
    if (this.failed) throw this.failed
    const buffer = this.staging!
    const length = this.used
    const position = this.offset
    this.offset += length
    this.staging = undefined
    this.used = 0
    const done = writeAt(this.fd, buffer, length, position).then(
      () => giveBuffer(buffer),
      (error) => {
        this.failed ??= error
      },
    )
    this.inFlight.push(done)
    if (this.inFlight.length >= IN_FLIGHT) await this.inFlight.shift()
  }
}

const takeBuffer = () => spare.pop() ?? Buffer.allocUnsafeSlow(WRITE_BATCH)
const giveBuffer = (buffer: Buffer) => {
  if (spare.length < SPARE_MAX) spare.push(buffer)
}

/** write(2) may write less than asked (a full disk, a signal): the rest goes in further calls, or it rejects. */
async function writeAt(fd: number, buffer: Buffer, length: number, position: number): Promise<void> {
  for (let at = 0; at < length; ) {
    const written = await new Promise<number>((resolve, reject) =>
      write(fd, buffer, at, length - at, position + at, (error, n) => (error ? reject(error) : resolve(n))),
    )
    at += written
  }
}

export interface S3Options {
  bucket: string
  endpoint?: string
  accessKeyId?: string
  secretAccessKey?: string
  region?: string
}

/**
 * An S3-compatible bucket through Bun's S3 client. Each upload goes straight to its own key as a multipart
 * upload (S3 has no rename, so keys are not content addresses here); an upload that fails or is refused
 * is aborted, and an object appears only when the upload completes.
 */
export class S3Blobs implements BlobStore {
  private readonly client: S3Client

  constructor(options: S3Options) {
    this.client = new S3Client(options)
  }

  async begin(): Promise<BlobWriter> {
    const key = `uploads/${randomUUID()}`
    // 5 MiB parts (S3's smallest but the last), two in flight: about 10 MiB buffered per upload.
    const sink = this.client.file(key).writer({ partSize: 5 * 1024 * 1024, queueSize: 2, retry: 1 })
    return {
      write: async (chunk) => {
        const written = sink.write(chunk)
        if (written instanceof Promise) await written
      },
      commit: async () => {
        await sink.end()
        return key
      },
      abort: async () => {
        try {
          await sink.end(new Error('upload refused'))
        } catch {
          // Ending with an error aborts the multipart upload; a rejection here is that abort.
        }
        await this.client.delete(key).catch(() => {})
      },
    }
  }

  read(key: string, start: number, end: number): Blob | ReadableStream {
    // A stream, not the S3File itself: Bun answers a returned S3File with a redirect to the bucket. Bun
    // 1.4.5 sends any streamed body chunked, dropping the Content-Length set for it (oven-sh/bun#10507).
    return this.client.file(key).slice(start, end).stream()
  }

  async delete(key: string): Promise<void> {
    await this.client.delete(key)
  }

  async sweepPartial(): Promise<void> {
    // Nothing is visible before an upload completes; incomplete multipart uploads are the bucket's
    // lifecycle rules' to expire.
  }
}
