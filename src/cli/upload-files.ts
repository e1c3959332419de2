/*
 * The attachments' bytes for `backup` and `restore`. They live in DATA_DIR/uploads, named by their sha256
 * (`ab/abcdef…`), outside the database: a backup of the database alone would bring back messages whose
 * files a delete has since removed. Beside a backup file goes an `uploads/` folder of the same layout,
 * shared by every backup in that folder (a name is its content, so a file there is never replaced), filled
 * with hard links where the two folders share a filesystem and copies where they do not.
 */
import { Database as SqliteDriver } from 'bun:sqlite'
import { copyFileSync, existsSync, linkSync, mkdirSync, renameSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { Config } from '../config'
import { isLocalBlobKey, localBlobPath } from '../uploads/blobs'
import { sync } from './database-files'

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
  // The folders that gained an entry: each synced once, at the end.
  const changed = new Set<string>()
  for (const key of storageKeys(db)) {
    const target = localBlobPath(into, key)
    if (existsSync(target)) continue
    const source = localBlobPath(from, key)
    if (!existsSync(source)) {
      result.missing++
      continue
    }
    mkdirSync(dirname(target), { recursive: true })
    place(source, target, durable)
    changed.add(dirname(target))
    result.copied++
  }
  if (durable && result.copied > 0) for (const dir of [...changed, into]) sync(dir)
  return result
}

function storageKeys(path: string): string[] {
  const db = new SqliteDriver(path, { readonly: true })
  try {
    return db
      .query<{ key: string }, []>('SELECT DISTINCT storage_key AS key FROM uploads')
      .all()
      .map((r) => r.key)
      .filter(isLocalBlobKey)
  } finally {
    db.close()
  }
}

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
}
