/**
 * `bench search`: full-text search over many messages. The database is seeded with raw inserts (the
 * FTS triggers and the GIN index do their work as for any insert), then the project's SearchService
 * answers queries of one or two word prefixes, one at a time, for a fixed time: queries per second and
 * latency percentiles, as the member of one dialog and as a user in every dialog (the widest search).
 */
import { Database } from 'bun:sqlite'
import postgres from 'postgres'
import { Membership } from '../src/dialogs/membership'
import { INDEX_NEW_MESSAGES } from '../src/search/fts.sqlite'
import { SearchService } from '../src/search/service'
import { openDatabase } from '../src/storage/database'
import { seededDatabase, type Seeded } from './storage-setup'

export interface SearchBenchResult {
  dialect: 'sqlite' | 'pg'
  messages: number
  dialogs: number
  seedSeconds: number
  oneDialog: { qps: number; p50: number; p99: number; meanHits: number }
  allDialogs: { qps: number; p50: number; p99: number; meanHits: number }
}

// A deterministic vocabulary: Latin and Cyrillic pseudo-words, so prefixes match a realistic spread.
function vocabulary(size: number): string[] {
  let seed = 42
  const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff)
  const latin = 'abcdefghijklmnopqrstuvwxyz'
  const cyrillic = 'абвгдежзийклмнопрстуфхцчшщыэюя'
  return Array.from({ length: size }, (_, i) => {
    const letters = i % 5 === 0 ? cyrillic : latin
    return Array.from({ length: 4 + Math.floor(rand() * 6) }, () => letters[Math.floor(rand() * letters.length)]).join('')
  })
}

const WORDS_PER_MESSAGE = 8
const BATCH = 5_000

function textOf(words: string[], n: number): string {
  const out: string[] = []
  for (let k = 0; k < WORDS_PER_MESSAGE; k++) out.push(words[(n * 7919 + k * 104729 + ((n * k) % 9973)) % words.length]!)
  return out.join(' ')
}

async function seed(seeded: Seeded, total: number, words: string[]): Promise<void> {
  const { dialogs } = seeded
  const seqs = new Map<number, number>()
  const next = (n: number) => {
    const d = dialogs[n % dialogs.length]!
    const seq = (seqs.get(d.id) ?? 0) + 1
    seqs.set(d.id, seq)
    return { d, seq }
  }
  if (seeded.target.dialect === 'sqlite') {
    const db = new Database(seeded.target.path)
    db.exec('PRAGMA journal_mode = WAL')
    db.exec('PRAGMA synchronous = NORMAL')
    const insert = db.query('insert into messages (dialog_id, seq, version, sender_id, client_msg_id, type, text, created_at) values (?, ?, ?, ?, ?, ?, ?, ?)')
    const index = db.query(INDEX_NEW_MESSAGES)
    const commit = db.transaction((from: number, to: number) => {
      let first = 0
      let last = 0
      for (let n = from; n < to; n++) {
        const { d, seq } = next(n)
        last = Number(insert.run(d.id, seq, seq, d.sender, `s${n}`, 'text', textOf(words, n), Date.now()).lastInsertRowid)
        first ||= last
      }
      index.run(first, last, null) // no text here holds a CJK character: nothing for indexText to change
    })
    for (let n = 0; n < total; n += BATCH) commit.immediate(n, Math.min(total, n + BATCH))
    db.close()
    return
  }
  const sql = postgres(seeded.target.url, { max: 1, onnotice: () => {} })
  try {
    for (let n = 0; n < total; n += BATCH) {
      const rows = []
      for (let k = n; k < Math.min(total, n + BATCH); k++) {
        const { d, seq } = next(k)
        rows.push({ dialog_id: d.id, seq, version: seq, sender_id: d.sender, client_msg_id: `s${k}`, type: 'text', text: textOf(words, k), created_at: new Date() })
      }
      await sql`insert into messages ${sql(rows)}`
    }
    await sql`analyze messages`
  } finally {
    await sql.end()
  }
}

const percentile = (sorted: number[], p: number) => Math.round(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]! * 100) / 100

export async function benchSearch(dialect: 'sqlite' | 'pg', o: { messages: number; dialogs: number; seconds: number }): Promise<SearchBenchResult> {
  const seeded = await seededDatabase(dialect, o.dialogs)
  try {
    const words = vocabulary(5_000)
    const started = performance.now()
    await seed(seeded, o.messages, words)
    const seedSeconds = Math.round((performance.now() - started) / 100) / 10
    const db = await openDatabase(seeded.target)
    try {
      const search = new SearchService(db, new Membership(db))
      let q = 0
      const query = () => {
        // One or two prefixes (3–5 characters) of vocabulary words.
        const w = (i: number) => words[(q * 31 + i * 977) % words.length]!.slice(0, 3 + ((q + i) % 3))
        return q++ % 2 ? `${w(0)} ${w(1)}` : w(0)
      }
      const run = async (userId: (i: number) => number) => {
        const times: number[] = []
        let hits = 0
        const until = performance.now() + o.seconds * 1000
        while (performance.now() < until) {
          const t0 = performance.now()
          const page = await search.messages(userId(times.length), query(), { limit: 20 })
          times.push(performance.now() - t0)
          hits += page.messages.length
        }
        times.sort((a, b) => a - b)
        return { qps: Math.round(times.length / o.seconds), p50: percentile(times, 0.5), p99: percentile(times, 0.99), meanHits: Math.round((hits / times.length) * 10) / 10 }
      }
      const oneDialog = await run((i) => seeded.dialogs[i % seeded.dialogs.length]!.sender)
      // seededDatabase's first user is the other member of every dialog: the widest search.
      const allDialogs = await run(() => seeded.owner)
      return { dialect, messages: o.messages, dialogs: o.dialogs, seedSeconds, oneDialog, allDialogs }
    } finally {
      await db.close()
    }
  } finally {
    await seeded.drop()
  }
}
