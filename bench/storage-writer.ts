import { MessageWriter } from '../src/messages/writer'
import { Metrics } from '../src/ops/metrics'
import { openDatabase } from '../src/storage/database'
import type { Seeded } from './storage-setup'

export interface WriterBenchOptions {
  synchronous: 'FULL' | 'NORMAL'
  /** Sends committed per transaction (the writer's batch bound; this many are submitted at once). */
  batch: number
  total: number
}

/** The project's group-commit writer, driven with `batch` sends at a time. */
export async function benchWriter(seeded: Seeded, o: WriterBenchOptions): Promise<{ messagesPerSec: number; meanBatch: number }> {
  const db = await openDatabase(seeded.target, { sqliteSynchronous: o.synchronous })
  try {
    const metrics = new Metrics()
    const writer = new MessageWriter(db, { batchMax: o.batch, batchWaitMs: 0 }, metrics)
    const text = 'x'.repeat(64)
    const { dialogs } = seeded
    let n = 0
    const started = performance.now()
    while (n < o.total) {
      const round: Promise<unknown>[] = []
      for (let i = 0; i < o.batch && n < o.total; i++, n++) {
        const d = dialogs[n % dialogs.length]!
        round.push(writer.submit({ dialogId: d.id, senderId: d.sender, clientMsgId: `w${n}`, type: 'text', text }))
      }
      await Promise.all(round)
    }
    const seconds = (performance.now() - started) / 1000
    const batches = Number(/chat_write_batch_size_count (\d+)/.exec(metrics.render())?.[1] ?? 1)
    return { messagesPerSec: o.total / seconds, meanBatch: Math.round((o.total / batches) * 10) / 10 }
  } finally {
    await db.close()
  }
}
