import { existsSync, readdirSync, type Dirent } from 'node:fs'
import { join, relative } from 'node:path'

/** Files under DATA_DIR/uploads, outside its tmp/ (where writes in progress live): the bytes kept under real names. */
export function storedFiles(dataDir: string): string[] {
  const root = join(dataDir, 'uploads')
  if (!existsSync(root)) return []
  return (readdirSync(root, { recursive: true, withFileTypes: true }) as Dirent[])
    .filter((e) => e.isFile())
    .map((e) => relative(root, join(e.parentPath, e.name)))
    .filter((p) => !p.startsWith('tmp'))
}
