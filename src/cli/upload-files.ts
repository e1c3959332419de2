/*
 * The attachments' bytes for `backup` and `restore`. They live in DATA_DIR/uploads, named by their sha256
 * (`ab/abcdef…`), outside the database: a backup of the database alone would bring back messages whose
 * files a delete has since removed. Beside a backup file goes an `uploads/` folder of the same layout,
 * shared by every backup in that folder (a name is its content, so a file there is never replaced), filled
 * with hard links where the two folders share a filesystem and copies where they do not.
 */
import { Database as SqliteDriver } from 'bun:sqlite'
import { closeSync, copyFileSync, existsSync, fsyncSync, linkSync, mkdirSync, openSync, renameSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { Config } from '../config'

export interface FilesCopied {
  /** Files now in place that were not before. */
  copied: number
  /** Files the database names that the source did not have (deleted since the snapshot, or lost before it). */
  missing: number
  /** The folder they went to. */
  into: string
}

/** Where a backup's attachments are: `uploads/` beside the backup file. */
export const backupUploadsDir = (backupFile: string) => join(dirname(backupFile), 'uploads')

/** Local attachments only: a bucket (S3_BUCKET) keeps its objects itself, and is backed up on its side. */
export const localUploadsDir = (config: Config) => (config.s3 ? undefined : join(config.dataDir, 'uploads'))

/**
 * Puts in `into` every file the database `db` names that is in `from` and not yet in `into`. `durable`: each
 * file and its folder are synced before this returns (a restore: the server will rely on them).
 */
export function copyUploads(db: string, from: string, into: string, durable: boolean): FilesCopied {
  const result: FilesCopied = { copied: 0, missing: 0, into }
  for (const key of storageKeys(db)) {
    const target = blobPath(into, key)
    if (existsSync(target)) continue
    const source = blobPath(from, key)
    if (!existsSync(source)) {
      result.missing++
      continue
    }
    mkdirSync(dirname(target), { recursive: true })
    place(source, target, durable)
    result.copied++
  }
  if (durable && result.copied > 0) sync(into)
  return result
}

function storageKeys(path: string): string[] {
  const db = new SqliteDriver(path, { readonly: true })
  try {
    return db
      .query<{ key: string }, []>('SELECT DISTINCT storage_key AS key FROM uploads')
      .all()
      .map((r) => r.key)
      .filter((key) => /^[0-9a-f]{64}$/.test(key))
  } finally {
    db.close()
  }
}

const blobPath = (dir: string, key: string) => join(dir, key.slice(0, 2), key)

/** A hard link (no bytes copied) or, across filesystems, a copy written aside and renamed into place. */
function place(source: string, target: string, durable: boolean): void {
  try {
    linkSync(source, target)
  } catch (error) {
    if ((error as { code?: string }).code !== 'EXDEV') throw error
    const staging = `${target}.partial`
    copyFileSync(source, staging)
    if (durable) sync(staging)
    renameSync(staging, target)
  }
  if (durable) sync(dirname(target))
}

/** fsync(2) of a file or a folder (a folder's entries: a new link, a rename). */
function sync(path: string): void {
  const fd = openSync(path, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}
