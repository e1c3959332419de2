import { describe, expect, test } from 'bun:test'
import { CommitWatch } from '../src/storage/commit-watch'
import { LocalChanges } from '../src/storage/local-changes'

/** LocalChanges on its own: what makes a kept page or list stale. The services' use of it: dialog-lists, history-pages. */
describe('LocalChanges', () => {
  const make = (limits = { maxKeys: 1000, trustMs: 60_000 }) => {
    let version: number | undefined = 1
    const watch = new CommitWatch(() => version)
    const changes = new LocalChanges(watch, limits)
    // Polled as a request's session check does, before the page or list is looked at.
    return { changes, commitElsewhere: () => (version!++, watch.poll()) }
  }

  test('a change to a dialog makes its pages and both members’ lists stale, and nothing else', () => {
    const { changes } = make()
    const before = changes.mark()
    expect(changes.pageFresh(before, 1)).toBe(true)
    changes.dialogChanged(1, [10, 11])
    expect(changes.pageFresh(before, 1)).toBe(false)
    expect(changes.pageFresh(before, 2)).toBe(true)
    expect(changes.listFresh(before, 10, [11])).toBe(false)
    expect(changes.listFresh(before, 11, [10])).toBe(false)
    expect(changes.listFresh(before, 12, [10, 11])).toBe(true)
    // Read after the change: fresh again.
    const after = changes.mark()
    expect(changes.pageFresh(after, 1)).toBe(true)
    expect(changes.listFresh(after, 10, [11])).toBe(true)
  })

  test('a new dialog makes its members’ lists stale; a last_seen_at the lists that show that peer', () => {
    const { changes } = make()
    const before = changes.mark()
    changes.dialogOpened([20, 21])
    expect(changes.listFresh(before, 20, [])).toBe(false)
    expect(changes.listFresh(before, 22, [])).toBe(true)
    changes.seenChanged([30])
    expect(changes.listFresh(before, 22, [31])).toBe(true)
    expect(changes.listFresh(before, 22, [31, 30])).toBe(false)
    expect(changes.pageFresh(before, 1)).toBe(true)
  })

  test('a commit by another connection makes everything read before it stale', () => {
    const { changes, commitElsewhere } = make()
    const before = changes.mark()
    commitElsewhere()
    expect(changes.pageFresh(before, 1)).toBe(false)
    expect(changes.listFresh(before, 1, [])).toBe(false)
    const after = changes.mark()
    expect(changes.pageFresh(after, 1)).toBe(true)
  })

  test('where other writers go unseen (Postgres), nothing is ever fresh', () => {
    const changes = new LocalChanges(new CommitWatch(() => undefined))
    expect(changes.mark()).toBeUndefined()
    expect(changes.pageFresh(undefined, 1)).toBe(false)
  })

  test('when a key is forgotten to stay bounded, what was read before its change is stale', () => {
    const { changes } = make({ maxKeys: 2, trustMs: 60_000 })
    const first = changes.mark()
    changes.dialogChanged(1, [])
    const second = changes.mark()
    changes.dialogChanged(2, [])
    changes.dialogChanged(3, [])
    // Dialog 1's change is forgotten: a read from before it cannot be told apart, so it is stale.
    expect(changes.pageFresh(first, 1)).toBe(false)
    expect(changes.pageFresh(first, 9)).toBe(false)
    // A read after it is not affected by forgetting it.
    expect(changes.pageFresh(second, 1)).toBe(true)
    expect(changes.pageFresh(second, 2)).toBe(false)
  })

  test('a quiet answer is trusted only for trustMs, then checked again', async () => {
    const { changes } = make({ maxKeys: 1000, trustMs: 20 })
    const checked = changes.mark()
    expect(changes.pageFresh(checked, 1)).toBe(true)
    await Bun.sleep(40)
    expect(changes.pageFresh(checked, 1)).toBe(false)
  })
})
