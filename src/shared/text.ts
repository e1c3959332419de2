/**
 * Characters (Unicode code points) in `value`, as the contract counts lengths; JavaScript's `length` counts
 * UTF-16 units, two for an emoji. Counting stops past `stopAfter`, so a caller checking a bound reads no
 * further than it needs.
 */
export function charCount(value: string, stopAfter = Infinity): number {
  let chars = 0
  for (const _ of value) if (++chars > stopAfter) break
  return chars
}
