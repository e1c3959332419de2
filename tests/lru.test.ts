import { expect, test } from 'bun:test'
import fc from 'fast-check'
import { Lru } from '../src/shared/lru'

test('a full cache drops the least recently used entry, not the one just read', () => {
  const cache = new Lru<string, number>(2)
  cache.set('a', 1)
  cache.set('b', 2)
  expect(cache.get('a')).toBe(1)
  cache.set('c', 3)
  expect([cache.get('a'), cache.get('b'), cache.get('c')]).toEqual([1, undefined, 3])
  expect(cache.size).toBe(2)
})

test('it behaves as a model of recency: never over its bound, holds the most recently touched keys (a peek touches none), and says which entry it dropped', () => {
  const op = fc.oneof(
    fc.record({ kind: fc.constant('set' as const), key: fc.integer({ min: 0, max: 9 }), value: fc.integer() }),
    fc.record({ kind: fc.constant('get' as const), key: fc.integer({ min: 0, max: 9 }) }),
    fc.record({ kind: fc.constant('peek' as const), key: fc.integer({ min: 0, max: 9 }) }),
    fc.record({ kind: fc.constant('delete' as const), key: fc.integer({ min: 0, max: 9 }) }),
  )
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 5 }), fc.array(op, { maxLength: 60 }), (max, ops) => {
      const cache = new Lru<number, number>(max)
      // The model: keys from least to most recently used.
      let model: [number, number][] = []
      for (const o of ops) {
        const at = model.findIndex(([k]) => k === o.key)
        if (o.kind === 'set') {
          if (at >= 0) model.splice(at, 1)
          model.push([o.key, o.value])
          const dropped = model.length > max ? model.shift() : undefined
          expect(cache.set(o.key, o.value)).toEqual(dropped)
        } else if (o.kind === 'get') {
          const expected = at >= 0 ? model[at]![1] : undefined
          if (at >= 0) model.push(model.splice(at, 1)[0]!)
          expect(cache.get(o.key)).toBe(expected)
        } else if (o.kind === 'peek') {
          expect(cache.peek(o.key)).toBe(at >= 0 ? model[at]![1] : undefined)
        } else {
          if (at >= 0) model.splice(at, 1)
          expect(cache.delete(o.key)).toBe(at >= 0)
        }
        expect(cache.size).toBe(model.length)
      }
    }),
  )
})
