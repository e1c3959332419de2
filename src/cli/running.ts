import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

/**
 * Which servers have a SQLite database open: each one leaves `<db>.servers/<pid>` holding its process
 * start time, removed when it stops. A file whose process is gone, or whose pid now belongs to a process
 * that started at another time (pid reuse), is stale. `restore` refuses while any live one remains.
 */
const dirOf = (dbPath: string) => `${dbPath}.servers`

/** The kernel's start time of a process (clock ticks since boot): with the pid, it names one process. */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Field 22; the command name (field 2) may hold spaces, so count from after its closing parenthesis.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
  } catch {
    return undefined
  }
}

function alive(pid: number, started: string): boolean {
  try {
    process.kill(pid, 0)
  } catch (error) {
    // EPERM: it exists, under another user.
    if ((error as { code?: string }).code !== 'EPERM') return false
  }
  const now = startTime(pid)
  // Without /proc (not Linux) the pid alone has to do.
  return now === undefined || now === started
}

/** Records this process as serving the database; the returned function removes the record. */
export function markServing(dbPath: string): () => void {
  const dir = dirOf(dbPath)
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const file = join(dir, String(process.pid))
  writeFileSync(file, startTime(process.pid) ?? '', { mode: 0o600 })
  return () => rmSync(file, { force: true })
}

/** The pids of live servers of the database (stale records are removed on the way). */
export function servingPids(dbPath: string): number[] {
  const dir = dirOf(dbPath)
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch {
    return []
  }
  const live: number[] = []
  for (const name of names) {
    const pid = Number(name)
    if (!Number.isSafeInteger(pid) || pid <= 0) continue
    let started = ''
    try {
      started = readFileSync(join(dir, name), 'utf8').trim()
    } catch {
      continue
    }
    if (alive(pid, started)) live.push(pid)
    else rmSync(join(dir, name), { force: true })
  }
  return live
}
