/**
 * SQLite's WAL checkpoints on a thread of their own. A checkpoint reads back every page the commits wrote
 * to the WAL and writes it into the database file, then syncs that file: with the writer's commits run on
 * the event loop, doing it inside the commit that passes the threshold cost the loop about a sixth of its
 * time in a 50 % soak (perf: the checkpoints' preads, pwrites and fsyncs), and stalled that commit's whole
 * batch. Here a second connection runs PASSIVE checkpoints, which never block the writer, every `everyMs`.
 * Every 500 ms, not 50: a page the commits write again and again (a busy dialog's index leaf) is copied
 * once per checkpoint, so fewer checkpoints copy less (measured in an 8-minute soak at 7 238 messages/s:
 * 15–19 against 21–27 KiB written per message, event-loop lag 4–19 against 8–23 ms). The WAL is longer
 * for it (~30 000 pages, 110 MiB, at that rate), so the main connection keeps automatic checkpoints at a
 * threshold above that (BACKSTOP_PAGES), in case this thread falls behind.
 */

/** The main connection's own checkpoint threshold, in WAL pages (SQLite's default is 1 000). */
export const BACKSTOP_PAGES = 40_000

// A module of its own would need to be one more entry point of `bun build --compile`; from a Blob it
// travels inside the binary as this string.
const WORKER = `
import { Database } from 'bun:sqlite'
let db, timer
self.onmessage = (event) => {
  const { kind, path, everyMs } = event.data
  if (kind === 'start') {
    db = new Database(path)
    db.exec('PRAGMA busy_timeout = 0')
    db.exec('PRAGMA synchronous = FULL')
    const checkpoint = db.query('PRAGMA wal_checkpoint(PASSIVE)')
    // A failed round (the file locked by a backup or a restore) is tried again the next; the backstop holds meanwhile.
    timer = setInterval(() => {
      try { checkpoint.get() } catch {}
    }, everyMs)
    postMessage('started')
  } else if (kind === 'stop') {
    clearInterval(timer)
    try { db?.close() } catch {}
    postMessage('stopped')
  }
}
`

export interface Checkpointer {
  stop(): Promise<void>
}

export async function startCheckpointer(path: string, everyMs = 500): Promise<Checkpointer> {
  const url = URL.createObjectURL(new Blob([WORKER], { type: 'application/javascript' }))
  const worker = new Worker(url)
  const reply = (expected: string) =>
    new Promise<void>((resolve, reject) => {
      worker.onmessage = (event) => (event.data === expected ? resolve() : undefined)
      worker.onerror = (event) => reject(new Error(`checkpointer: ${event.message}`))
    })
  const started = reply('started')
  worker.postMessage({ kind: 'start', path, everyMs })
  await started
  // The thread must not keep a process alive that has nothing else to do.
  worker.unref()
  let stopping: Promise<void> | undefined
  const stop = async () => {
    const stopped = reply('stopped')
    worker.postMessage({ kind: 'stop' })
    await stopped
    worker.terminate()
    URL.revokeObjectURL(url)
  }
  // Closing a database twice (shutdown, then a test's cleanup) must not wait for a thread that is gone.
  return { stop: () => (stopping ??= stop()) }
}
